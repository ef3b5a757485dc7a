"""L2 copies written in the background, so the next step starts while the previous one's outputs go to disk.

Why: an L2 copy after every step is the Pipeline default, and writing GiB of workspace to node-local disk
took as long as the steps themselves (bench/p2_pipeline.py, "cold + L2": +11 s on an 11 s run). The next
step does not need that copy, only a later attempt does.

Why it stays a checkpoint: the next step may change the workspace while the copy runs (steps transform data
in place). So the checkpoint hashes the files that changed in the foreground (reading RAM is several times
faster than writing new disk pages) and the background copy must hash the same, else it is `Torn` and dropped
before it is renamed into place: the previous copy stays the newest valid one, and the next checkpoint tries
again. A copy is never half-visible (`checkpoint.save_copy` writes aside and renames). A file the next step
moved or removed before the copy read it (`mv d d2` of a directory of outputs) tears the copy too: the
checkpoint's state is gone as surely as if it had been rewritten.

Steps that change files in place (or rename them) right away would tear every background copy, and L2 would
never move on: a failing step would find neither L1 (it changed the workspace) nor an L2 copy after the
first step, and every finished step would run again. So after the first torn copy, the workspace makes its
L2 copies in the foreground, as before the next step (`Workspace.checkpoint`), for the rest of the run. A
copy that fails for a reason of its own (a full disk) is only logged: a foreground copy would fail as well.

One thread per workspace, one copy at a time and at most one waiting: a newer checkpoint replaces a waiting
older one, which would have been replaced on disk right after anyway. `drain` waits for what is queued (a
restore, or a shard ending without success, needs the newest copy on disk); `stop` abandons it (a finished
shard deletes its L2).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from podline.runtime import checkpoint as ck

Saved = Callable[[ck.Snapshot, int, float], None]  # snapshot, bytes written, seconds


class BackgroundCopier:
    def __init__(self, source: Path, level_root: Path, log: Callable[[str], None], on_saved: Saved) -> None:
        self.source, self.level_root = source, level_root
        self._log, self._on_saved = log, on_saved
        self._cond = threading.Condition()
        self._waiting: tuple[ck.Snapshot, dict[str, str], ck.Sources] | None = None
        self._busy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.torn = False  # a copy was dropped because a running step changed a file: see Workspace.checkpoint
        self.lost = False  # the newest copy asked for was not made (torn or failed): the next checkpoint makes one

    def submit(self, snap: ck.Snapshot, expected: dict[str, str], sources: ck.Sources | None = None) -> None:
        """Queue a copy of the workspace as it is at checkpoint `snap` (`expected`: each file's hash now;
        `sources`: see `checkpoint.save_copy`)."""
        with self._cond:
            if self._waiting is not None:
                self._say(f"L2 copy of seq {self._waiting[0].seq} skipped: seq {snap.seq} is newer")
            self._waiting = (snap, expected, sources or {})
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="podline-l2", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return self._waiting is None and not self._busy

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued copy is on disk (or given up); False if `timeout` ran out first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._waiting is None and not self._busy, timeout)

    def stop(self) -> None:
        """Abandon what is queued and the copy in progress (its partial directory is removed)."""
        with self._cond:
            self._waiting = None
            self._stop.set()
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _next(self) -> tuple[ck.Snapshot, dict[str, str], ck.Sources] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._waiting is not None or self._stop.is_set())
            if self._stop.is_set():
                return None
            job, self._waiting, self._busy = self._waiting, None, True
            return job

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                self._copy(*job)
            finally:  # whatever happened, the copy is over: waiters must see it
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _copy(self, snap: ck.Snapshot, expected: dict[str, str], sources: ck.Sources) -> None:
        began = time.monotonic()
        try:
            written = ck.save_copy(self.source, self.level_root, snap, False, expected, self._stop, sources)
            self.lost = False
            self._on_saved(snap, written, time.monotonic() - began)
        except ck.Torn as exc:
            self.torn = self.lost = True
            self._say(f"L2 copy of seq {snap.seq} dropped: {exc} (a running step changed it); the previous L2 "
                      "copy stays the newest, and the next ones are made before the next step starts")
        except ck.Stopped:
            pass
        except Exception as exc:  # noqa: BLE001 - a full disk, an unreadable file: this copy is lost
            self.lost = True
            self._say(f"L2 copy of seq {snap.seq} failed: {exc!r}; the previous L2 copy stays the newest")

    def _say(self, message: str) -> None:
        try:
            self._log(message)
        except Exception:  # noqa: BLE001, S110 - a log that cannot be written must not end the thread
            pass
