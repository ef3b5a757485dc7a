"""The pilot agent on its own (no Slurm needed): it runs queued pods with the real pod runner, packs them into
its size, stops them when asked, and leaves when the workflow is over or it has been idle long enough."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from podline.api.pilot import PilotSize, parse_pilot
from podline.backends.base import SubmitError
from podline.backends.pilot import Pilots
from podline.backends.squeue import SqueueWatcher
from podline.plan.pod import plan_pod
from podline.plan.slurm import Placement
from podline.runtime.files import read_json, write_json_atomic
from tests.conftest import gone, wait_for


def pod(name: str, script: str, cpu: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2, "containers": [{
                "name": "main", "image": "x", "command": ["sh", "-c", script],
                "resources": {"requests": {"cpu": cpu}}}]}}


class Pilot:
    """A pilot directory, with queueing done by the controller's own code (Pilots.enqueue minus the sbatch)."""

    def __init__(self, root: Path, size: str) -> None:
        self.root = root
        self.pilots = Pilots(root / "shared", SqueueWatcher(), lambda *a: "0", Placement())
        self.pilots.ensure = lambda *a, **k: "0"  # type: ignore[method-assign]  # the agent is started by hand
        self.dir = self.pilots.directory("wf-uid")
        self.size = size
        self.agent: subprocess.Popen[bytes] | None = None

    def queue(self, name: str, script: str, cpu: str = "1") -> Path:
        manifest = pod(name, script, cpu)
        rundir = self.root / "runs" / name
        rundir.mkdir(parents=True)
        write_json_atomic(rundir / "plan.json", plan_pod(manifest, name, lambda *a: None))
        size = parse_pilot(self.size)
        assert size is not None
        self.pilots.enqueue(rundir, manifest, "wf-uid", size)
        write_json_atomic(self.dir / "pilot.json", {"size": size.render(), "metadata": {"name": "wf"}})
        return rundir

    def start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "SLURM_JOB_ID": "777"}
        self.agent = subprocess.Popen([sys.executable, "-m", "podline.runtime.pilot", str(self.dir)], env=env,
                                      stderr=open(self.root / "agent.log", "wb"))
        return self.agent

    def log(self) -> str:
        return (self.root / "agent.log").read_text()


def phase(rundir: Path) -> str | None:
    doc = read_json(rundir / "status.json")
    return doc["status"]["phase"] if doc and doc.get("finished") else None


@pytest.fixture
def pilot(tmp_path: Path):
    made: list[Pilot] = []

    def make(size: str) -> Pilot:
        made.append(Pilot(tmp_path, size))
        return made[-1]

    yield make
    for p in made:
        if p.agent and p.agent.poll() is None:
            p.agent.kill()
            p.agent.wait()


def spans(rundirs: list[Path]) -> list[tuple[float, float]]:
    return [tuple(map(float, (r / "cwd" / "span").read_text().split())) for r in rundirs]  # type: ignore[misc]


def test_pods_run_in_queue_order_packed_into_the_pilots_cores_with_its_job_id(pilot) -> None:
    p = pilot("cpu=2,idle=0s")
    script = 'a=$(date +%s.%N); sleep 0.6; echo "$a $(date +%s.%N)" > span; echo "$SLURM_JOB_ID" > job'
    rundirs = [p.queue(f"p{i}", script) for i in range(3)]
    (p.dir / "stop").touch()  # all is queued: leave once done
    assert p.start().wait(timeout=60) == 0
    assert [phase(r) for r in rundirs] == ["Succeeded"] * 3
    assert {(r / "cwd" / "job").read_text() for r in rundirs} == {"777\n"}  # the allocation's environment
    assert {(r / "slurm-job-id").read_text() for r in rundirs} == {"777\n"}  # how the controller finds it
    (a0, a1), (b0, b1), (c0, c1) = spans(rundirs)
    assert a0 < b1 and b0 < a1, "two 1-core pods run side by side in a 2-core pilot"
    assert c0 >= min(a1, b1) - 0.05, "the third waits for a core"
    assert not list((p.dir / "queue").iterdir()) and not list((p.dir / "running").iterdir())
    assert "leaving: the workflow is over" in p.log()


def test_a_pod_larger_than_what_is_free_waits_while_a_smaller_one_passes(pilot) -> None:
    p = pilot("cpu=2,idle=0s")
    first = p.queue("a", "sleep 0.8; date +%s.%N > end")
    big = p.queue("b", "date +%s.%N > start", cpu="2")
    small = p.queue("c", "date +%s.%N > start")
    (p.dir / "stop").touch()
    assert p.start().wait(timeout=60) == 0
    read = lambda r, f: float((r / "cwd" / f).read_text())  # noqa: E731
    assert read(small, "start") < read(first, "end") <= read(big, "start")


def test_cancel_term_and_kill_and_a_claimed_pod_never_runs(pilot) -> None:
    p = pilot("cpu=3,idle=60s")
    polite = p.queue("polite", "trap 'echo bye > bye; exit 0' TERM; echo $$$$ > pid; while :; do sleep 0.1; done")
    stubborn = p.queue("stubborn", "trap '' TERM; echo $$$$ > pid; while :; do sleep 0.1; done")
    claimed = p.queue("claimed", "touch ran", cpu="4")  # never fits: it stays queued until claimed
    p.start()
    pids = [int(wait_for(lambda r=r: (r / "cwd" / "pid").exists() and (r / "cwd" / "pid").read_text()))
            for r in (polite, stubborn)]
    for rundir, hard in ((polite, False), (stubborn, True)):
        p.pilots.cancel(rundir, p.pilots.marker(rundir), hard)
    wait_for(lambda: phase(polite) and gone(pids[0]) and gone(pids[1]), timeout=20)
    assert (polite / "cwd" / "bye").read_text() == "bye\n"  # SIGTERM: its trap ran
    assert p.pilots.claim(claimed, p.pilots.marker(claimed))  # still queued: taken out, marked claimed
    assert read_json(claimed / "started") == {"claimed": True}
    (p.dir / "stop").touch()
    assert p.agent is not None and p.agent.wait(timeout=30) == 0
    assert not (claimed / "cwd" / "ran").exists()
    entry = p.pilots.marker(stubborn)["entry"]
    assert phase(stubborn) is None and not (p.dir / "running" / entry).exists()  # killed: the controller's "lost"


def test_a_running_pod_cannot_be_claimed_and_sigterm_stops_every_runner(pilot) -> None:
    p = pilot("cpu=2,idle=60s")
    rundir = p.queue("long", "trap 'exit 3' TERM; while :; do sleep 0.1; done")
    agent = p.start()
    wait_for(lambda: (rundir / "status.json").exists() and read_json(rundir / "status.json")["status"].get(
        "containerStatuses", [{}])[0].get("state", {}).get("running"))
    assert not p.pilots.claim(rundir, p.pilots.marker(rundir))
    agent.send_signal(signal.SIGTERM)  # scancel, or the time limit
    assert agent.wait(timeout=30) == 0
    doc = read_json(rundir / "status.json")
    assert doc["finished"] and doc["status"]["reason"] == "Terminated"


def test_an_idle_pilot_leaves_marking_itself_exiting_unless_work_is_queued(pilot) -> None:
    p = pilot("cpu=1,idle=1s")
    first = p.queue("first", "true")
    started = time.monotonic()
    agent = p.start()
    assert agent.wait(timeout=30) == 0
    assert phase(first) == "Succeeded" and time.monotonic() - started >= 1.0
    assert (p.dir / "exiting").exists()  # a controller queueing now submits a new allocation
    assert "idle for 1 s" in p.log()


def test_queue_entries_are_written_once_however_often_a_launch_repeats(pilot) -> None:
    p = pilot("cpu=1,idle=0s")
    rundir = p.queue("once", "echo x >> /dev/null")
    manifest = pod("once", "true")
    size = PilotSize(cpu=1000, idle=0)
    for _ in range(3):
        p.pilots.enqueue(rundir, manifest, "wf-uid", size)
    assert len(list((p.dir / "queue").iterdir())) == 1
    (p.dir / "stop").touch()
    assert p.start().wait(timeout=30) == 0
    p.pilots.enqueue(rundir, manifest, "wf-uid", size)  # after it ran: nothing is queued again
    assert not list((p.dir / "queue").iterdir())
    assert json.loads((rundir / "pilot").read_text())["dir"] == str(p.dir)


def test_a_step_refused_by_slurm_never_runs_later(pilot) -> None:
    """A non-transient sbatch refusal fails the pod (SubmitFailed): its queue entry must not outlive it."""
    p = pilot("cpu=1,idle=0s")

    def refuse(*_: object, **__: object) -> str:
        raise SubmitError("Requested reservation is invalid")

    p.pilots.ensure = refuse  # type: ignore[method-assign]
    with pytest.raises(SubmitError):
        p.queue("refused", "touch ran")
    rundir = p.root / "runs" / "refused"
    assert not list((p.dir / "queue").iterdir()) and read_json(rundir / "started") == {"claimed": True}


def test_the_agents_runners_die_with_it(pilot) -> None:
    p = pilot("cpu=1,idle=60s")
    rundir = p.queue("orphan", "echo $$$$ > pid; exec sleep 300")
    agent = p.start()
    pid = int(wait_for(lambda: (rundir / "cwd" / "pid").exists() and (rundir / "cwd" / "pid").read_text()))
    agent.kill()  # SIGKILL: no chance to pass anything on
    agent.wait()
    wait_for(lambda: gone(pid), timeout=20)  # the runner got SIGTERM from the kernel and stopped its container
    # ... and then writes its final status (the container may be gone a moment before)
    wait_for(lambda: read_json(rundir / "status.json")["status"].get("phase") in ("Failed", "Succeeded"), timeout=20)
    assert read_json(rundir / "status.json")["status"]["reason"] == "Terminated"


def fake_squeue(root: Path, left: str) -> dict[str, str]:
    """Failure injection: an allocation with `left` time left (a real one would need minutes of waiting)."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(f"#!/bin/sh\necho '{left}'\n")
    (bin_dir / "squeue").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_pod_starts_only_with_the_time_its_own_job_would_have(pilot, tmp_path: Path) -> None:
    p = pilot("cpu=1,idle=60s")
    short = p.queue("short", "true")
    long = p.queue("long", "touch ran")
    for rundir, seconds in ((short, 300), (long, 3600)):  # e.g. activeDeadlineSeconds 300, the context's 1 h
        entry = p.dir / "queue" / p.pilots.marker(rundir)["entry"]
        wanted = read_json(entry)
        write_json_atomic(entry, {**wanted, "needs": {**wanted["needs"], "seconds": seconds}})
    env = {**os.environ, "SLURM_JOB_ID": "777", **fake_squeue(tmp_path, "10:00")}
    agent = subprocess.Popen([sys.executable, "-m", "podline.runtime.pilot", str(p.dir)], env=env,
                             stderr=open(p.root / "agent.log", "wb"))
    p.agent = agent
    assert agent.wait(timeout=30) == 0  # left at once: nothing else it could run in its 10 minutes
    assert phase(short) == "Succeeded" and phase(long) is None and not (long / "cwd" / "ran").exists()
    assert [e for e in (p.dir / "queue").iterdir()] and (p.dir / "exiting").exists()  # for the next allocation
    assert "too little time left" in p.log()


def test_a_yield_makes_an_idle_pilot_leave_at_once(pilot) -> None:
    p = pilot("cpu=1,idle=600s")
    done = p.queue("before", "true")
    p.pilots.make_room("wf-uid")  # a step too large for it runs as a job of its own
    assert p.start().wait(timeout=30) == 0
    assert phase(done) == "Succeeded" and "a step runs in a job of its own" in p.log()


def test_a_killed_runner_takes_what_its_pod_started_with_setsid_along(pilot) -> None:
    """A hard cancel kills the runner's session; a `setsid` child is in none of it and would run on in the
    allocation. The agent kills it by the attempt's mark (PODLINE_RUN) once it has reaped the runner."""
    p = pilot("cpu=1,idle=60s")
    rundir = p.queue("escaper", "setsid sh -c 'echo $$$$ > escaped; exec sleep 300' & sleep 300")
    p.start()
    escaped = int(wait_for(lambda: (rundir / "cwd" / "escaped").exists() and
                           (rundir / "cwd" / "escaped").read_text().strip()))
    assert os.getsid(escaped) == escaped  # a session of its own: the runner's hard stop does not reach it
    p.pilots.cancel(rundir, p.pilots.marker(rundir), True)
    wait_for(lambda: gone(escaped), timeout=20)
    assert "killed 1 process(es) its runner left" in p.log()
