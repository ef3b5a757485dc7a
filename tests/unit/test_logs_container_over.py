"""When `logs -f -c NAME` stops following: NAME has terminated and the pod will not run it again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from podline.cli.watch import _container_over
from podline.store.db import Obj


def pod(policy: str, inits: dict[str, Any], mains: dict[str, Any]) -> Obj:
    """A pod with containers named by the dicts' keys, each in the given state (None: still running)."""
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"restartPolicy": policy, "initContainers": [{"name": n, "image": "x"} for n in inits],
                         "containers": [{"name": n, "image": "x"} for n in mains]}}

    def statuses(states: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"name": n, "state": {"running": {}} if code is None else {"terminated": {"exitCode": code}}}
                for n, code in states.items()]

    status = {"phase": "Running", "initContainerStatuses": statuses(inits), "containerStatuses": statuses(mains)}
    return Obj("u", "Pod", "default", "p", json.dumps(manifest), 1, status, {}, None, False, 0.0, None)


@pytest.mark.parametrize(("policy", "code", "over"), [
    ("Always", 0, True), ("Always", 1, False), ("OnFailure", 1, False), ("Never", 1, True), ("Always", None, False),
])
def test_an_init_container_is_over_when_it_succeeded_or_cannot_rerun(policy: str, code: int | None,
                                                                      over: bool) -> None:
    assert _container_over(pod(policy, {"init": code}, {"main": None}), "init") is over


@pytest.mark.parametrize(("policy", "code", "over"), [
    ("Never", 0, True), ("Never", 3, True), ("OnFailure", 0, True), ("OnFailure", 3, False),
    ("Always", 0, False), ("Always", 3, False), ("Never", None, False),
])
def test_a_main_container_is_over_when_its_restart_policy_will_not_run_it_again(policy: str, code: int | None,
                                                                                 over: bool) -> None:
    assert _container_over(pod(policy, {}, {"main": code, "side": None}), "main") is over
    assert _container_over(pod(policy, {}, {"main": code, "side": None}), "side") is False


def test_a_container_without_a_status_yet_is_not_over() -> None:
    assert _container_over(pod("Never", {}, {}), "main") is False


@pytest.mark.parametrize("code", [0, 1, 143])
def test_a_sidecar_that_ended_will_run_again(code: int) -> None:
    obj = pod("Never", {"proxy": code}, {"main": None})
    obj.manifest["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    assert _container_over(obj, "proxy") is False
