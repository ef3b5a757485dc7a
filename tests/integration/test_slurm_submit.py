"""The pre-started sbatch (podline/backends/sbatch.py) against the real Slurm of scripts/slurm-up.sh.

Each warm process is started with its own `SBATCH_JOB_NAME`, so squeue shows whether it ever submitted:
fed a script it submits exactly that script (with the script's `--chdir`); discarded, replaced when stale,
or orphaned by a SIGKILLed controller it submits nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from podline.api.config import NOT_IN_SHARED_DIR, Config, Context, save_config
from podline.backends import sbatch as sbatch_module
from podline.backends.registry import Backends
from podline.backends.sbatch import Sbatch
from podline.plan.slurm import directive
from tests.conftest import gone, wait_for
from tests.integration.test_slurm_pods import REASON, squeue

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture
def job_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"podline-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SBATCH_JOB_NAME", name)  # inherited by every sbatch started below
    yield name
    subprocess.run(["scancel", f"--name={name}"], check=False)


def script(workdir: Path, padding: int = 0) -> str:
    return "\n".join(["#!/bin/bash", "#SBATCH --hold", f"#SBATCH --chdir={workdir}", "#SBATCH --output=/dev/null",
                      *["# padding" + "." * 70] * padding, "true", ""])


def queued(name: str) -> list[str]:
    return squeue("-n", name, "-o", "%i").split()


def test_a_warm_sbatch_submits_the_script_it_is_fed(job_name: str, tmp_path: Path) -> None:
    submitter = Sbatch()
    submitter.keep_warm()
    assert submitter._warm is not None and submitter._warm.proc.poll() is None  # waiting on its stdin
    result = submitter.submit(script(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert queued(job_name) == [job_id]
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    assert f"WorkDir={tmp_path}" in shown  # from the script's --chdir, not the process's cwd (/)
    assert (tmp_path / "job.sbatch").read_text() == script(tmp_path)  # kept for the record


def test_a_script_longer_than_one_atomic_pipe_write_goes_cold(job_name: str, tmp_path: Path) -> None:
    submitter = Sbatch()
    submitter.keep_warm()
    assert submitter._warm is not None
    waiting = submitter._warm.proc
    long_script = script(tmp_path, padding=80)
    assert len(long_script.encode()) > sbatch_module.select.PIPE_BUF
    result = submitter.submit(long_script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert submitter._warm is not None and submitter._warm.proc is waiting and waiting.poll() is None
    assert queued(job_name) == [result.stdout.strip()]
    submitter.close()
    assert waiting.poll() is not None and queued(job_name) == [result.stdout.strip()]


def test_discarded_or_stale_warm_sbatch_submits_nothing(job_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    submitter = Sbatch()
    submitter.keep_warm()
    assert submitter._warm is not None
    first = submitter._warm.proc
    monkeypatch.setattr(sbatch_module, "MAX_AGE", 0.0)
    submitter.keep_warm()  # stale: replaced
    assert submitter._warm is not None and submitter._warm.proc is not first and first.poll() is not None
    second = submitter._warm.proc
    submitter.close()
    assert second.poll() is not None
    assert queued(job_name) == []


def test_a_killed_controller_leaves_no_submission(job_name: str, tmp_path: Path) -> None:
    """The warm sbatch of a SIGKILLed controller reads an empty script and refuses it."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from podline.backends.sbatch import Sbatch
        submitter = Sbatch()
        submitter.keep_warm()
        print(submitter._warm.proc.pid, flush=True)
        time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert holder.stdout is not None
    warm_pid = int(holder.stdout.readline())
    assert not gone(warm_pid)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert wait_for(lambda: gone(warm_pid), timeout=30)
    assert queued(job_name) == []


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(segment="o#d d'\"x")
@given(segment=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=NOT_IN_SHARED_DIR + "/\0"),
                       min_size=1,
                       max_size=20).filter(lambda s: s not in (".", "..")))
def test_any_shared_directory_path_reaches_slurm_intact(segment: str, job_name: str, tmp_path: Path) -> None:
    """The run directory travels in #SBATCH lines (--chdir, --output), which sbatch parses with its own
    quoting rules: whatever a shared directory's path may hold, Slurm gets exactly that path. (The config
    refuses `%` and `\\` there: Slurm expands them in --output, a filename pattern, and `%%` is no escape.)"""
    workdir = tmp_path / segment / "pods" / "default" / "p" / "uid"
    workdir.mkdir(parents=True, exist_ok=True)
    text = "\n".join(["#!/bin/bash", "#SBATCH --hold", f"#SBATCH {directive(f'--chdir={workdir}')}",
                      f"#SBATCH {directive(f'--output={workdir}/slurm-%j.out')}", "true", ""])
    result = Sbatch().submit(text, workdir)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    subprocess.run(["scancel", job_id], check=False)
    lines = [line.lstrip(" ") for line in shown.split("\n")]  # not splitlines(): \x0c and friends are path bytes
    fields = dict(line.split("=", 1) for line in lines if line.startswith(("WorkDir=", "StdOut=")))
    assert fields == {"WorkDir": str(workdir), "StdOut": f"{workdir}/slurm-{job_id}.out"}


def test_contexts_that_change_or_go_release_their_warm_sbatch(job_name: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    save_config(home, Config(contexts={"local": Context(), "a": Context(backend="slurm", partition="debug"),
                                       "b": Context(backend="slurm")}))
    backends = Backends(home)
    try:
        backends.end_pass()
        first = {name: backends.for_context(name).sbatch._warm.proc for name in ("a", "b")}  # type: ignore[attr-defined]
        assert all(proc.poll() is None for proc in first.values())
        time.sleep(0.01)  # a new mtime for config.yaml
        save_config(home, Config(contexts={"local": Context(), "a": Context(backend="slurm", qos="normal")}))
        backends.begin_pass()
        backends.end_pass()
        assert all(proc.poll() is not None for proc in first.values())  # killed, never fed
        assert backends.for_context("a").sbatch._warm.proc.poll() is None  # type: ignore[attr-defined]
    finally:
        backends.close()
    assert queued(job_name) == []
