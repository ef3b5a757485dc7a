"""Small file helpers shared by the runner and the controller: atomic JSON, timestamps, sizes."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from podline.runtime.processes import kill_descendants

STOP_REQUESTED = "stop-requested"  # in a run directory: podline asked this attempt to stop (or gave it up)


def stop_requested(rundir: Path) -> bool:
    """Has podline given this attempt up? A runner on a node declared lost may still be running (its slurmd
    died, not its processes) while another attempt has started elsewhere: it must publish nothing."""
    return (rundir / STOP_REQUESTED).exists()


def log_file(rundir: Path, container: str) -> Path:
    """Where a container's (or step's) output goes in its run directory, on every backend."""
    return rundir / "logs" / f"{container}.log"


def mark_attempt(log_path: Path, offset: int, earlier: bool) -> None:
    """Record that a run of the container starts at byte `offset` of its log (`logs` shows the current run,
    `logs --previous` the one before, as kubectl; the log itself keeps every run). The first run goes without
    saying (`attempt_starts`): most containers run once, and a file less is a pod started sooner. `earlier`:
    the log existed before this run, so a run at byte 0 is a later one whose runs before printed nothing."""
    if offset == 0 and not earlier:
        return
    starts = log_path.with_suffix(".starts")
    text = "0\n0\n" if offset == 0 and not starts.exists() else f"{offset}\n"  # (the first run, then this one)
    with open(starts, "a") as out:
        out.write(text)


def attempt_starts(log_path: Path) -> list[int]:
    """Where each run starts in the log: the first from 0 once the log exists (not recorded), then those
    recorded (none: not run yet)."""
    try:
        text = log_path.with_suffix(".starts").read_text()
    except FileNotFoundError:
        return [0] if log_path.exists() else []
    starts = [int(line) for line in text.split() if line.isdigit()]
    return starts if starts and starts[0] == 0 else [0, *starts]


def rfc3339(ts: float | None = None) -> str:
    """UTC timestamp as Kubernetes prints it, with microseconds (still valid RFC 3339)."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> float:
    text = text.rstrip("Z")
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()


def write_json_atomic(path: Path, data: Any, mode: int = 0o600) -> None:
    """Write aside then rename, so a reader (or a crash) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(data))  # json.dump would encode in pure Python, dumps in C
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tree_size(path: Path) -> int:
    """Bytes used by the files below `path` (allocated blocks, as `du` counts them: a file with several hard
    links below `path` once)."""
    total = 0
    linked: set[int] = set()  # inodes of files with more than one link, counted once
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            st = entry.stat(follow_symlinks=False)
                            if st.st_nlink > 1:
                                if st.st_ino in linked:
                                    continue
                                linked.add(st.st_ino)
                            total += st.st_blocks * 512
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def write_status(rundir: Path, status: dict[str, Any], finished: bool, address: bytes | None) -> None:
    """A runner's report: `status.json` (atomically, with who wrote it where), then a nudge to the controller.
    Before the final one, what the pod's containers left running (`cmd &`, `setsid cmd`: the runner is their
    subreaper) is killed, as a pod's processes end with it in Kubernetes: once the report is final, the
    controller may kill the runner's session, and what escaped it would outlive the pod."""
    if finished:
        kill_descendants(os.getpid())
    doc = {"status": status, "finished": finished, "pid": os.getpid(), "node": socket.gethostname()}
    write_json_atomic(rundir / "status.json", doc)
    notify(address)


def notify_address(plan: dict[str, Any]) -> bytes | None:
    """The controller's abstract wake socket named in a plan ('@' stands for the leading NUL)."""
    return plan.get("notify", "").encode().replace(b"@", b"\0", 1) or None


def notify(address: bytes | None) -> None:
    """Nudge the controller (one datagram; if nobody listens, the next timed pass sees the change)."""
    if not address:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            # Never wait for room: a full queue (EAGAIN) already holds nudges the controller has yet to drain,
            # and the pass after that drain reads this status; blocking here kept finished runners alive.
            sock.sendto(b"s", socket.MSG_DONTWAIT, address)
        except OSError:
            pass
