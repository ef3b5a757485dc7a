"""The downward API on real Slurm: each task of an Indexed Job's one job array sees its own pod (the one
`podline get pods` shows), and a pod sees the node it runs on, not the controller's."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from podline.plan.pod import format_map
from tests.conftest import Cli
from tests.integration.test_slurm_nodes import NODES_REASON
from tests.integration.test_slurm_pods import REASON, cancel_leftovers

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: NAME}
spec:
  completions: 2
  parallelism: 2
  completionMode: Indexed
  template:
    metadata:
      labels: {app: shard}
      annotations: {note: "say \\"hi\\"\\nthen go"}
    spec:
      restartPolicy: Never
      volumes:
      - name: info
        downwardAPI:
          items:
          - {path: name, fieldRef: {fieldPath: metadata.name}}
          - {path: labels, fieldRef: {fieldPath: metadata.labels}}
          - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      containers:
      - name: work
        image: busybox
        env:
        - {name: ME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: IDX, valueFrom: {fieldRef: {fieldPath: "metadata.labels['batch.kubernetes.io/job-completion-index']"}}}
        - {name: NOTE, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['INDEX_KEY']"}}}
        - {name: MYUID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
        command: [sh, -c, COMMAND]
        volumeMounts: [{name: info, mountPath: /info}]
"""


@pytest.fixture
def slurm(cli: Cli, tmp_path: Path) -> Iterator[Cli]:
    """A `slurm` context on partition `debug` (as in test_slurm_pods)."""
    yield from _context(cli, tmp_path, "debug")


@pytest.fixture
def multi(cli: Cli, tmp_path: Path) -> Iterator[Cli]:
    """A `slurm` context on partition `multi`, whose nodes pl-n1, pl-n2 each have a hostname and address."""
    if NODES_REASON is not None:
        pytest.skip(NODES_REASON)
    yield from _context(cli, tmp_path, "multi")


def _context(cli: Cli, tmp_path: Path, partition: str) -> Iterator[Cli]:
    shared = tmp_path / "shared"
    shared.mkdir()
    cli("config", "set-context", "hpc", "--backend", "slurm", "--partition", partition, "--shared-dir", str(shared))
    cli("config", "use-context", "hpc")
    yield cli
    cancel_leftovers(shared)


def _job(name: str, command: str) -> str:
    return JOB.replace("NAME", name).replace("COMMAND", command).replace("INDEX_KEY", INDEX_KEY)


def _pods_by_index(cli: Cli, job: str) -> dict[int, dict]:
    pods = [p for p in cli.json("pods")["items"] if p["metadata"]["labels"].get("job-name") == job]
    return {int(p["metadata"]["annotations"][INDEX_KEY]): p for p in pods}


def _run_job(cli: Cli, name: str, command: str) -> dict[int, dict]:
    cli.apply(_job(name, command))
    assert cli.wait(f"job/{name}", "condition=Complete", timeout=90).returncode == 0, \
        cli("describe", "job", name).stdout
    pods = _pods_by_index(cli, name)
    assert sorted(pods) == [0, 1]
    return pods


def test_each_task_of_an_indexed_job_array_sees_its_own_pod_in_env(slurm: Cli) -> None:
    pods = _run_job(slurm, "dwenv", 'echo "$ME|$IDX|$NOTE|$JOB_COMPLETION_INDEX|$MYUID"')
    for index, pod in pods.items():
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        assert name.startswith(f"dwenv-{index}-")
        assert slurm("logs", name).stdout == f"{name}|{index}|{index}|{index}|{uid}\n"
    assert pods[0]["metadata"]["uid"] != pods[1]["metadata"]["uid"]
    for pod in pods.values():  # the runner reports each task's containers under its own pod's uid
        ids = [c["containerID"] for c in pod["status"]["containerStatuses"]]
        assert ids == [f"podline://{pod['metadata']['uid']}/work"]


def test_each_task_of_an_indexed_job_array_sees_its_own_pod_in_downward_files(slurm: Cli) -> None:
    pods = _run_job(slurm, "dwvol", "cat /info/name; echo; cat /info/labels; echo; cat /info/annotations; echo")
    for pod in pods.values():
        meta = pod["metadata"]
        want = f"{meta['name']}\n{format_map(meta['labels'])}\n{format_map(meta['annotations'])}\n"
        assert slurm("logs", meta["name"]).stdout == want


def test_a_pod_sees_the_node_it_runs_on(multi: Cli) -> None:
    multi.apply("""
apiVersion: v1
kind: Pod
metadata: {name: where}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    env:
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    command: [sh, -c, 'echo "$NODE $HOST_IP $POD_IP $(hostname)"']
""")
    assert multi.wait("pod/where", "phase=Succeeded", timeout=90).returncode == 0, \
        multi("describe", "pod", "where").stdout
    node = multi.json("pod", "where")["spec"]["nodeName"]
    assert node in ("pl-n1", "pl-n2")
    address = subprocess.run(["sinfo", "-h", "-N", "-n", node, "-o", "%o"], capture_output=True, text=True,
                             check=True).stdout.split()[0]
    assert multi("logs", "where").stdout == f"{node} {address} {address} {node}\n"
