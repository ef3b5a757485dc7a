"""The Downward API's resourceFieldRef in env (helper-79: refused as an unknown field; HPC's OMP_NUM_THREADS from
limits.cpu could not be written): the value in units of the divisor rounded up, a request not set is the limit,
a limit not set what the node or the Slurm allocation has."""

from __future__ import annotations

from typing import Any

import pytest

from podline.plan.pod import PlanWaiting, plan_pod
from podline.runtime.expand import container_env


def _env(var: str, ref: dict[str, Any]) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"resourceFieldRef": ref}}


def _plan(env: list[dict[str, Any]], resources: dict[str, Any]) -> dict[str, str]:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "main", "command": ["true"], "resources": resources, "env": env},
                                        {"name": "side", "command": ["true"],
                                         "resources": {"limits": {"cpu": "3"}}}]}}
    plan = plan_pod(manifest, "uid", lambda *a: None)
    return container_env(plan["containers"][0]["env"])


def test_values_are_in_units_of_the_divisor_rounded_up() -> None:
    env = _plan([_env("OMP_NUM_THREADS", {"resource": "limits.cpu"}),
                 _env("MEM_MB", {"resource": "limits.memory", "divisor": "1Mi"}),
                 _env("REQ", {"resource": "requests.cpu"}),
                 _env("REQ_M", {"resource": "requests.cpu", "divisor": "1m"}),
                 _env("SIDE", {"resource": "limits.cpu", "containerName": "side"}),
                 _env("DEFAULTED", {"resource": "requests.memory", "divisor": "1Gi"})],
                {"limits": {"cpu": "2", "memory": "1536Mi"}, "requests": {"cpu": "500m"}})
    assert env == {"OMP_NUM_THREADS": "2", "MEM_MB": "1536", "REQ": "1", "REQ_M": "500", "SIDE": "3",
                   "DEFAULTED": "2"}  # a request not set is the limit: 1536Mi in Gi, rounded up


def test_a_limit_not_set_is_what_the_allocation_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "2048")  # MB, as Slurm gives it
    env = _plan([_env("CPUS", {"resource": "limits.cpu"}), _env("MEM", {"resource": "limits.memory", "divisor": "1Mi"}),
                 _env("REQ", {"resource": "requests.cpu"})], {})
    assert env == {"CPUS": "6", "MEM": "2048", "REQ": "0"}


def test_a_container_name_naming_no_container_keeps_the_pod_from_starting() -> None:
    with pytest.raises(PlanWaiting, match="resourceFieldRef: no container 'nope' in the pod"):
        _plan([_env("X", {"resource": "limits.cpu", "containerName": "nope"})], {})


def test_a_bad_resource_or_divisor_is_bad_input() -> None:
    from podline.api.errors import ManifestError
    from podline.api.loader import load_text

    for ref, problem in (({"resource": "limits.gpu"}, "resource"), ({"resource": "limits.cpu", "divisor": "0"},
                                                                     "divisor '0' must be above zero")):
        text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n"
                f"    command: [x]\n    env: [{{name: X, valueFrom: {{resourceFieldRef: {ref}}}}}]\n")
        with pytest.raises(ManifestError, match=problem):
            load_text(text, "bad")
