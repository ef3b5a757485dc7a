"""What a shard's failure leaves in the Pipeline's status: a step that died with its runner ends with it, a
shard waiting for its retry keeps the pipeline Running, and a backoffLimit lowered by `apply` during that wait
ends the shard at once (as a Job's pod failures past its limit do)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Cli, gone, kill_session, wait_for
from tests.integration.test_pipelines_local import pipeline, steps_of


def two_steps(tmp_path: Path, second: str) -> str:
    return f"""  - name: a
    image: busybox
    command: [sh, -c, 'mkdir -p result && echo a > result/a']
  - name: b
    image: busybox
    dependsOn: [a]
    command: [sh, -c, {json.dumps(second)}]
"""


def test_a_step_running_when_its_runner_died_ends_failed_with_the_shard(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    cli.apply(pipeline("lost", tmp_path / "out", two_steps(tmp_path, f"echo $$ > {marker}; sleep 120"),
                       "  backoffLimit: 0\n"))
    wait_for(lambda: marker.exists() and marker.read_text().strip())
    started = wait_for(lambda: list(cli.home.glob("pods/default/lost/*/0/started")))[0]
    runner = json.loads(started.read_text())["pid"]
    kill_session(runner)
    wait_for(lambda: gone(runner))
    assert cli.wait("pipeline/lost", "phase=Failed").returncode == 0
    steps = steps_of(cli, "lost")
    assert steps["a"]["phase"] == "Succeeded"
    assert steps["b"]["phase"] == "Failed" and steps["b"]["reason"] == "RunnerLost" and steps["b"].get("finishedAt")
    assert "Running" not in cli("describe", "pipeline", "lost").stdout.split("Events")[0]


def test_a_lowered_backoff_limit_ends_a_shard_waiting_for_its_retry(cli: Cli, tmp_path: Path) -> None:
    cli.env["PODLINE_JOB_BACKOFF_SECONDS"] = "60"  # the shard waits a minute before its second attempt
    runs = tmp_path / "runs"
    manifest = pipeline("lowered", tmp_path / "out", two_steps(tmp_path, f"echo run >> {runs}; exit 3"),
                        "  restartPolicy: Never\n  backoffLimit: 4\n")
    cli.apply(manifest)
    wait_for(lambda: cli.json("pipeline", "lowered")["status"].get("shards", [{}])[0].get("failures") == 1)
    assert cli.json("pipeline", "lowered")["status"]["phase"] == "Running"  # waiting to retry, not Pending
    cli.apply(manifest.replace("backoffLimit: 4", "backoffLimit: 0"))
    assert cli.wait("pipeline/lowered", "phase=Failed", timeout=20).returncode == 0
    shard = cli.json("pipeline", "lowered")["status"]["shards"][0]
    assert shard["reason"] == "BackoffLimitExceeded" and shard["failures"] == 1
    assert runs.read_text() == "run\n"  # no second attempt


def test_a_retry_whose_stage_in_fails_fails_the_shard_with_the_reason_not_a_traceback(cli: Cli, tmp_path: Path) -> None:
    """No checkpoint yet (nodeLocalEvery 0, the step fails first): the retry stages in again, from a source the
    step moved away. The shard fails with the reason; the runner does not crash. A source that does not exist is
    DatasetNotFound, final: no new attempt would find it (it was StageInFailed, retried to backoffLimit)."""
    src, flag = tmp_path / "src", tmp_path / "flag"
    src.mkdir()
    (src / "a").write_text("hello\n")
    first = f"if [ ! -e {flag} ]; then touch {flag}; mv {src} {src}.gone; exit 1; fi; cat in/a"
    cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: moved}}
spec:
  restartPolicy: OnFailure
  backoffLimit: 1
  inputs: [{{source: {src}, path: in}}]
  steps:
  - {{name: s1, image: busybox, command: [sh, -c, {json.dumps(first)}]}}
""")
    assert cli.wait("pipeline/moved", "phase=Failed").returncode == 0
    shard = cli.json("pipeline", "moved")["status"]["shards"][0]
    assert shard["reason"] == "DatasetNotFound" and f"its source {src} does not exist" in shard["message"], shard
    assert shard["failures"] == 2  # the step's retry, then the failed stage-in: no third attempt
    logs = "".join(p.read_text() for p in cli.home.glob("pods/default/moved/*/0/runner.log"))
    assert "Traceback" not in logs


def test_a_step_whose_new_spec_names_a_missing_config_map_waits_for_it_rather_than_run_the_old_one(
        cli: Cli, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    first = f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: cm}}
spec:
  steps:
  - {{name: a, image: busybox, command: [sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done']}}
  - {{name: b, image: busybox, dependsOn: [a], command: [sh, -c, 'echo b-v1']}}
"""
    cli.apply(first)
    wait_for(lambda: steps_of(cli, "cm").get("a", {}).get("phase") == "Running")
    cli.apply(first.replace("command: [sh, -c, 'echo b-v1']", "env: [{name: V, valueFrom: {configMapKeyRef: "
                            "{name: later, key: v}}}], command: [sh, -c, 'echo b-v2 V=$V']"))
    gate.touch()
    wait_for(lambda: steps_of(cli, "cm")["a"]["phase"] == "Succeeded")
    time.sleep(2.5)  # the runner re-reads its plan within a second: b would have started on the old spec
    assert steps_of(cli, "cm")["b"]["phase"] == "Pending" and steps_of(cli, "cm")["b"]["attempts"] == 0
    cli.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\ndata: {v: x}\n")
    assert cli.wait("pipeline/cm", "phase=Succeeded", timeout=30).returncode == 0
    assert cli("logs", "pipeline/cm", "-c", "b").stdout == "b-v2 V=x\n"
    assert steps_of(cli, "cm")["b"]["generation"] == 2


def test_a_step_given_more_cores_by_apply_makes_its_shard_hold_them(cli: Cli, tmp_path: Path) -> None:
    cli.env["PODLINE_CPU_MILLIS"] = "2000"  # a two-core machine
    gate = tmp_path / "gate"
    first = f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: grow}}
spec:
  steps:
  - {{name: a, image: busybox, resources: {{requests: {{cpu: "1"}}}},
      command: [sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done']}}
  - {{name: b, image: busybox, dependsOn: [a], resources: {{requests: {{cpu: "1"}}}}, command: ["true"]}}
"""
    cli.apply(first)
    wait_for(lambda: steps_of(cli, "grow").get("a", {}).get("phase") == "Running")
    cli.apply(first.replace('dependsOn: [a], resources: {requests: {cpu: "1"}}',
                            'dependsOn: [a], resources: {requests: {cpu: "2"}}'))
    wait_for(lambda: "Updated" in cli("describe", "pipeline", "grow").stdout)
    cli.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: one}\nspec:\n  restartPolicy: Never\n  containers: "
              "[{name: c, image: busybox, command: ['true'], resources: {requests: {cpu: '1'}}}]\n")
    wait_for(lambda: cli.json("pod", "one")["status"].get("conditions", [{}])[0].get("reason") == "Unschedulable")
    gate.touch()
    assert cli.wait("pipeline/grow", "phase=Succeeded").returncode == 0
    assert cli.wait("pod/one", "phase=Succeeded").returncode == 0


def test_a_step_given_more_cores_than_the_machine_has_waits_unschedulable(cli: Cli, tmp_path: Path) -> None:
    """helper-83: an update asking 64 cores on a 2-core machine was taken and ran short, holding 64 cores
    meanwhile. As for a pod asking more than any node has: the step waits (FailedScheduling), and a spec that
    fits, applied again, runs."""
    cli.env["PODLINE_CPU_MILLIS"] = "2000"
    gate, out = tmp_path / "gate", tmp_path / "b-ran"
    first = f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: huge}}
spec:
  steps:
  - {{name: a, image: busybox, command: [sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done']}}
  - {{name: b, image: busybox, dependsOn: [a], resources: {{requests: {{cpu: "1"}}}}, command: [touch, {out}]}}
"""
    cli.apply(first)
    wait_for(lambda: steps_of(cli, "huge").get("a", {}).get("phase") == "Running")
    cli.apply(first.replace('cpu: "1"', 'cpu: "64"'))
    wait_for(lambda: "FailedScheduling" in cli("describe", "pipeline", "huge").stdout)
    gate.touch()
    wait_for(lambda: steps_of(cli, "huge").get("a", {}).get("phase") == "Succeeded")
    time.sleep(1.5)  # the runner looks at its plan every second: b is held, not started
    assert steps_of(cli, "huge")["b"]["phase"] == "Pending" and not out.exists()
    cli.apply(first.replace('cpu: "1"', 'cpu: "2"'))
    assert cli.wait("pipeline/huge", "phase=Succeeded").returncode == 0
    assert out.exists() and steps_of(cli, "huge")["b"]["generation"] == 3
