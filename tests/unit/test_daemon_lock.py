"""The controller's single-instance lock: a momentary probe (`running_pid`, polled by a starting CLI) must
not make a starting controller believe another one runs (it exited, and `podline up` timed out)."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from podline.controller.daemon import _take_lock


def hold(path: Path, seconds: float) -> None:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threading.Timer(seconds, os.close, (fd,)).start()


def test_a_momentary_probe_does_not_stop_the_controller(tmp_path: Path) -> None:
    lock = tmp_path / "controller.lock"
    hold(lock, 0.05)  # what running_pid does, for an instant, while the new controller starts
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        assert _take_lock(fd, patience=1.0)
    finally:
        os.close(fd)


def test_a_running_controller_keeps_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "controller.lock"
    hold(lock, 1.0)
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        assert not _take_lock(fd, patience=0.2)
    finally:
        os.close(fd)
