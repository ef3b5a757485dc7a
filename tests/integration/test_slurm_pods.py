"""Pods on a real Slurm cluster (scripts/slurm-up.sh), through the CLI and a `slurm` context."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, gone, wait_for


def slurm_unavailable() -> str | None:
    if shutil.which("sinfo") is None:
        return "Slurm is not installed (run scripts/slurm-up.sh as root)"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s in ("idle", "mixed", "allocated") for s in states):
        return f"no usable Slurm node (sinfo: {proc.stdout.strip() or proc.stderr.strip()}); run scripts/slurm-up.sh"
    return None


REASON = slurm_unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def cancel_leftovers(shared: Path) -> None:
    """Whatever a test left in the queue (a failed assertion before its delete, say) must not hold the
    node's cores for the tests after it: cancel every job whose working directory is under `shared`."""
    leftovers = [line.split()[0] for line in squeue("-o", "%i %Z").splitlines()
                 if len(line.split()) > 1 and line.split()[1].startswith(str(shared))]
    if leftovers:
        subprocess.run(["scancel", *leftovers], check=False)


def squeue(*args: str) -> str:
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, check=True).stdout


def _slurm_id(cli: Cli, pod: str) -> str | None:
    uid = cli.json("pod", pod)["metadata"]["uid"]
    found = list(cli.home.parent.glob(f"shared/pods/default/{pod}/{uid}/slurm-job-id"))
    return found[0].read_text().strip() if found else None


def test_pod_with_init_container_and_shared_emptydir(slurm: Cli) -> None:
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: chain}
spec:
  restartPolicy: Never
  volumes: [{name: ws, emptyDir: {medium: Memory}}]
  initContainers:
  - {name: produce, image: busybox, command: [sh, -c, "echo from-init > /ws/msg"],
     volumeMounts: [{name: ws, mountPath: /ws}]}
  containers:
  - {name: consume, image: busybox, command: [sh, -c, "cat /ws/msg; echo job=$SLURM_JOB_ID"],
     volumeMounts: [{name: ws, mountPath: /ws}]}
""")
    assert slurm.wait("pod/chain", "phase=Succeeded").returncode == 0, slurm("describe", "pod", "chain").stdout
    out = slurm("logs", "chain").stdout.splitlines()
    slurm_job = _slurm_id(slurm, "chain")
    assert out == ["from-init", f"job={slurm_job}"]  # it really ran inside the Slurm allocation
    text = slurm("describe", "pod", "chain").stdout
    assert f"Slurm Job:          {slurm_job}" in text and "Context:            hpc" in text


def test_env_configmap_secret_and_failing_exit_code(slurm: Cli) -> None:
    slurm.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {greeting: "hello; $(rm -rf /) 'q'"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {token: t0k3n}
---
apiVersion: v1
kind: Pod
metadata: {name: envy}
spec:
  restartPolicy: Never
  volumes: [{name: s, secret: {secretName: sec}}]
  containers:
  - name: main
    image: busybox
    env:
    - {name: G, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    - {name: T, valueFrom: {secretKeyRef: {name: sec, key: token}}}
    command: [sh, -c, 'echo "$G"; test "$T" = "$(cat /s/token)" && echo same; exit 42']
    volumeMounts: [{name: s, mountPath: /s}]
""")
    assert slurm.wait("pod/envy", "phase=Failed").returncode == 0
    assert slurm("logs", "envy").stdout.splitlines() == ["hello; $(rm -rf /) 'q'", "same"]
    term = slurm.json("pod", "envy")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 42
    uid = slurm.json("pod", "envy")["metadata"]["uid"]
    script = next(slurm.home.parent.glob(f"shared/pods/default/envy/{uid}/job.sbatch")).read_text()
    assert "t0k3n" not in script and "hello" not in script


def test_a_sidecar_runs_in_the_allocation_and_counts_in_its_cores(slurm: Cli) -> None:
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: withside}
spec:
  restartPolicy: Never
  volumes: [{name: ws, emptyDir: {medium: Memory}}]
  initContainers:
  - {name: side, image: busybox, restartPolicy: Always, resources: {requests: {cpu: "1"}},
     command: [sh, -c, "echo side-$SLURM_JOB_ID > /ws/s.t; mv /ws/s.t /ws/s; sleep 600"],
     volumeMounts: [{name: ws, mountPath: /ws}]}
  containers:
  - {name: main, image: busybox, resources: {requests: {cpu: "1"}},
     command: [sh, -c, "while [ ! -e /ws/s ]; do sleep 0.05; done; cat /ws/s"],
     volumeMounts: [{name: ws, mountPath: /ws}]}
""")
    assert slurm.wait("pod/withside", "phase=Succeeded").returncode == 0, slurm("describe", "pod", "withside").stdout
    job = _slurm_id(slurm, "withside")
    assert slurm("logs", "withside").stdout == f"side-{job}\n"  # the sleeping sidecar did not hold the pod
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, check=True).stdout
    assert "NumCPUs=2" in shown, shown  # main's core and the sidecar's, side by side


def test_annotation_flag_reaches_the_job_and_delete_cancels_it(slurm: Cli) -> None:
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata:
  name: sleeper
  annotations: {slurm.hpk.io/flags: "--time=7 --nice=3"}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers: [{name: main, image: busybox, command: [sleep, "300"]}]
""")
    assert slurm.wait("pod/sleeper", "phase=Running").returncode == 0
    job = _slurm_id(slurm, "sleeper")
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, check=True).stdout
    assert "TimeLimit=00:07:00" in shown and "Nice=3" in shown
    assert "RUNNING" in squeue("-j", job, "-o", "%T")
    slurm("delete", "pod", "sleeper")
    wait_for(lambda: squeue("-j", job, "--states=all", "-o", "%T").strip() not in ("RUNNING", "COMPLETING"))
    assert squeue("-j", job, "--states=all", "-o", "%T").strip() == "CANCELLED"  # as scancel leaves it, not
    # FAILED with the runner's exit code (helper-82: site statistics and sacct read it)


def test_refused_submission_surfaces_sbatch_reason(slurm: Cli) -> None:
    slurm("config", "set-context", "hpc", "--partition", "nosuchpartition")
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: refused}
spec:
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: ["true"]}]
""")
    assert slurm.wait("pod/refused", "phase=Failed").returncode == 0
    status = slurm.json("pod", "refused")["status"]
    assert status["reason"] == "SubmitFailed" and "invalid partition" in status["message"].lower()
    described = slurm("describe", "pod", "refused").stdout
    assert "invalid partition" in described.lower()
    assert "(never started)" in described and "so far" not in described  # its Queued clock stopped (helper-72)
    nothing = slurm("logs", "refused", check=False)  # was exit 0, printing nothing
    assert nothing.returncode == 1 and 'pod "refused" never started (SubmitFailed)' in nothing.stderr


def test_a_pod_waiting_in_slurms_queue_is_not_scheduled_until_it_has_a_node(slurm: Cli) -> None:
    """As a pod the Kubernetes scheduler has not bound: PodScheduled False while Slurm queues it (STATUS says
    why: Queued), and the Scheduled event names the node once it starts (helper-82: PodScheduled True and
    "assigned to context slurm" before any node)."""
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: later, annotations: {slurm.hpk.io/flags: "--begin=now+600"}}
spec:
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: ["true"]}]
""")
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: unready}
spec:
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: ["true"], envFrom: [{configMapRef: {name: absent}}]}]
""")  # not submitted while its ConfigMap is missing: not scheduled either (helper-84), STATUS says why
    waiting = wait_for(lambda: (s := slurm.json("pod", "unready")["status"]).get("reason") and s, timeout=30)
    assert waiting["reason"] == "CreateContainerConfigError" and waiting["conditions"][0]["status"] == "False", waiting
    slurm("delete", "pod", "unready")
    status = wait_for(lambda: (s := slurm.json("pod", "later")["status"]).get("reason") == "Queued" and s, timeout=30)
    assert status["conditions"] == [{"type": "PodScheduled", "status": "False", "reason": "Queued",
                                     "message": status["message"]}] and "BeginTime" in status["message"], status
    assert slurm("get", "pods", "later").stdout.splitlines()[1].split()[2] == "Queued"
    assert "Scheduled" not in slurm("describe", "pod", "later").stdout.split("Events:")[1]
    slurm("delete", "pod", "later")
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: now}
spec:
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: ["true"]}]
""")
    assert slurm.wait("pod/now", "phase=Succeeded").returncode == 0
    node = slurm.json("pod", "now")["spec"]["nodeName"]
    assert f"Successfully assigned default/now to {node}" in slurm("describe", "pod", "now").stdout


def test_a_request_no_node_of_the_partition_can_hold_is_unschedulable(slurm: Cli) -> None:
    """Slurm queues it (PartitionConfig) and it would wait for ever: Kubernetes' PodScheduled False,
    Unschedulable, and a FailedScheduling warning, not a quiet Queued (helper-72)."""
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: huge}
spec:
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: ["true"], resources: {requests: {cpu: "64"}}}]
""")
    condition = wait_for(lambda: next((c for c in slurm.json("pod", "huge")["status"].get("conditions", [])
                                       if c.get("type") == "PodScheduled" and c.get("status") == "False"), None),
                         timeout=30)
    assert condition["reason"] == "Unschedulable" and "PartitionConfig" in condition["message"], condition
    assert "FailedScheduling" in slurm("describe", "pod", "huge").stdout
    slurm("delete", "pod", "huge")


def test_crash_between_sbatch_and_store_adopts_the_job(slurm: Cli) -> None:
    """The controller is SIGKILLed right after sbatch returned: the restarted one adopts, never resubmits."""
    slurm.env["PODLINE_FAULT"] = "after-sbatch"
    slurm("up")
    pid = slurm.controller_pid()
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: adopted}
spec:
  restartPolicy: Never
  containers: [{name: main, image: busybox, command: [sh, -c, "sleep 1; echo once"]}]
""")
    wait_for(lambda: gone(pid))
    uid = slurm.json("pod", "adopted")["metadata"]["uid"]
    assert not list(slurm.home.parent.glob(f"shared/pods/default/adopted/{uid}/slurm-job-id"))
    del slurm.env["PODLINE_FAULT"]
    slurm("up")
    assert slurm.wait("pod/adopted", "phase=Succeeded").returncode == 0
    jobs = [line for line in squeue("--states=all", "-o", "%i %k").splitlines() if line.endswith(uid)]
    assert len(jobs) == 1, jobs
    assert slurm("logs", "adopted").stdout == "once\n"
    assert os.environ.get("PODLINE_FAULT") is None


def test_indexed_job_is_one_job_array_with_distinct_outputs(slurm: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    slurm.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: shards}}
spec:
  completions: 20
  parallelism: 5
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      volumes: [{{name: out, hostPath: {{path: {out}}}}}]
      containers:
      - name: work
        image: busybox
        command: [sh, -c, "echo $JOB_COMPLETION_INDEX $SLURM_ARRAY_TASK_ID > /out/$(JOB_COMPLETION_INDEX)"]
        volumeMounts: [{{name: out, mountPath: /out}}]
""")
    assert slurm.wait("job/shards", "condition=Complete", timeout=120).returncode == 0, \
        slurm("describe", "job", "shards").stdout
    assert sorted(int(p.name) for p in out.iterdir()) == list(range(20))
    assert all((out / str(i)).read_text() == f"{i} {i}\n" for i in range(20))
    status = slurm.json("job", "shards")["status"]
    assert status["succeeded"] == 20 and status["completedIndexes"] == "0-19"
    submitted = [e for e in slurm("describe", "job", "shards").stdout.splitlines() if "Submitted" in e]
    assert len(submitted) == 1 and "with 20 indexes" in submitted[0]
    array_job = submitted[0].split("job array ")[1].split()[0]
    tasks = squeue("-j", array_job, "--states=all", "-r", "-o", "%i").split()
    assert sorted(tasks) == sorted(f"{array_job}_{i}" for i in range(20))  # one sbatch --array, not 20 jobs
    assert slurm("logs", "job/shards", "--shard", "7").stdout == ""


def test_failed_index_is_retried_in_a_new_array_within_backoff_limit(slurm: Cli, tmp_path: Path) -> None:
    slurm.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: retry}}
spec:
  completions: 3
  completionMode: Indexed
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      volumes: [{{name: m, hostPath: {{path: {tmp_path}}}}}]
      containers:
      - name: work
        image: busybox
        command: [sh, -c, "test $JOB_COMPLETION_INDEX != 1 || test -e /m/seen || {{ touch /m/seen; exit 3; }}"]
        volumeMounts: [{{name: m, mountPath: /m}}]
""")
    assert slurm.wait("job/retry", "condition=Complete", timeout=120).returncode == 0, \
        slurm("describe", "job", "retry").stdout
    status = slurm.json("job", "retry")["status"]
    assert status["succeeded"] == 3 and status["failed"] == 1 and status["completedIndexes"] == "0-2"
    submitted = [e for e in slurm("describe", "job", "retry").stdout.splitlines() if "Submitted" in e]
    assert len(submitted) == 2 and "with 1 indexes" in submitted[1]  # only index 1 was submitted again


def test_an_index_past_its_own_backoff_limit_fails_while_the_others_complete(slurm: Cli) -> None:
    """backoffLimitPerIndex on Slurm: index 1 fails twice (a second array of its own), the others complete in the
    first array, and the Job ends Failed with reason FailedIndexes."""
    slurm.apply("""
apiVersion: batch/v1
kind: Job
metadata: {name: each}
spec:
  completions: 3
  completionMode: Indexed
  backoffLimitPerIndex: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: work, image: busybox, command: [sh, -c, "test $JOB_COMPLETION_INDEX != 1"]}
""")
    assert slurm.wait("job/each", "condition=Failed", timeout=120).returncode == 0, \
        slurm("describe", "job", "each").stdout
    status = slurm.json("job", "each")["status"]
    assert (status["completedIndexes"], status["failedIndexes"], status["failed"]) == ("0,2", "1", 2), status
    assert next(c for c in status["conditions"] if c["type"] == "Failed")["reason"] == "FailedIndexes"
    submitted = [e for e in slurm("describe", "job", "each").stdout.splitlines() if "Submitted" in e]
    assert len(submitted) == 2 and "with 1 indexes" in submitted[1]  # only index 1 was submitted again


def test_hostile_strings_reach_the_process_verbatim_and_bad_flags_are_exit_2(slurm: Cli) -> None:
    nasty = "$(touch /tmp/pwned) `id` ; rm -rf ~ | cat > x && echo \"q\" 'q' \\n * ?"
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: hostile, annotations: {slurm-job.vk.io/flags: "--time=5"}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [python3, -c, "import os, sys; print(sys.argv[1]); print(os.environ['NASTY'])", ARG]
    env: [{name: NASTY, value: ARG}]
""".replace("ARG", '"' + nasty.replace("\\", "\\\\").replace('"', '\\"') + '"')
    slurm.apply(manifest)
    assert slurm.wait("pod/hostile", "phase=Succeeded").returncode == 0, slurm("describe", "pod", "hostile").stdout
    assert slurm("logs", "hostile").stdout.splitlines() == [nasty, nasty]
    assert not Path("/tmp/pwned").exists()
    refused = slurm("apply", "-f", "-", input=manifest.replace("--time=5", "--time=5 --wrap=reboot")
                    .replace("hostile", "other"), check=False)
    assert refused.returncode == 2 and "--wrap" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert slurm("get", "pod", "other", check=False).returncode == 1


def test_logs_follow_streams_a_slurm_pod_until_it_ends(slurm: Cli) -> None:
    slurm.apply("""
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: [sh, -c, "for i in 1 2 3; do echo tick $i; sleep 0.4; done"]}
""")
    out = slurm("logs", "ticker", "-f", timeout=120)
    assert out.stdout.splitlines() == ["tick 1", "tick 2", "tick 3"]
    assert slurm.json("pod", "ticker")["status"]["phase"] == "Succeeded"
