"""A v1 Pod in pipeline form (init containers in order over one shared emptyDir) is run by the pipeline
engine: checkpoints after each init container, the next pod of an Indexed Job index resumes from them,
a restarted container starts from the last checkpoint, and nothing is left behind when the Job is over."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli, gone, kill_session, wait_for


def job(name: str, tally: Path, gate: Path, second: str, medium: str = "Memory", backoff: int = 3,
        annotations: str = "{}") -> str:
    """Index I: `gen` counts its runs in `tally` and writes numbers; `second` is the shell of the next init
    container (it may fail or hang once, using `gate`); `report` prints the workspace."""
    return f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  completions: 2
  parallelism: 2
  completionMode: Indexed
  backoffLimit: {backoff}
  template:
    metadata: {{annotations: {annotations}}}
    spec:
      restartPolicy: Never
      volumes:
      - {{name: ws, emptyDir: {{medium: "{medium}"}}}}
      - {{name: out, hostPath: {{path: {tally.parent}}}}}
      initContainers:
      - name: gen
        image: busybox
        command: [sh, -c, 'echo run >> /out/{tally.name}-$JOB_COMPLETION_INDEX; seq 1 5 > /ws/nums']
        volumeMounts: [{{name: ws, mountPath: /ws}}, {{name: out, mountPath: /out}}]
      - name: twice
        image: busybox
        command: [sh, -c, '{second}; awk "{{print \\$1 * 2}}" /ws/nums > /ws/doubled']
        volumeMounts: [{{name: ws, mountPath: /ws}}, {{name: out, mountPath: /out}}]
      containers:
      - name: report
        image: busybox
        command: [sh, -c, 'echo index $JOB_COMPLETION_INDEX; cat /ws/doubled | tr "\\n" " "; ls /ws']
        volumeMounts: [{{name: ws, mountPath: /ws}}]
"""


def pods_of(cli: Cli, name: str) -> list[dict]:
    return [p for p in cli.json("pods")["items"] if p["metadata"]["name"].startswith(f"{name}-")]


def succeeded_logs(cli: Cli, name: str) -> dict[int, str]:
    out = {}
    for pod in pods_of(cli, name):
        if pod["status"]["phase"] == "Succeeded":
            index = int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
            out[index] = cli("logs", pod["metadata"]["name"], "-c", "report").stdout
    return out


EXPECTED = {i: f"index {i}\n2 4 6 8 10 doubled\nnums\n" for i in range(2)}


def test_failed_init_container_next_pod_resumes_from_the_checkpoint(cli: Cli, tmp_path: Path) -> None:
    tally, gate = tmp_path / "tally", tmp_path / "gate"
    fail_once = (f'if [ $JOB_COMPLETION_INDEX = 1 ] && [ ! -e {gate} ]; then touch {gate}; echo junk > /ws/junk; '
                 'exit 1; fi')
    cli.apply(job("resume", tally, gate, fail_once))
    assert cli.wait("job/resume", "condition=Complete", timeout=90).returncode == 0
    assert succeeded_logs(cli, "resume") == EXPECTED
    assert [(tmp_path / f"tally-{i}").read_text() for i in range(2)] == ["run\n", "run\n"]  # gen never reran
    retried = [p for p in pods_of(cli, "resume") if p["status"]["phase"] == "Succeeded"
               and p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1"][0]
    status = retried["status"]
    assert status["restoredFrom"] == "L2"  # the failed pod gave its RAM back; its L2 copy was kept for this one
    gen = status["initContainerStatuses"][0]["state"]["terminated"]
    assert gen["exitCode"] == 0 and gen["message"] == "restored from L2 checkpoint"
    uid = cli.json("job", "resume")["metadata"]["uid"]
    assert not list((tmp_path / "shm").glob(f"podline-{uid}-*"))
    assert not list((cli.home / "scratch" / "checkpoints").glob(f"{uid}-*")), "checkpoints go with the Job"


def test_killed_runner_next_pod_resumes_from_the_ram_workspace(cli: Cli, tmp_path: Path) -> None:
    tally, gate = tmp_path / "tally", tmp_path / "gate"
    hang_once = f'if [ $JOB_COMPLETION_INDEX = 0 ] && [ ! -e {gate} ]; then touch {gate}; sleep 300; fi'
    cli.apply(job("killed", tally, gate, hang_once))
    wait_for(lambda: gate.exists(), timeout=60)
    pod = next(p for p in pods_of(cli, "killed") if p["metadata"]["name"].startswith("killed-0-"))
    started = wait_for(lambda: list(cli.home.glob(f"pods/default/{pod['metadata']['name']}/*/started")))[0]
    runner = json.loads(started.read_text())["pid"]
    kill_session(runner)  # the runner and its containers, as a node failure would
    wait_for(lambda: gone(runner))
    assert cli.wait("job/killed", "condition=Complete", timeout=90).returncode == 0
    assert succeeded_logs(cli, "killed") == EXPECTED
    assert (tmp_path / "tally-0").read_text() == "run\n"
    retried = next(p for p in pods_of(cli, "killed") if p["status"]["phase"] == "Succeeded"
                   and p["metadata"]["name"].startswith("killed-0-"))
    assert retried["status"]["restoredFrom"] == "L1"  # same node, RAM copy intact: nothing copied back


def flaky_pod(name: str, gate: Path, tally: Path, annotations: str = "{}") -> str:
    """`gen` writes 1..3 (counting its runs in `tally`); `flaky` appends to that file in place, then fails
    once (until `gate` exists); `main` prints the file."""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, annotations: {annotations}}}
spec:
  restartPolicy: OnFailure
  volumes: [{{name: ws, emptyDir: {{}}}}]
  initContainers:
  - {{name: gen, image: busybox, command: [sh, -c, 'echo run >> {tally}; seq 1 3 > /ws/nums'],
     volumeMounts: [{{name: ws, mountPath: /ws}}]}}
  - name: flaky
    image: busybox
    command: [sh, -c, 'echo partial >> /ws/nums; if [ ! -e {gate} ]; then touch {gate}; exit 1; fi; wc -l < /ws/nums']
    volumeMounts: [{{name: ws, mountPath: /ws}}]
  containers:
  - {{name: main, image: busybox, command: [cat, /ws/nums], volumeMounts: [{{name: ws, mountPath: /ws}}]}}
"""


def test_a_restarted_container_starts_from_the_last_checkpoint(cli: Cli, tmp_path: Path) -> None:
    cli.apply(flaky_pod("rewind", tmp_path / "gate", tmp_path / "tally"))
    assert cli.wait("pod/rewind", "phase=Succeeded", timeout=60).returncode == 0
    # Kubernetes would keep the failed attempt's line; the engine rewound to the checkpoint after `gen`.
    assert cli("logs", "rewind", "-c", "main").stdout == "1\n2\n3\npartial\n"
    assert (tmp_path / "tally").read_text() == "run\n"
    status = cli.json("pod", "rewind")["status"]
    assert status["initContainerStatuses"][1]["restartCount"] == 1
    assert status["checkpoints"]["L2"]["seq"] == 2
    uid = cli.json("pod", "rewind")["metadata"]["uid"]
    assert not (cli.home / "scratch" / "checkpoints" / uid).exists(), "a finished pod's checkpoints go"


def test_a_restart_whose_checkpoint_is_lost_runs_the_earlier_containers_again(cli: Cli, tmp_path: Path) -> None:
    """No L2 (annotation), and the failed attempt rewrote `gen`'s file in place, so no valid checkpoint holds
    `gen`'s results: `gen` runs again before `flaky` restarts, instead of `flaky` running on an empty
    workspace (or on the failed attempt's leftovers, as Kubernetes would)."""
    tally = tmp_path / "tally"
    cli.apply(flaky_pod("replay", tmp_path / "gate", tally, '{podline.io/checkpoint-node-local-every: "0"}'))
    assert cli.wait("pod/replay", "phase=Succeeded", timeout=60).returncode == 0
    assert cli("logs", "replay", "-c", "main").stdout == "1\n2\n3\npartial\n"
    assert tally.read_text() == "run\nrun\n"
    status = cli.json("pod", "replay")["status"]
    assert [s["restartCount"] for s in status["initContainerStatuses"]] == [1, 1]
    assert "L2" not in status["checkpoints"]


def test_with_shared_checkpoints_a_pod_resumes_where_the_node_local_copy_is_gone(cli: Cli, tmp_path: Path) -> None:
    """`podline.io/checkpoint-shared-every: "1"` adds L3 on the shared directory: the failed pod wipes its
    node's scratch (as if the retry ran on another node) and the next pod still skips `gen`."""
    tally, gate = tmp_path / "tally", tmp_path / "gate"
    scratch = cli.home / "scratch" / "checkpoints"
    lose_node = (f'if [ $JOB_COMPLETION_INDEX = 1 ] && [ ! -e {gate} ]; then touch {gate}; '
                 f'rm -rf {scratch}/*-1; exit 1; fi')
    cli.apply(job("elsewhere", tally, gate, lose_node, annotations='{"podline.io/checkpoint-shared-every": "1"}'))
    assert cli.wait("job/elsewhere", "condition=Complete", timeout=90).returncode == 0
    assert succeeded_logs(cli, "elsewhere") == EXPECTED
    assert [(tmp_path / f"tally-{i}").read_text() for i in range(2)] == ["run\n", "run\n"]
    resumed = [p["status"]["restoredFrom"] for p in pods_of(cli, "elsewhere") if p["status"].get("restoredFrom")]
    assert resumed == ["L3"]
    uid = cli.json("job", "elsewhere")["metadata"]["uid"]
    assert not list((cli.home / "shared" / "checkpoints").glob(f"{uid}-*")), "L3 copies go with the Job"


def test_checkpoint_annotations_are_checked_at_apply(cli: Cli) -> None:
    bad = cli("apply", "-f", "-", check=False, input="""
apiVersion: v1
kind: Pod
metadata: {name: bad, annotations: {podline.io/checkpoint-shared-every: "often"}}
spec:
  containers: [{name: c, image: busybox, command: ["true"]}]
""")
    assert bad.returncode == 2
    assert "metadata.annotations[podline.io/checkpoint-shared-every]: must be a whole number" in bad.stderr
    assert cli("get", "pods", check=False).stdout.strip() in ("", "No resources found in default namespace.")
