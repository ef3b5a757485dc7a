"""Sidecars (init containers with restartPolicy Always): how they count and where they are allowed."""

from __future__ import annotations

import pytest

from podline.api.errors import ManifestError
from podline.api.loader import load_text
from podline.plan.pod import plan_pod, pod_requests
from podline.plan.slurm import container_totals
from podline.plan.totals import pod_total


def test_a_sidecar_adds_to_the_init_containers_after_it_and_to_the_containers() -> None:
    # Kubernetes' example: init 1 cpu, sidecar 1 cpu, init 3 cpu, containers 1 + 1 cpu -> max(1, 1+3, 1+2) = 4
    inits = [(False, {"cpu": 1000}), (True, {"cpu": 1000}), (False, {"cpu": 3000})]
    assert pod_total(inits, [{"cpu": 1000}, {"cpu": 1000}])["cpu"] == 4000
    # a sidecar started before a larger init container does not count for the one before it
    assert pod_total([(False, {"cpu": 5000}), (True, {"cpu": 1000})], [{"cpu": 1000}])["cpu"] == 5000
    assert pod_total([(True, {"memory": 2}), (True, {"memory": 3})], [{"memory": 1}])["memory"] == 6


POD = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - {name: prep, image: busybox, resources: {requests: {cpu: "2"}}}
  - {name: proxy, image: busybox, restartPolicy: Always, resources: {requests: {cpu: "1", memory: 1Gi}}}
  containers:
  - {name: main, image: busybox, resources: {requests: {cpu: "1", memory: 1Gi}}}
"""


def test_the_scheduler_and_sbatch_count_the_sidecar_beside_the_containers() -> None:
    item = load_text(POD, "p.yaml")[0]
    assert pod_requests(item.obj) == {"cpu": 2000, "memory": 2 * 2**30, "gpu": 0}  # max(2, 1 + 1), 1Gi + 1Gi
    assert container_totals(item.obj.dump()["spec"]) == {"cpu": 2000, "memory": 2 * 2**30, "gpu": 0}


def test_the_plan_marks_the_sidecar_and_a_pod_with_one_is_not_a_pipeline() -> None:
    shared = (POD.replace("spec:\n", "spec:\n  restartPolicy: Never\n  volumes: [{name: w, emptyDir: {}}]\n", 1)
              .replace("image: busybox,", "image: busybox, volumeMounts: [{name: w, mountPath: /w}],"))
    plan = plan_pod(load_text(shared, "p.yaml")[0].obj.dump(), "uid", lambda *_: None)
    assert [c.get("restartPolicy") for c in plan["initContainers"]] == [None, "Always"]
    assert "restartPolicy" not in plan["containers"][0] and plan.get("workspace") is None
    without = plan_pod(load_text(shared.replace("restartPolicy: Always, ", ""), "p.yaml")[0].obj.dump(), "uid",
                       lambda *_: None)
    assert without["workspace"]["volume"] == "w"  # the same pod with a plain init container is in pipeline form


@pytest.mark.parametrize(("text", "where"), [
    ("initContainers: [{name: s, image: busybox, restartPolicy: OnFailure}]", "spec.initContainers[0].restartPolicy"),
])
def test_only_always_makes_a_sidecar(text: str, where: str) -> None:
    with pytest.raises(ManifestError) as refused:
        load_text(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  {text}\n"
                  "  containers: [{name: a, image: busybox}]\n", "p.yaml")
    assert where in str(refused.value)


def test_a_stop_as_a_container_starts_ends_its_run_without_a_deadlock(tmp_path) -> None:
    """`_run_once` finds the stop under the worker's lock and ends the run there (which takes the lock again)."""
    import threading
    from types import SimpleNamespace

    from podline.runtime.container import ContainerWorker

    (tmp_path / "logs").mkdir()
    stopping = threading.Event()
    stopping.set()
    engine = SimpleNamespace(pod={"uid": "u", "name": "p"})
    worker = ContainerWorker({"name": "c", "image": "busybox"}, engine, "Never", False, tmp_path, stopping,
                             lambda: None)
    done = threading.Thread(target=worker._run_once, args=(tmp_path / "logs" / "c.log",), daemon=True)
    done.start()
    done.join(5)
    assert not done.is_alive() and worker.status["state"]["terminated"]["message"] == "pod stopped before start"
    assert worker.lock.acquire(timeout=1)


def _pod_obj(status: dict):
    import json

    from podline.store import Obj

    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"initContainers": [{"name": "proxy", "image": "x", "restartPolicy": "Always"}],
                         "containers": [{"name": "main", "image": "x"}]}}
    return Obj("u", "Pod", "default", "p", json.dumps(manifest), 1, status, {}, None, False, 0.0, None)


def test_kubectls_columns_count_a_running_sidecar_as_initialized_and_in_ready() -> None:
    from podline.cli.render import pod_row, pod_status_word

    running = {"name": "proxy", "ready": True, "started": True, "restartCount": 1, "state": {"running": {}}}
    main = {"name": "main", "ready": True, "restartCount": 0, "state": {"running": {}}}
    obj = _pod_obj({"phase": "Running", "initContainerStatuses": [running], "containerStatuses": [main]})
    assert pod_status_word(obj) == "Running" and pod_row(obj, False)[1:4] == ["2/2", "Running", "1"]
    stopped = {**running, "ready": False, "started": False,
               "state": {"terminated": {"exitCode": 143, "reason": "Error"}}}
    ended = {**main, "ready": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    obj = _pod_obj({"phase": "Succeeded", "initContainerStatuses": [stopped], "containerStatuses": [ended]})
    assert pod_status_word(obj) == "Completed"
    starting = {**running, "started": False, "ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    obj = _pod_obj({"phase": "Pending", "initContainerStatuses": [starting], "containerStatuses": []})
    assert pod_status_word(obj) == "Init:CrashLoopBackOff"
