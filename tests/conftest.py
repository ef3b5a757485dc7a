"""Shared fixtures: an isolated `$PODLINE_HOME` per test and a runner for the real CLI; and how the suite
is shared out among pytest-xdist workers (README runs it with `-n 3 --dist loadgroup`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from podline.runtime.processes import session_processes

# Test files that submit to the one real Slurm cluster: one worker runs them all, one after another, so that
# their jobs never wait behind each other's for the node's cores (their timeouts assume a free node).
SLURM_FILES = {"test_argv_fidelity.py", "test_slurm_containers.py", "test_slurm_nodes.py", "test_slurm_pipelines.py",
               "test_slurm_pods.py", "test_slurm_submit.py", "test_slurm_pilot.py", "test_slurm_downward.py",
               "test_slurm_job_scale.py", "test_slurm_ram_volumes.py", "test_slurm_queue_edges.py",
               "test_slurm_signals.py", "test_slurm_time_limit.py"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup`, a test file stays on one worker (its module fixtures start once) and the
    Slurm files share one; without xdist the marks change nothing."""
    for item in items:
        group = "slurm" if item.path.name in SLURM_FILES else str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))


@dataclass
class Cli:
    """Runs `podline` as a user would (a new process per call) against one home directory."""

    home: Path
    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "podline.cli", *args], input=input, text=True,
                              capture_output=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"podline {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def apply(self, text: str) -> subprocess.CompletedProcess[str]:
        return self("apply", "-f", "-", input=text)

    def json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json").stdout)

    def wait(self, ref: str, cond: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self("wait", ref, f"--for={cond}", f"--timeout={timeout}", check=False, timeout=timeout + 30)

    def kill_controller_and_restart(self) -> None:
        """SIGKILL the background controller, let the work go on without it for a moment, start it again."""
        pid = self.controller_pid()
        assert pid
        os.kill(pid, 9)
        wait_for(lambda: gone(pid), timeout=10)
        time.sleep(0.5)
        self("up")

    def controller_pid(self) -> int | None:
        try:
            return int((self.home / "controller.pid").read_text())
        except (OSError, ValueError):
            return None


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    yield from cli_in(tmp_path)


def cli_in(tmp_path: Path) -> Iterator[Cli]:
    """A Cli with its home under `tmp_path`; after it, its controller is down and nothing of its pods runs."""
    home = tmp_path / "home"
    env = {**os.environ, "PODLINE_HOME": str(home), "PODLINE_RESTART_BACKOFF_SECONDS": "0.05",
           "PODLINE_JOB_BACKOFF_SECONDS": "0.05", "PODLINE_SHM_DIR": str(tmp_path / "shm")}
    runner = Cli(home, env)
    yield runner
    subprocess.run([sys.executable, "-m", "podline.cli", "down"], env=env, capture_output=True, timeout=60)
    # Leave nothing running: kill whatever a test left in its pods' sessions.
    for started in [*home.glob("pods/*/*/*/started"), *home.glob("pods/*/*/*/*/started")]:
        try:
            pid = json.loads(started.read_text()).get("pid")
        except (OSError, ValueError):
            continue
        if pid:
            kill_session(pid)


def kill_session(pid: int) -> None:
    """SIGKILL a runner and every process of its session, as a node failure would. A process that ends on its
    own meanwhile (bwrap dies with its parent) is no error."""
    for leftover in session_processes(pid):
        try:
            os.kill(leftover, signal.SIGKILL)
        except ProcessLookupError:
            pass


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as gone)."""
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll until predicate() is truthy; return its value or fail."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
