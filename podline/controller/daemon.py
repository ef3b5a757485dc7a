"""The background controller process: `podline up` starts it, `down` stops it, `status` inspects it.

Exactly one controller per `$PODLINE_HOME`, guaranteed by an flock on `controller.lock` held for the
process's life (a SIGKILLed controller releases it automatically, so a new one can start at once).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from podline.home import home as default_home
from podline.home import wake_address

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


def _lock_path(home: Path) -> Path:
    return home / "controller.lock"


def running_pid(home: Path) -> int | None:
    """The live controller's pid, or None (decided by the lock, not by a possibly stale pid file)."""
    fd = os.open(_lock_path(home), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            return int((home / "controller.pid").read_text())
        except (OSError, ValueError):
            return -1
    finally:
        os.close(fd)
    return None


def start(home: Path) -> int:
    """Start the controller in the background if it is not running; return its pid."""
    pid = running_pid(home)
    if pid is not None:
        return pid
    (home / "controller.ready").unlink(missing_ok=True)
    log = open(home / "controller.log", "ab")
    subprocess.Popen([sys.executable, "-m", "podline.controller"], stdin=subprocess.DEVNULL, stdout=log,
                     stderr=subprocess.STDOUT, start_new_session=True,
                     env={**os.environ, "PODLINE_HOME": str(home)})
    log.close()
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        pid = running_pid(home)
        if pid is not None and (home / "controller.ready").exists():
            return pid
        time.sleep(0.02)
    raise RuntimeError(f"controller did not start; see {home / 'controller.log'}")


def stop(home: Path) -> int | None:
    pid = running_pid(home)
    if pid is None or pid < 0:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    deadline = time.time() + STOP_TIMEOUT
    while time.time() < deadline and running_pid(home) is not None:
        time.sleep(0.05)
    return pid


def _take_lock(fd: int, patience: float = 1.0) -> bool:
    """The controller's lock, unless another controller holds it. `running_pid` probes by taking the same
    lock for an instant (the starting CLI polls it), so one refusal is not proof: retry for a moment."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def main() -> None:
    import podline.backends.slurm  # noqa: F401 - imported up front, not on the first submission
    from podline.backends.registry import Backends
    from podline.controller.loop import Controller
    from podline.store import Store

    home = default_home()
    fd = os.open(_lock_path(home), os.O_CREAT | os.O_RDWR, 0o600)
    if not _take_lock(fd):
        print("podline controller already running", file=sys.stderr)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    (home / "controller.ready").unlink(missing_ok=True)
    (home / "controller.pid").write_text(str(os.getpid()))
    stop_flag = [False]

    def on_signal(*_: object) -> None:
        stop_flag[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    notify = "@" + wake_address(home)[1:].decode()
    controller = Controller(Store(home / "state.db"), Backends(home, notify))
    logging.getLogger("podline.controller").info("controller %d started for %s", os.getpid(), home)
    controller.serve(home, stop_flag, ready=home / "controller.ready")
    logging.getLogger("podline.controller").info("controller %d stopped", os.getpid())
