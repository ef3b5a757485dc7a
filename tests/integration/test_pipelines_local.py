"""Pipelines on the real local backend: steps over one workspace, resume from checkpoints, shards, updates.

The interrupted runs are compared byte for byte with an uninterrupted run of the same pipeline. Steps
that misbehave once (append garbage, then hang until killed) use a marker file outside the workspace, so
the retry behaves; a step that were rerun on top of its own leftovers would change the output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from pathlib import Path

import pytest

from tests.conftest import Cli, gone, kill_session, wait_for


def pipeline(name: str, out: Path, steps: str, extra: str = "") -> str:
    return f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: {name}}}
spec:
  outputs: [{{path: result, destination: {out}}}]
{extra}  steps:
{steps}"""


def chain(marker: Path | None, hang_in: str) -> str:
    """gen → grow → select → reduce; the step `hang_in`, on its first run only, appends junk and hangs."""
    def body(name: str, work: str) -> str:
        if marker is None or name != hang_in:
            return work
        once = f"echo $$$$ > {marker}; echo junk >> nums; echo junk > half; sleep 120"
        return f"if [ ! -e {marker} ]; then {once}; fi; {work}"
    works = {"gen": "seq 1 20000 > nums",
             "grow": "awk '{print $1 * 3}' nums > grown",
             "select": "grep 7 grown > selected",
             "reduce": "mkdir -p result && wc -l < selected > result/count && md5sum nums grown selected > result/sums"}
    out = []
    previous = None
    for name, work in works.items():
        deps = f"\n    dependsOn: [{previous}]" if previous else ""
        out.append(f"  - name: {name}\n    image: busybox{deps}\n    command: [sh, -c, {json.dumps(body(name, work))}]")
        previous = name
    return "\n".join(out) + "\n"


def steps_of(cli: Cli, name: str, shard: int = 0) -> dict[str, dict]:
    status = cli.json("pipeline", name)["status"]
    return {s["name"]: s for s in status["steps"] if s["shard"] == shard}


def reference(cli: Cli, tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / "reference"
    cli.apply(pipeline("reference", out, chain(None, "")))
    assert cli.wait("pipeline/reference", "phase=Succeeded").returncode == 0
    uid = cli.json("pipeline", "reference")["metadata"]["uid"]
    assert cli.json("pipeline", "reference")["status"]["shards"][0]["checkpoints"]["L2"]["seq"] == 4
    assert not (cli.home / "scratch" / "checkpoints" / uid / "0").exists(), "a finished shard frees its L2 copy"
    return {p.name: p.read_bytes() for p in out.iterdir()}


def l2_seq(cli: Cli, name: str) -> int | None:
    shards = cli.json("pipeline", name)["status"].get("shards") or [{}]
    return shards[0].get("checkpoints", {}).get("L2", {}).get("seq")


def hung_pid(marker: Path) -> int:
    return int(wait_for(lambda: marker.exists() and marker.read_text().strip()))


def test_chain_runs_steps_in_order_and_stages_out(cli: Cli, tmp_path: Path) -> None:
    expected = reference(cli, tmp_path)
    assert expected["count"].strip() == b"6878"
    steps = steps_of(cli, "reference")
    assert [s["phase"] for s in steps.values()] == ["Succeeded"] * 4
    assert all(s["attempts"] == 1 and s["restoredFrom"] is None for s in steps.values())
    order = [steps[n]["startedAt"] for n in ("gen", "grow", "select", "reduce")]
    assert order == sorted(order)
    doc = cli.json("pipeline", "reference")["status"]
    assert doc["shards"][0]["phase"] == "Succeeded" and doc["shards"][0]["checkpoints"]["L2"]["seq"] == 4
    assert "select" in cli("describe", "pipeline", "reference").stdout
    assert cli("logs", "pipeline/reference", "-c", "gen").returncode == 0


def test_step_killed_mid_run_is_retried_from_its_checkpoint(cli: Cli, tmp_path: Path) -> None:
    expected = reference(cli, tmp_path)
    marker, out = tmp_path / "marker", tmp_path / "out"
    cli.apply(pipeline("killstep", out, chain(marker, "select")))
    os.kill(hung_pid(marker), signal.SIGKILL)  # the step's shell: SIGKILL mid-run, after it touched `nums`
    assert cli.wait("pipeline/killstep", "phase=Succeeded").returncode == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == expected
    steps = steps_of(cli, "killstep")
    assert {n: s["attempts"] for n, s in steps.items()} == {"gen": 1, "grow": 1, "select": 2, "reduce": 1}
    # The killed step had appended to `nums`: the workspace no longer matched L1, so L2 put it back.
    assert steps["select"]["restoredFrom"] == "L2"


def test_runner_killed_resumes_without_rerunning_finished_steps(cli: Cli, tmp_path: Path) -> None:
    expected = reference(cli, tmp_path)
    marker, out = tmp_path / "marker", tmp_path / "out"
    cli.apply(pipeline("killrunner", out, chain(marker, "reduce")))
    hung_pid(marker)
    uid = cli.json("pipeline", "killrunner")["metadata"]["uid"]
    # L2 copies are written in the background while later steps run; the status says when one is complete.
    wait_for(lambda: l2_seq(cli, "killrunner") == 3)
    started = wait_for(lambda: list(cli.home.glob("pods/default/killrunner/*/0/started")))[0]
    runner = json.loads(started.read_text())["pid"]
    kill_session(runner)  # the whole runner and its steps, as a node failure would
    wait_for(lambda: gone(runner))
    assert cli.wait("pipeline/killrunner", "phase=Succeeded").returncode == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == expected
    status = cli.json("pipeline", "killrunner")["status"]
    steps = steps_of(cli, "killrunner")
    assert {n: s["attempts"] for n, s in steps.items()} == {"gen": 1, "grow": 1, "select": 1, "reduce": 2}
    assert [steps[n]["restoredFrom"] for n in ("gen", "grow", "select")] == ["L2"] * 3
    assert status["shards"][0]["attempts"] == 2 and status["shards"][0]["restoredFrom"] == "L2"
    assert not list((tmp_path / "shm").glob(f"podline-{uid}-*")), "a finished shard frees its RAM workspace"


SSHFS = Path("/mnt/podline-shared")


@pytest.mark.parametrize("shared_on", ["local-disk", "sshfs"])
def test_corrupted_node_local_checkpoint_falls_back_to_shared(cli: Cli, tmp_path: Path, shared_on: str) -> None:
    shared = cli.home / "shared"
    if shared_on == "sshfs":
        if not os.path.ismount(SSHFS):
            pytest.skip(f"{SSHFS} is not mounted (run scripts/sshfs-up.sh as root)")
        shared = SSHFS / "tests" / f"{tmp_path.name}-{uuid.uuid4().hex[:8]}"  # unique across concurrent runs
        cli("config", "set-context", "local", "--backend", "local", "--shared-dir", str(shared))
    expected = reference(cli, tmp_path)
    marker, out = tmp_path / "marker", tmp_path / "out"
    cli.apply(pipeline("corrupt", out, chain(marker, "reduce"), "  checkpoint: {nodeLocalEvery: 1, sharedEvery: 1}\n"))
    hung_pid(marker)
    uid = cli.json("pipeline", "corrupt")["metadata"]["uid"]
    l2 = cli.home / "scratch" / "checkpoints" / uid / "0" / "3" / "data" / "grown"
    l3 = shared / "checkpoints" / uid / "0" / "3" / "data" / "grown"
    wait_for(l2.exists)  # L2 is written in the background, L3 before the next step starts
    assert l3.exists() and not os.path.samefile(l2, l3)
    data = bytearray(l2.read_bytes())
    data[100] ^= 0x01  # one flipped bit, same size: only the hash can tell
    l2.write_bytes(bytes(data))
    shutil.rmtree(tmp_path / "shm" / f"podline-{uid}-0")  # the pod's RAM workspace is gone too (new node)
    started = next(cli.home.glob("pods/default/corrupt/*/0/started"))
    runner = json.loads(started.read_text())["pid"]
    kill_session(runner)
    assert cli.wait("pipeline/corrupt", "phase=Succeeded").returncode == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == expected
    status = cli.json("pipeline", "corrupt")["status"]
    assert status["shards"][0]["restoredFrom"] == "L3"
    steps = steps_of(cli, "corrupt")
    assert {n: s["attempts"] for n, s in steps.items()} == {"gen": 1, "grow": 1, "select": 1, "reduce": 2}
    runner_logs = "".join(p.read_text() for p in cli.home.glob("pods/default/corrupt/*/0/runner.log"))
    assert "hash mismatch" in runner_logs
    described = cli("describe", "pipeline", "corrupt").stdout  # not only in the runner's log (helper-78)
    assert "CheckpointInvalid" in described and "shard 0: checkpoint L2 seq 3: " in described, described
    cli("delete", "pipeline", "corrupt")
    wait_for(lambda: not (shared / "checkpoints" / uid).exists(), timeout=60)  # deleting removes its checkpoints


def test_three_shards_give_three_distinct_outputs(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    steps = """  - name: work
    image: busybox
    command: [sh, -c, 'mkdir -p result && echo "shard $PODLINE_SHARD of $0 ($JOB_COMPLETION_INDEX)" >result/who',
              $(PODLINE_SHARDS)]
"""
    cli.apply(pipeline("sharded", out, steps, "  shards: 3\n"))
    assert cli.wait("pipeline/sharded", "phase=Succeeded").returncode == 0
    got = sorted((out / str(i) / "who").read_text() for i in range(3))
    assert got == [f"shard {i} of 3 ({i})\n" for i in range(3)]
    table = cli("get", "pipelines", "-o", "wide").stdout
    assert "3/3" in table and "Succeeded" in table
    picked = cli("logs", "pipeline/sharded", "-c", "work")  # says which shard, as kubectl which container
    assert picked.stderr == "Defaulted shard 0 out of 0..2 (--shard I picks another)\n", picked
    assert "shard 0" not in cli("logs", "pipeline/sharded", "-c", "work", "--shard", "1").stderr
    on_disk = pipeline("sharded", out, steps, "  shards: 3\n  workspace: {medium: Disk}\n")
    changed = cli("apply", "-f", "-", input=on_disk, check=False)
    assert changed.returncode == 2 and "workspace cannot change" in changed.stderr
    assert cli("scale", "pipeline/sharded", "--shards", "2", check=False).returncode == 2
    cli("scale", "pipeline/sharded", "--shards", "4")
    wait_for(lambda: (out / "3" / "who").exists())
    assert cli.wait("pipeline/sharded", "phase=Succeeded").returncode == 0
    assert (out / "3" / "who").read_text() == "shard 3 of 4 (3)\n"
    assert [s["attempts"] for s in cli.json("pipeline", "sharded")["status"]["shards"]] == [1, 1, 1, 1]


def test_apply_during_run_reaches_steps_not_started(cli: Cli, tmp_path: Path) -> None:
    gate, out = tmp_path / "gate", tmp_path / "out"

    def spec(version: str) -> str:
        return pipeline("update", out, f"""  - name: first
    image: busybox
    command: [sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done; echo first > first']
  - name: second
    image: busybox
    dependsOn: [first]
    command: [sh, -c, 'mkdir -p result && cat first > result/out && echo {version} >> result/out']
""")
    cli.apply(spec("v1"))
    wait_for(lambda: steps_of(cli, "update").get("first", {}).get("phase") == "Running")
    assert "configured" in cli.apply(spec("v2")).stdout
    wait_for(lambda: any("Updated" in line for line in cli("describe", "pipeline", "update").stdout.splitlines()))
    gate.touch()
    assert cli.wait("pipeline/update", "phase=Succeeded").returncode == 0
    assert (out / "out").read_text() == "first\nv2\n"
    steps = steps_of(cli, "update")
    assert steps["first"]["generation"] == 1 and steps["second"]["generation"] == 2


def test_workspace_over_its_size_limit_fails_with_a_clear_reason(cli: Cli, tmp_path: Path) -> None:
    cli.apply(pipeline("full", tmp_path / "out", """  - name: fill
    image: busybox
    command: [sh, -c, 'head -c 3000000 /dev/zero > big; sleep 30']
""", "  workspace: {medium: Memory, sizeLimit: 1Mi}\n  backoffLimit: 0\n"))
    assert cli.wait("pipeline/full", "phase=Failed").returncode == 0
    shard = cli.json("pipeline", "full")["status"]["shards"][0]
    assert shard["reason"] == "BackoffLimitExceeded" and "sizeLimit" in shard["message"]
    assert steps_of(cli, "full")["fill"]["reason"] == "WorkspaceLimitExceeded"


def test_a_shard_failed_for_good_gives_its_ram_workspace_back_and_keeps_its_l2(cli: Cli, tmp_path: Path) -> None:
    """A failed shard keeps its RAM workspace for the attempt that resumes from it, but not once backoffLimit
    is spent: it would hold the node's memory until the pipeline is deleted."""
    cli.apply(pipeline("spent", tmp_path / "out", """  - name: a
    image: busybox
    command: [sh, -c, 'echo made > made']
  - name: b
    image: busybox
    dependsOn: [a]
    command: [sh, -c, 'exit 4']
""", "  workspace: {medium: Memory}\n  backoffLimit: 1\n"))
    assert cli.wait("pipeline/spent", "phase=Failed").returncode == 0
    status = cli.json("pipeline", "spent")["status"]
    assert status["shards"][0]["failures"] == 2 and status["shards"][0]["reason"] == "BackoffLimitExceeded"
    uid = cli.json("pipeline", "spent")["metadata"]["uid"]
    assert wait_for(lambda: not list((tmp_path / "shm").glob(f"podline-{uid}*")))
    assert list((cli.home / "scratch" / "checkpoints" / uid / "0").iterdir()), "the L2 copy stays, to look at"


def test_delete_stops_a_running_pipeline(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    cli.apply(pipeline("stopme", tmp_path / "out", chain(marker, "gen")))
    step = hung_pid(marker)
    cli("delete", "pipeline", "stopme")
    wait_for(lambda: gone(step), timeout=60)
    wait_for(lambda: cli("get", "pipeline", "stopme", check=False).returncode != 0, timeout=60)
    assert not list(cli.home.glob("pods/default/stopme/*"))
    assert not (cli.home / "pods" / "default" / "stopme").exists(), "no empty directory per deleted pipeline"


def test_sigkill_controller_mid_pipeline_reruns_nothing(cli: Cli, tmp_path: Path) -> None:
    ledger, out = tmp_path / "ledger", tmp_path / "out"
    steps = "\n".join(f"""  - name: s{i}
    image: busybox{f'{chr(10)}    dependsOn: [s{i - 1}]' if i else ''}
    command: [sh, -c, 'echo $PODLINE_SHARD-s{i} >> {ledger}; sleep 1; mkdir -p result; echo s{i} >> result/trail']"""
                      for i in range(4))
    cli.apply(pipeline("ledgered", out, steps + "\n", "  shards: 2\n"))
    for _ in range(2):  # kill the controller twice while steps run, restarting it in between
        wait_for(lambda: cli.json("pipeline", "ledgered")["status"].get("phase") == "Running")
        cli.kill_controller_and_restart()
    assert cli.wait("pipeline/ledgered", "phase=Succeeded").returncode == 0
    assert sorted(ledger.read_text().split()) == sorted(f"{s}-s{i}" for s in range(2) for i in range(4))
    assert [(out / str(s) / "trail").read_text() for s in range(2)] == ["s0\ns1\ns2\ns3\n"] * 2
    status = cli.json("pipeline", "ledgered")["status"]
    assert [s["attempts"] for s in status["shards"]] == [1, 1]


def test_independent_steps_run_at_the_same_time(cli: Cli, tmp_path: Path) -> None:
    def meet(me: str, other: str) -> str:  # each branch waits (up to 10 s) until the other one has started
        return (f"touch {me}.started; for i in $(seq 500); do [ -e {other}.started ] && echo {me} > {me} && exit 0;"
                " sleep 0.02; done; exit 1")
    out = tmp_path / "out"
    cli.apply(pipeline("diamond", out, f"""  - name: a
    command: [sh, -c, 'echo a > a']
  - name: b
    dependsOn: [a]
    command: [sh, -c, '{meet("b", "c")}']
  - name: c
    dependsOn: [a]
    command: [sh, -c, '{meet("c", "b")}']
  - name: d
    dependsOn: [b, c]
    command: [sh, -c, 'mkdir -p result && cat a b c > result/abc']
""", "  restartPolicy: Never\n  backoffLimit: 0\n"))
    assert cli.wait("pipeline/diamond", "phase=Succeeded").returncode == 0
    assert (out / "abc").read_text() == "a\nb\nc\n"
    steps = steps_of(cli, "diamond")
    assert steps["b"]["startedAt"] < steps["c"]["finishedAt"] and steps["c"]["startedAt"] < steps["b"]["finishedAt"]
    assert steps["d"]["startedAt"] >= max(steps["b"]["finishedAt"], steps["c"]["finishedAt"])


def test_a_step_takes_its_environment_from_config_maps_and_secrets_as_a_container_does(
        cli: Cli, tmp_path: Path) -> None:
    """envFrom in a step (helper-83: refused with a wrong reason, though a step's env valueFrom worked)."""
    cli.apply("{apiVersion: v1, kind: ConfigMap, metadata: {name: settings}, data: {MODE: 'fast; $(rm)', N: '3'}}")
    cli.apply("{apiVersion: v1, kind: Secret, metadata: {name: creds}, stringData: {TOKEN: s3cr3t}}")
    cli.apply(pipeline("fromenv", tmp_path / "out", """
  - name: say
    image: busybox
    envFrom: [{configMapRef: {name: settings}, prefix: CFG_}, {secretRef: {name: creds}}]
    command: [sh, -c, 'mkdir result; echo "$CFG_MODE|$CFG_N|$TOKEN" > result/env']
"""))
    assert cli.wait("pipeline/fromenv", "phase=Succeeded").returncode == 0
    assert (tmp_path / "out" / "env").read_text() == "fast; $(rm)|3|s3cr3t\n"


def test_a_pipeline_waiting_for_a_config_map_holds_no_capacity(cli: Cli, tmp_path: Path) -> None:
    """`blocked` would take the whole machine but names a ConfigMap not there yet: it waits without holding
    the cores, so `free` runs meanwhile; then the ConfigMap comes and `blocked` runs too."""
    cli.env["PODLINE_CPU_MILLIS"] = "1000"
    cli("up")
    env = "env: [{name: WORD, valueFrom: {configMapKeyRef: {name: later, key: word}}}]"
    cli.apply(pipeline("blocked", tmp_path / "blocked", f"""
  - {{name: say, image: busybox, command: [sh, -c, 'mkdir result; echo $WORD > result/w'],
     resources: {{requests: {{cpu: "1"}}}}, {env}}}
"""))
    wait_for(lambda: cli.json("pipeline", "blocked")["status"].get("shards", [{}])[0].get("reason")
             == "CreateContainerConfigError")
    cli.apply(pipeline("free", tmp_path / "free", """
  - {name: say, image: busybox, command: [sh, -c, 'mkdir result; echo free > result/w'],
     resources: {requests: {cpu: "1"}}}
"""))
    assert cli.wait("pipeline/free", "phase=Succeeded", timeout=60).returncode == 0
    assert cli.json("pipeline", "blocked")["status"]["phase"] == "Pending"
    cli.apply("{apiVersion: v1, kind: ConfigMap, metadata: {name: later}, data: {word: hello}}")
    assert cli.wait("pipeline/blocked", "phase=Succeeded", timeout=60).returncode == 0
    assert (tmp_path / "blocked" / "w").read_text() == "hello\n"


def siblings(name: str, tmp_path: Path, backoff: int, join_first: str = "") -> str:
    """a -> (slow, flaky) -> join: `flaky` fails once while `slow` still runs, after appending to `a` and
    writing `junk`; `join_first` runs at the start of `join`."""
    started, marker = tmp_path / "flaky-started", tmp_path / "flaky-failed"
    once = f"touch {marker}; echo partial >> a; echo junk > junk; exit 1"
    return pipeline(name, tmp_path / "out", f"""  - name: a
    command: [sh, -c, 'echo a > a']
  - name: slow
    dependsOn: [a]
    command: [sh, -c, 'until [ -e {started} ]; do sleep 0.02; done; sleep 1; echo s > s']
  - name: flaky
    dependsOn: [a]
    command: [sh, -c, 'touch {started}; if [ ! -e {marker} ]; then {once}; fi; echo f > f']
  - name: join
    dependsOn: [slow, flaky]
    command: [sh, -c, '{join_first}mkdir -p result && ls > result/files && cat a s f > result/all']
""", f"  restartPolicy: OnFailure\n  backoffLimit: {backoff}\n")


def test_a_step_failing_beside_a_running_sibling_is_retried_in_place_and_the_sibling_never_reruns(
        cli: Cli, tmp_path: Path) -> None:
    """`flaky` fails once, after appending to `a` and writing `junk`, while `slow` (its sibling) still runs.
    No checkpoint holds both `slow`'s coming result and nothing of `flaky`'s leftovers, and a finished step is
    never run again (SPEC): `flaky` is retried in place after its back-off, over what it left (as kubelet
    restarts a container over its emptyDir), while `slow` goes on; `slow` runs once (helper-83: it ran twice)."""
    out = tmp_path / "out"
    cli.apply(siblings("siblings", tmp_path, 2))
    assert cli.wait("pipeline/siblings", "phase=Succeeded").returncode == 0
    assert (out / "files").read_text() == "a\nf\njunk\nresult\ns\n"
    assert (out / "all").read_text() == "a\npartial\ns\nf\n"  # its first attempt's append stays, in place
    steps = steps_of(cli, "siblings")
    assert [steps[n]["attempts"] for n in ("a", "slow", "flaky", "join")] == [1, 1, 2, 1]
    assert steps["flaky"]["restoredFrom"] is None


def test_a_step_retry_and_a_lost_runner_are_two_failures(cli: Cli, tmp_path: Path) -> None:
    """backoffLimit 2: one step retry (`flaky`), then the runner is lost during `join`: two failures, so the
    shard resumes (a sibling's run never counted as a failure of its own)."""
    hang = tmp_path / "join-hung"
    cli.apply(siblings("counted", tmp_path, 2, f"if [ ! -e {hang} ]; then echo $$$$ > {hang}; sleep 120; fi; "))
    wait_for(lambda: hang.exists() and hang.read_text().strip())
    started = wait_for(lambda: list(cli.home.glob("pods/default/counted/*/0/started")))[0]
    runner = json.loads(started.read_text())["pid"]
    kill_session(runner)
    wait_for(lambda: gone(runner))
    assert cli.wait("pipeline/counted", "phase=Succeeded").returncode == 0
    assert (tmp_path / "out" / "all").read_text() == "a\npartial\ns\nf\n"
    assert cli.json("pipeline", "counted")["status"]["shards"][0]["failures"] == 2


def _most_at_once(spans: Path) -> int:
    """From `start|end NAME TIME` lines: the most steps that ran at the same moment."""
    moments = sorted((float(t), 1 if kind == "start" else -1) for kind, _, t in
                     (line.split() for line in spans.read_text().splitlines()))
    running = most = 0
    for _, change in moments:  # an end and a start at the same instant: the end first (-1 sorts before 1)
        running += change
        most = max(most, running)
    return most


def test_steps_side_by_side_stay_within_the_cores_the_shard_holds(cli: Cli, tmp_path: Path) -> None:
    """helper-83: a 2-core step started beside a 1-core one on a 2-core machine, and two shards of two 1-core
    branches ran four steps at once, each runner taking the whole machine. A shard now holds what its steps use
    side by side (up to the machine), and its runner starts steps within that."""
    cli.env["PODLINE_CPU_MILLIS"] = "2000"
    cli("up")
    spans = tmp_path / "spans"

    def step(name: str, extra: str = "") -> str:
        return (f"  - {{name: {name}, image: busybox{extra}, command: [sh, -c, 'echo start {name} $(date +%s.%N) "
                f">> {spans}; sleep 0.6; mkdir -p result; echo end {name} $(date +%s.%N) >> {spans}']}}\n")
    cli.apply(pipeline("wide", tmp_path / "o1", step("small") + step("big", ", resources: {requests: {cpu: '2'}}")))
    assert cli.wait("pipeline/wide", "phase=Succeeded").returncode == 0
    assert _most_at_once(spans) == 1  # 1 + 2 cores do not fit in 2
    spans.unlink()
    cli.apply(pipeline("forks", tmp_path / "o2", step("x") + step("y"), "  shards: 2\n"))
    assert cli.wait("pipeline/forks", "phase=Succeeded").returncode == 0
    assert _most_at_once(spans) == 2, spans.read_text()  # each shard holds 2 cores for its two branches
