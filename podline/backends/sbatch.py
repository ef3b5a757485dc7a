"""Submitting batch scripts with `sbatch`, through a pre-started process when the script allows it.

About half of an `sbatch` call is spent before it contacts slurmctld: exec, loading libslurm, reading
slurm.conf. sbatch reads its script from stdin when given no file, and does all of that before the
script arrives, so the controller keeps one `sbatch --parsable` started ahead (per Slurm context),
waiting on its stdin, and a submission only pays for the part that talks to Slurm.

Safety: a script goes to a warm process only when it fits in one atomic pipe write (PIPE_BUF), so a
controller killed mid-submission leaves either nothing (sbatch reads an empty script and refuses it) or the
whole script, never half of one. A warm process older than `MAX_AGE` is replaced, so a changed
slurm.conf is picked up. Scripts carry their own `--chdir`, as the process's working directory is not the
run directory.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_AGE = 60.0
TIMEOUT = 120.0
COMMAND = ["sbatch", "--parsable"]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class _Waiting:
    proc: subprocess.Popen[bytes]
    script_fd: int  # the write end of its stdin
    born: float

    def fresh(self) -> bool:
        return self.proc.poll() is None and time.monotonic() - self.born <= MAX_AGE

    def discard(self) -> None:
        """Stop it without letting it submit: killed before its stdin closes, so it never sees an EOF."""
        self.proc.kill()
        os.close(self.script_fd)
        self.proc.communicate()


class Sbatch:
    """One warm `sbatch` waiting for a script on stdin; `submit` uses it (or runs a cold one)."""

    def __init__(self) -> None:
        self._warm: _Waiting | None = None
        self.available = shutil.which(COMMAND[0]) is not None

    def keep_warm(self) -> None:
        """Have a fresh waiting sbatch ready for the next submission (called between reconcile passes)."""
        if not self.available:
            return
        if self._warm is not None and not self._warm.fresh():
            self.close()
        if self._warm is None:
            read_fd, write_fd = os.pipe()
            try:
                proc = subprocess.Popen(COMMAND, stdin=read_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        cwd="/")
            except OSError as exc:
                os.close(write_fd)
                if isinstance(exc, (FileNotFoundError, PermissionError)):
                    self.available = False  # no usable sbatch here; anything else may pass: try next time
                return
            finally:
                os.close(read_fd)
            self._warm = _Waiting(proc, write_fd, time.monotonic())

    def _take(self) -> _Waiting | None:
        warm, self._warm = self._warm, None
        if warm is not None and not warm.fresh():
            warm.discard()
            return None
        return warm

    def submit(self, script: str, directory: Path, meanwhile: Callable[[], None] = lambda: None) -> Result:
        """sbatch `script`, kept in `directory/job.sbatch` for the record; raises OSError or TimeoutExpired.

        `meanwhile` is bookkeeping the job itself does not need (it runs while a warm sbatch talks to
        slurmctld, or before a cold one), so it costs the submission nothing.
        """
        data = script.encode()
        kept = directory / "job.sbatch"
        warm = self._take() if len(data) <= select.PIPE_BUF else None
        if warm is not None:
            try:
                os.write(warm.script_fd, data)  # one write of at most PIPE_BUF bytes: all or nothing
            except BrokenPipeError:  # it died waiting: submit cold instead
                warm.discard()
            else:
                os.close(warm.script_fd)
                return self._finish(warm, lambda: (kept.write_bytes(data), meanwhile()))
        kept.write_bytes(data)  # cold: the script file, as a user would run it
        meanwhile()
        done = subprocess.run([*COMMAND, str(kept)], capture_output=True, timeout=TIMEOUT, cwd=directory)
        return Result(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))

    @staticmethod
    def _finish(warm: _Waiting, bookkeeping: Callable[[], object]) -> Result:
        """Do the bookkeeping while the fed sbatch works, then collect its answer whatever happened; a
        bookkeeping error is raised only after that (the job is queued: the next pass adopts it by its tag)."""
        failed: OSError | None = None
        try:
            bookkeeping()
        except OSError as exc:
            failed = exc
        try:
            out, err = warm.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            warm.proc.kill()
            warm.proc.communicate()
            raise
        if failed is not None:
            raise failed
        return Result(warm.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    def close(self) -> None:
        warm, self._warm = self._warm, None
        if warm is not None:
            warm.discard()
