"""Where podline keeps its state (`$PODLINE_HOME`, default `~/.podline`); how to wake the controller.

Kept free of third-party imports: the pod runner imports it inside allocations.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path


def home() -> Path:
    path = Path(os.environ.get("PODLINE_HOME") or Path.home() / ".podline").expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def wake_address(home_dir: Path) -> bytes:
    """An abstract-namespace socket name (no path length limit, vanishes with the process)."""
    digest = hashlib.sha256(str(home_dir).encode()).hexdigest()[:24]
    return b"\0podline-controller-" + digest.encode()


def wake_controller(home_dir: Path | None = None) -> None:
    """Nudge the controller to reconcile now instead of at its next tick; silently a no-op if it is down."""
    address = wake_address(home_dir or home())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"w", address)
        except OSError:
            pass
