"""A pod whose runner died: what its status says about each container (as the kubelet reports a lost pod)."""

from __future__ import annotations

import json

from podline.controller.pods import _mark_lost
from podline.store import Obj

SPEC = {"initContainers": [{"name": "fetch", "image": "busybox"}],
        "containers": [{"name": "main", "image": "busybox"}, {"name": "side", "image": "alpine"}]}


def pod(status: dict) -> Obj:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": SPEC}
    return Obj("u", "Pod", "default", "p", json.dumps(manifest), 1, status, {}, None, False, 0.0, None)


def test_containers_the_runner_never_reported_are_terminated_status_unknown() -> None:
    status = _mark_lost(pod({"phase": "Pending"}), None, "killed", "RunnerLost")
    assert status["phase"] == "Failed" and status["reason"] == "RunnerLost"
    every = status["initContainerStatuses"] + status["containerStatuses"]
    assert [c["name"] for c in every] == ["fetch", "main", "side"]
    for c in every:
        assert c["state"]["terminated"]["exitCode"] == 137
        assert c["state"]["terminated"]["reason"] == "ContainerStatusUnknown" and c["ready"] is False
    assert status["containerStatuses"][1]["image"] == "alpine"


def test_a_reported_running_container_ends_killed_and_keeps_its_start() -> None:
    running = {"name": "main", "ready": True, "restartCount": 1, "image": "busybox",
               "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
    done = {"name": "fetch", "ready": False, "restartCount": 0, "image": "busybox",
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    status = _mark_lost(pod({}), {"phase": "Running", "initContainerStatuses": [done],
                                  "containerStatuses": [running]}, "", "NodeLost")
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    main, side = status["containerStatuses"]
    assert main["state"]["terminated"] == {"exitCode": 137, "reason": "Error", "startedAt": "2026-01-01T00:00:00Z",
                                           "finishedAt": main["state"]["terminated"]["finishedAt"],
                                           "message": "pod runner was killed"}
    assert main["restartCount"] == 1 and side["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert status["conditions"][-1]["type"] == "DisruptionTarget"
