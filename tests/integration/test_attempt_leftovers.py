"""Nothing an attempt started outlives it: a step's `setsid` child survives a SIGKILL of its runner alone (as the
OOM killer sends it), but not into the next attempt, which would otherwise resume from a workspace the old
attempt's processes still write into (runtime.attempt_marks).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podline.runtime.attempt_marks import ENV, Mark, marked_processes
from tests.conftest import Cli, gone, wait_for
from tests.imagebuild import Layer, busybox_image


def steps(gate: Path, beats: Path) -> str:
    """make → sum; `sum` on its first run leaves a `setsid` loop that keeps appending junk to `nums` (and a
    heartbeat outside the workspace), then hangs; on its next run it says whether the loop still beats."""
    loop = f"echo $$$$ > {beats}.pid; while :; do echo junk >> nums; echo . >> {beats}; sleep 0.05; done"
    first = f"touch {gate}; setsid sh -c '{loop}' </dev/null >/dev/null 2>&1 & sleep 60"
    check = (f"a=$(wc -l < {beats}); sleep 0.5; b=$(wc -l < {beats}); "
             "if [ $a = $b ]; then echo gone; else echo beating; fi > result/orphan")
    total = "awk '{s += $1} END {print s}' nums > result/sum"
    sum_ = f"if [ ! -e {gate} ]; then {first}; fi; mkdir -p result; {check}; {total}"
    return f"""
  - {{name: make, image: busybox, command: [sh, -c, 'seq 1 100 > nums']}}
  - name: sum
    image: busybox
    dependsOn: [make]
    command: [sh, -c, {json.dumps(sum_)}]
"""


@pytest.fixture
def orphans() -> Iterator[list[int]]:
    """Pids the test learns of; whatever of them still runs at its end is killed (a failing test leaves none)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_setsid_child_of_a_runner_killed_alone_is_gone_before_the_next_attempt(cli: Cli, tmp_path: Path,
                                                                                  orphans: list[int]) -> None:
    gate, beats, out = tmp_path / "gate", tmp_path / "beats", tmp_path / "out"
    cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: leaky}}
spec:
  outputs: [{{path: result, destination: {out}}}]
  steps:{steps(gate, beats)}""")
    orphan = int(wait_for(lambda: beats.exists() and Path(f"{beats}.pid").read_text().strip(), timeout=30))
    orphans.append(orphan)
    started = wait_for(lambda: list(cli.home.glob("pods/default/leaky/*/0/started")))[0]
    runner = json.loads(started.read_text())["pid"]
    assert os.getsid(orphan) != os.getsid(runner), "the loop left the runner's session"
    os.kill(runner, signal.SIGKILL)  # the runner alone: its session (the step's shell) and the loop live on
    assert cli.wait("pipeline/leaky", "phase=Succeeded", timeout=30).returncode == 0, cli("describe", "pipeline",
                                                                                          "leaky").stdout
    assert (out / "orphan").read_text().strip() == "gone", "the old attempt's loop ran beside the next attempt"
    assert (out / "sum").read_text().strip() == "5050", "its junk reached the resumed workspace"
    assert gone(orphan)
    shard = cli.json("pipeline", "leaky")["status"]["shards"][0]
    assert shard["attempts"] == 2


def test_a_pod_whose_runner_was_killed_alone_leaves_nothing_running(cli: Cli, tmp_path: Path,
                                                                     orphans: list[int]) -> None:
    """No attempt follows a lost pod: the local backend kills what escaped its runner's session by the mark."""
    escaped = tmp_path / "escaped"
    cli.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: alone}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'setsid sleep 394 </dev/null & echo $! > {escaped}; exec sleep 300']
""")
    orphan = int(wait_for(lambda: escaped.exists() and escaped.read_text().strip(), timeout=30))
    orphans.append(orphan)
    started = wait_for(lambda: list(cli.home.glob("pods/default/alone/*/started")))[0]
    os.kill(json.loads(started.read_text())["pid"], signal.SIGKILL)
    assert cli.wait("pod/alone", "phase=Failed", timeout=30).returncode == 0
    wait_for(lambda: gone(orphan), timeout=10)


def marked_sleep(mark: str | None) -> subprocess.Popen[bytes]:
    env = {"PATH": os.environ["PATH"], **({ENV: mark} if mark else {})}
    return subprocess.Popen(["setsid", "sleep", "60"], env=env)


def runner_begins(scope: str, sweep: bool = True) -> str:
    """What a runner starting an attempt of `scope` logs (in a process of its own: it marks its environment)."""
    code = f"from podline.runtime.attempt_marks import begin; begin({scope!r}, print, sweep={sweep})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_a_runner_kills_earlier_attempts_of_its_work_on_its_node_and_nothing_else(tmp_path: Path) -> None:
    scope = f"podline-test-{os.getpid()}-{time.time_ns()}-0"
    now, node = time.time_ns(), socket.gethostname()
    earlier = [marked_sleep(str(Mark(scope, node, now - 10**9, 1))), marked_sleep(str(Mark(scope, node, now, 2)))]
    spared = [marked_sleep(str(Mark(scope, node, now + 10**12, 3))),     # a later attempt
              marked_sleep(str(Mark(scope + "1", node, now - 10**9, 4))),  # other work
              marked_sleep(str(Mark(scope, node + "x", now - 10**9, 5))),  # another node sharing the PID namespace
              marked_sleep(None), marked_sleep("not-a-mark")]
    try:
        wanted = {p.pid for p in earlier + spared[:3]}
        wait_for(lambda: wanted <= {pid for pid, _ in marked_processes()}, timeout=10)
        assert runner_begins(scope, sweep=False) == "", "a runner podline gave up kills nothing"
        assert all(p.poll() is None for p in earlier)
        assert "killed 2 process(es)" in runner_begins(scope)
        assert [p.wait(timeout=5) for p in earlier] == [-signal.SIGKILL] * 2
        assert all(p.poll() is None for p in spared)
    finally:
        for proc in earlier + spared:
            proc.kill()
            proc.wait()


def bwrap_works() -> bool:
    return shutil.which("bwrap") is not None and subprocess.run(
        ["bwrap", "--ro-bind", "/", "/", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap is not installed or cannot create namespaces here")
def test_processes_in_a_bwrap_container_carry_the_mark_and_end_with_a_runner_killed_alone(cli: Cli,
                                                                                          tmp_path: Path) -> None:
    layout, extra = tmp_path / "layout", Layer()
    extra.symlink("bin/setsid", "/bin/busybox")
    busybox_image(layout, tag="sh", extra=[extra])
    cli("config", "set-context", "local", "--runtime", "bwrap")
    cli.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: boxed}}
spec:
  restartPolicy: Never
  containers:
  - {{name: c, image: "oci:{layout}:sh", command: [sh, -c, 'setsid sleep 60 </dev/null & sleep 60']}}
""")
    started = wait_for(lambda: list(cli.home.glob("pods/default/boxed/*/started")), timeout=30)[0]
    doc = wait_for(lambda: (d := json.loads(started.read_text())).get("run") and d, timeout=10)

    def marked() -> list[int]:
        return [pid for pid, mark in marked_processes() if str(mark) == doc["run"]]

    # bwrap's two processes, the shell (exec'd into its last sleep) and the setsid sleep, in a session of its own
    found = wait_for(lambda: len(m := marked()) >= 4 and m, timeout=30)
    assert len({os.getsid(pid) for pid in found}) >= 2
    os.kill(doc["pid"], signal.SIGKILL)  # the runner alone
    wait_for(lambda: not marked(), timeout=15)
    assert cli.wait("pod/boxed", "phase=Failed", timeout=30).returncode == 0
