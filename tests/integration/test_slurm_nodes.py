"""Pipelines on a Slurm cluster of several nodes (scripts/slurm-nodes-up.sh: nodes pl-n1, pl-n2 in partition
`multi`, each in network, UTS and mount namespaces of its own, so each has its own hostname, address,
/dev/shm and node-local directory; /tmp is the shared storage they all see).

A node is lost for real here: every process of its network namespace (its slurmd and the job's processes)
is SIGKILLed and it is marked down, as a health check would. What it held in RAM and on its local disk is
out of reach for the retry on the other node: only a major (L3) checkpoint on shared storage is.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_for
from tests.integration.test_slurm_pods import REASON, cancel_leftovers

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
NODE_LOCAL = Path("/var/lib/podline-node-local")  # each node sees its own directory here


def nodes_unavailable() -> str | None:
    if REASON is not None:
        return REASON
    proc = subprocess.run(["sinfo", "-h", "-p", "multi", "-o", "%n %T"], capture_output=True, text=True, timeout=30)
    usable = [line.split()[0] for line in proc.stdout.splitlines()
              if line.split()[1].rstrip("*") in ("idle", "mixed", "allocated")]
    if proc.returncode != 0 or len(usable) < 2:
        return f"no two usable nodes in partition multi ({proc.stdout.strip() or proc.stderr.strip() or 'none'}); " \
               "run scripts/slurm-nodes-up.sh as root"
    return None


NODES_REASON = nodes_unavailable()
pytestmark = pytest.mark.skipif(NODES_REASON is not None, reason=NODES_REASON or "")


@pytest.fixture
def multi(cli: Cli, tmp_path: Path) -> Iterator[Cli]:
    shared = tmp_path / "shared"
    shared.mkdir()
    scratch = f"{tmp_path.parent.name}-{tmp_path.name}"  # unique: node-local directories outlive pytest's
    cli("config", "set-context", "nodes", "--backend", "slurm", "--partition", "multi", "--shared-dir", str(shared),
        "--scratch-dir", str(NODE_LOCAL / scratch))
    cli("config", "use-context", "nodes")
    cli.env["PODLINE_SHM_DIR"] = f"/dev/shm/podline-test-{tmp_path.name}"  # RAM of the node (conftest's is shared)
    try:
        yield cli
    finally:
        try:
            cancel_leftovers(shared)
        finally:  # a node a test lost comes back for the next test, or the failure says why not
            for node_local in Path("/var/lib/podline-nodes").glob(f"*/local/{scratch}"):
                shutil.rmtree(node_local, ignore_errors=True)
            back = subprocess.run(["bash", str(SCRIPTS / "slurm-nodes-up.sh")], capture_output=True, text=True,
                                  timeout=120)
            assert back.returncode == 0, f"slurm-nodes-up.sh: {back.stderr[-2000:]}"


def lose(node: str) -> None:
    """Every process of the node at once (its slurmd, the job's runner and steps), again until none is left
    (one may fork meanwhile); then it is marked down, as a health check would."""
    def survivors() -> list[str]:
        pids = subprocess.run(["ip", "netns", "pids", node], capture_output=True, text=True).stdout.split()
        if pids:
            subprocess.run(["kill", "-9", *pids], capture_output=True)
        return pids

    wait_for(lambda: not survivors(), timeout=10)
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=down", "reason=podline test: node lost"],
                   check=True)


def placed_pod(cli: Cli, prefix: str = "") -> dict:
    """The first pod (whose name starts with `prefix`) once Slurm has placed it on a node."""
    def placed() -> dict | None:
        return next((p for p in cli.json("pods")["items"]
                     if p["metadata"]["name"].startswith(prefix) and p["spec"].get("nodeName")), None)
    return wait_for(placed, timeout=30)


def step(name: str, tally: Path, script: str, extra: str = "") -> str:
    return (f"  - name: {name}\n    image: busybox\n{extra}"
            f"    command: [sh, -c, 'echo {name} $(hostname) >> {tally}; {script}']\n")


def test_a_lost_node_costs_only_the_work_since_the_last_major_checkpoint(multi: Cli, tmp_path: Path) -> None:
    tally, gate, out = tmp_path / "tally", tmp_path / "gate", tmp_path / "out"
    after = "    dependsOn: [{}]\n".format
    steps = (step("parse", tally, "seq 1 5000 > numbers")
             + step("select", tally, "grep 7 numbers > sevens", after("parse") + "    checkpoint: major\n")
             + step("count", tally, "wc -l < sevens > n", after("select"))
             + step("report", tally, f"if [ ! -e {gate} ]; then touch {gate}; sleep 300; fi; mkdir -p result; "
                    "cat n > result/count", after("count")))
    multi.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: survivor}}
spec:
  backoffLimit: 2
  checkpoint: {{nodeLocalEvery: 1, sharedEvery: 0}}
  outputs: [{{path: result, destination: {out}}}]
  steps:
{steps}""")
    wait_for(gate.exists, timeout=120)
    lost = wait_for(lambda: multi.json("pipeline", "survivor")["status"]["shards"][0].get("node"), timeout=30)
    assert lost in ("pl-n1", "pl-n2")
    lose(lost)

    assert multi.wait("pipeline/survivor", "phase=Succeeded", timeout=180).returncode == 0, \
        multi("describe", "pipeline", "survivor").stdout
    assert (out / "count").read_text() == "1355\n"  # numbers from 1 to 5000 with a 7 in them
    status = multi.json("pipeline", "survivor")["status"]
    shard = status["shards"][0]
    assert shard["node"] not in ("", lost) and shard["restoredFrom"] == "L3", shard
    runs = [line.split() for line in tally.read_text().splitlines()]
    assert [name for name, _ in runs] == ["parse", "select", "count", "report", "count", "report"], runs
    assert {host for name, host in runs[:4]} == {lost} and {host for name, host in runs[4:]} == {shard["node"]}
    steps = {s["name"]: s for s in status["steps"]}
    assert [steps[n]["attempts"] for n in ("parse", "select", "count", "report")] == [1, 1, 2, 2], steps


def test_two_shards_of_one_array_run_on_two_nodes_each_with_its_own_local_disk(multi: Cli, tmp_path: Path) -> None:
    out, mine = tmp_path / "out", f"{NODE_LOCAL}/{tmp_path.parent.name}-{tmp_path.name}"
    multi.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: spread}}
spec:
  shards: 2
  outputs: [{{path: result, destination: {out}}}]
  steps:
  - name: where
    image: busybox
    resources: {{requests: {{cpu: "1"}}}}
    command: [sh, -c, 'mkdir -p result {mine} && hostname > result/host && touch {mine}/shard-$PODLINE_SHARD
      && sleep 1 && ls {mine} > result/local']
""")
    assert multi.wait("pipeline/spread", "phase=Succeeded", timeout=120).returncode == 0
    hosts = [(out / str(k) / "host").read_text().strip() for k in range(2)]
    assert sorted(hosts) == ["pl-n1", "pl-n2"], "one core each: the two array tasks cannot share a node"
    assert [s["node"] for s in multi.json("pipeline", "spread")["status"]["shards"]] == hosts
    listed = [(out / str(k) / "local").read_text().split() for k in range(2)]
    assert [name for name in listed[0] + listed[1] if name.startswith("shard-")] == ["shard-0", "shard-1"], \
        f"each node saw only its own shard's file in its local directory: {listed}"


def test_every_node_sees_the_sshfs_shared_storage_as_this_machine_does(multi: Cli, tmp_path: Path) -> None:
    """The nodes live in mount namespaces of their own: the sshfs mount must reach them, also one mounted again
    after they started (scripts/sshfs-up.sh and slurm-nodes-up.sh; a node once kept a dead connection)."""
    from tests.integration.test_datasets_local import SSHFS
    if not SSHFS.is_mount():
        pytest.skip(f"{SSHFS} is not mounted (run scripts/sshfs-up.sh as root)")
    here = SSHFS / "tests" / f"nodes-{tmp_path.parent.name}-{tmp_path.name}"
    here.mkdir(parents=True)
    try:
        (here / "token").write_text(tmp_path.name)
        multi.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: seen}}
spec:
  shards: 2
  steps:
  - name: read-write
    image: busybox
    resources: {{requests: {{cpu: "1"}}}}
    command: [sh, -c, 'cat {here}/token > {here}/from-$(hostname) && sleep 1']
""")
        assert multi.wait("pipeline/seen", "phase=Succeeded", timeout=120).returncode == 0, \
            multi("describe", "pipeline", "seen").stdout
        seen = {p.name: p.read_text() for p in here.glob("from-*")}
        assert seen == {"from-pl-n1": tmp_path.name, "from-pl-n2": tmp_path.name}, seen
    finally:
        shutil.rmtree(here, ignore_errors=True)


def test_the_next_pod_of_an_index_resumes_from_the_major_checkpoint_after_its_node_is_lost(multi: Cli,
                                                                                            tmp_path: Path) -> None:
    """The Kubernetes-native pipeline form: index 0's pod hangs in its second init container on one node;
    that node is lost. The pod fails (NodeLost) and the Job's next pod for index 0, on the other node,
    restores the L3 checkpoint from shared storage: `gen` does not run again."""
    from tests.integration.test_pod_pipelines import EXPECTED, job, pods_of, succeeded_logs

    tally, gate = tmp_path / "tally", tmp_path / "gate"
    hang_once = f'if [ $JOB_COMPLETION_INDEX = 0 ] && [ ! -e {gate} ]; then touch {gate}; sleep 300; fi'
    multi.apply(job("lost", tally, gate, hang_once, annotations='{podline.io/checkpoint-shared-every: "1"}'))
    wait_for(gate.exists, timeout=120)
    lost = placed_pod(multi, "lost-0-")["spec"]["nodeName"]
    lose(lost)
    assert multi.wait("job/lost", "condition=Complete", timeout=150).returncode == 0
    assert succeeded_logs(multi, "lost") == EXPECTED
    assert [(tmp_path / f"tally-{i}").read_text() for i in range(2)] == ["run\n", "run\n"], "gen ran once per index"
    index0 = [p for p in pods_of(multi, "lost")
              if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0"]
    assert sorted(p["status"]["phase"] for p in index0) == ["Failed", "Succeeded"], index0
    failed, succeeded = sorted(index0, key=lambda p: p["status"]["phase"])
    assert failed["status"]["reason"] == "NodeLost" and failed["spec"]["nodeName"] == lost, failed["status"]
    assert succeeded["spec"]["nodeName"] != lost and succeeded["status"]["restoredFrom"] == "L3"


def test_an_attempt_left_running_on_a_node_declared_lost_publishes_nothing(multi: Cli, tmp_path: Path) -> None:
    """Only the node's slurmd dies; the job's processes go on (as when slurmd crashes, or the node is cut
    off). Slurm declares the node down and the job failed, podline retries the shard on the other node at
    once, and the first attempt, still running, must not overwrite the retry's outputs when it ends."""
    out, gate = tmp_path / "out", tmp_path / "gate"
    report = (f"if [ ! -e {gate} ]; then touch {gate}; sleep 8; fi; mkdir -p result; "
              "hostname > result/by; echo attempt on $(hostname) >> ../attempts")
    multi.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: fenced}}
spec:
  backoffLimit: 2
  checkpoint: {{nodeLocalEvery: 1, sharedEvery: 0}}
  outputs: [{{path: result, destination: {out}}}]
  steps:
  - {{name: report, image: busybox, command: [sh, -c, '{report}']}}
""")
    wait_for(gate.exists, timeout=120)
    lost = wait_for(lambda: multi.json("pipeline", "fenced")["status"]["shards"][0].get("node"), timeout=30)
    slurmd = [pid for pid in subprocess.run(["ip", "netns", "pids", lost], capture_output=True, text=True,
                                            check=True).stdout.split()
              if Path(f"/proc/{pid}/comm").read_text().strip() == "slurmd"]
    subprocess.run(["kill", "-9", *slurmd], check=True)  # the node's daemon only: its job runs on
    subprocess.run(["scontrol", "update", f"nodename={lost}", "state=down", "reason=podline test: slurmd lost"],
                   check=True)
    assert multi.wait("pipeline/fenced", "phase=Succeeded", timeout=120).returncode == 0, \
        multi("describe", "pipeline", "fenced").stdout
    retried_on = (out / "by").read_text().strip()
    assert retried_on != lost
    wait_for(lambda: not subprocess.run(["ip", "netns", "pids", lost], capture_output=True, text=True).stdout.split(),
             timeout=30)  # the first attempt has ended by itself
    assert (out / "by").read_text().strip() == retried_on, "the attempt podline gave up published nothing"
    shard = multi.json("pipeline", "fenced")["status"]["shards"][0]
    assert shard["attempts"] == 2 and shard["node"] == retried_on, shard


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_a_loaded_image_runs_on_every_node_each_unpacking_it_once(multi: Cli, tmp_path: Path) -> None:
    """`podline image load` puts the archive on the shared directory; each node unpacks it into its own
    node-local image cache the first time one of its pods needs it."""
    from tests.imagebuild import busybox_layer, docker_archive, image_config

    docker_archive(tmp_path / "tools.tar", [busybox_layer()], image_config(cmd=["sh"], env=["PATH=/bin"]),
                   repo_tag="lab/tools:1")
    multi("config", "set-context", "nodes", "--runtime", "bwrap")
    multi("image", "load", str(tmp_path / "tools.tar"))
    out = tmp_path / "out"
    multi.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: boxed}}
spec:
  shards: 2
  outputs: [{{path: result, destination: {out}}}]
  steps:
  - name: where
    image: lab/tools:1
    resources: {{requests: {{cpu: "1"}}}}
    command: [sh, -c, 'mkdir -p result && echo $SLURM_JOB_NODELIST > result/host && ls /bin/busybox > result/in-image
      && sleep 1']
""")
    assert multi.wait("pipeline/boxed", "phase=Succeeded", timeout=120).returncode == 0, \
        multi("describe", "pipeline", "boxed").stdout
    assert sorted((out / str(k) / "host").read_text().strip() for k in range(2)) == ["pl-n1", "pl-n2"]
    assert all((out / str(k) / "in-image").read_text() == "/bin/busybox\n" for k in range(2))
    shards = multi.json("pipeline", "boxed")["status"]["shards"]
    assert [s["images"][0]["pulled"] for s in shards] == [True, True], "node-local caches: one unpack per node"


def test_an_argo_step_lost_with_its_node_is_retried_on_the_other_node(multi: Cli, tmp_path: Path) -> None:
    """Argo's rule: a step whose pod went with its node is in Error, which `retryPolicy: OnError` retries."""
    gate = tmp_path / "gate"
    multi.apply(f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: lostwf}}
spec:
  entrypoint: work
  templates:
  - name: work
    retryStrategy: {{limit: 2, retryPolicy: OnError}}
    container:
      image: busybox
      command: [sh, -c, 'if [ ! -e {gate} ]; then touch {gate}; sleep 300; fi; echo done on $(hostname)']
""")
    wait_for(gate.exists, timeout=120)
    lost = placed_pod(multi)["spec"]["nodeName"]
    lose(lost)
    assert multi.wait("workflow/lostwf", "phase=Succeeded", timeout=150).returncode == 0, \
        multi("describe", "workflow", "lostwf").stdout
    nodes = multi.json("workflow", "lostwf")["status"]["nodes"]
    attempts = sorted((n for n in nodes.values() if n["type"] == "Pod"), key=lambda n: n["name"])
    assert [n["phase"] for n in attempts] == ["Error", "Succeeded"], attempts
    assert "NodeLost" in attempts[0].get("message", "") or "node" in attempts[0].get("message", "").lower(), attempts[0]
    assert attempts[1]["outputs"]["result"] != f"done on {lost}"


def mark_down(node: str) -> None:
    """An admin's (or a health check's) `scontrol update state=down` alone: Slurm ends the job NODE_FAIL and
    signals it, and the runner, alive, writes its last word ("Terminated")."""
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=down", "reason=podline test: marked down"],
                   check=True)


@pytest.mark.parametrize("lose", [lose, mark_down], ids=["killed", "marked-down"])
def test_a_pod_lost_with_its_node_is_ignored_by_a_pod_failure_policy(multi: Cli, tmp_path: Path, lose) -> None:
    """Kubernetes' way to keep disruptions from using up backoffLimit: the lost pod gets the DisruptionTarget
    condition, the Ignore rule matches it, and the Job (backoffLimit 0) completes with its replacement; also when
    its runner outlived the node's loss to write its own last word (helper-82: the Job failed)."""
    gate = tmp_path / "gate"
    multi.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: tolerant}}
spec:
  backoffLimit: 0
  podFailurePolicy:
    rules:
    - action: Ignore
      onPodConditions: [{{type: DisruptionTarget}}]
  template:
    spec:
      restartPolicy: Never
      containers:
      - {{name: work, image: busybox, command: [sh, -c, 'if [ ! -e {gate} ]; then touch {gate}; sleep 300; fi']}}
""")
    wait_for(gate.exists, timeout=120)
    pod = placed_pod(multi)
    lose(pod["spec"]["nodeName"])
    assert multi.wait("job/tolerant", "condition=Complete", timeout=120).returncode == 0, \
        multi("describe", "job", "tolerant").stdout
    assert multi.json("job", "tolerant")["status"]["failed"] == 0
    lost = multi.json("pod", pod["metadata"]["name"])["status"]
    assert lost["reason"] == "NodeLost" and {"type": "DisruptionTarget", "status": "True"}.items() <= next(
        c for c in lost["conditions"] if c["type"] == "DisruptionTarget").items(), lost
    assert "NodeLost" in multi("describe", "pod", pod["metadata"]["name"]).stdout.split("Events:")[1]
