"""P2's media costs: what one GiB of hand-off costs in the RAM workspace and through the sshfs shared storage,
measured with plain writes and reads (no step CPU), and the ceiling that puts on P2's ratio on this machine.

Every P2 step but the last writes its output and the next step reads it back. With steps that cost nothing,
the baseline pays (sshfs write + fsync, then sshfs read) per byte handed over and podline pays (RAM write, then
RAM read), so (sshfs write + read) / (RAM write + read) bounds the ratio from above; the steps' own CPU and the
input's first read are the same on both sides and only pull the ratio further down. "RAM write" is into new
tmpfs pages, as a step's output file is: on a VM whose host takes freed guest memory back (free page reporting,
see /sys/module/page_reporting), a new page costs a fault to the host, so the same write into pages the file
already holds is measured too, to show what part of the RAM write is that.

Run alone: python bench/p2_media.py [--mib 1024] [--shared /mnt/podline-shared] (root: drops the page cache
before each read, so that reads come from the medium, not from what the write left cached).
"""

from __future__ import annotations

import argparse
import mmap
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
CHUNK = MIB  # what P2's steps write with (stdbuf -o1M) and about what they read with


@dataclass
class Media:
    mib: int
    ram_write: float  # seconds per GiB: new tmpfs pages
    ram_rewrite: float  # the same bytes over the file's existing pages
    ram_read: float
    shared_write: float  # 1 MiB writes, then fsync, as P2's baseline steps do
    shared_read: float

    @property
    def ceiling(self) -> float:
        """Upper bound of P2's ratio: per byte handed over, baseline cost / podline cost, steps free."""
        return (self.shared_write + self.shared_read) / (self.ram_write + self.ram_read)

    def lines(self) -> list[str]:
        return [
            f"  media, per GiB ({self.mib} MiB measured; page cache dropped before reads):",
            f"    RAM workspace (tmpfs): write {self.ram_write:.2f} s into new pages "
            f"({self.ram_rewrite:.2f} s over pages already held), read {self.ram_read:.2f} s",
            f"    shared storage (sshfs): write + fsync {self.shared_write:.2f} s, read {self.shared_read:.2f} s",
            f"    a byte handed over costs the baseline {self.shared_write + self.shared_read:.2f} s/GiB and podline "
            f"{self.ram_write + self.ram_read:.2f} s/GiB: P2's ratio cannot exceed {self.ceiling:.1f}x on this machine "
            "with any steps that write their output (steps' CPU and the input's first read only lower it)",
        ]


def drop_caches() -> None:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:  # not root: reads may come from the page cache (then they look cheaper on both sides)
        pass


def _write(path: Path, size: int, buffer: mmap.mmap, flags: int = os.O_CREAT | os.O_TRUNC, sync: bool = False) -> float:
    began = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | flags, 0o600)
    try:
        with memoryview(buffer) as view:
            for _ in range(size // CHUNK):
                os.write(fd, view)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - began


def _read(path: Path, buffer: mmap.mmap) -> float:
    began = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.readv(fd, [buffer]):
            pass
    finally:
        os.close(fd)
    return time.perf_counter() - began


def measure(mib: int, shm: Path, shared: Path) -> Media:
    size = mib * MIB
    per_gib = (1 << 30) / size
    buffer = mmap.mmap(-1, CHUNK)
    buffer.write(os.urandom(CHUNK))
    with tempfile.TemporaryDirectory(prefix="podline-p2-media-", dir=shm) as ram_dir, \
            tempfile.TemporaryDirectory(prefix="podline-p2-media-", dir=shared) as shared_dir:
        ram, remote = Path(ram_dir) / "data", Path(shared_dir) / "data"
        drop_caches()
        ram_write = _write(ram, size, buffer)
        ram_rewrite = _write(ram, size, buffer, flags=0)  # no O_TRUNC: over the pages the file holds
        ram_read = _read(ram, buffer)
        ram.unlink()
        drop_caches()
        shared_write = _write(remote, size, buffer, sync=True)
        drop_caches()
        shared_read = _read(remote, buffer)
    return Media(mib, ram_write * per_gib, ram_rewrite * per_gib, ram_read * per_gib, shared_write * per_gib,
                 shared_read * per_gib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--shared", type=Path, default=Path("/mnt/podline-shared"), help="the sshfs mount")
    args = parser.parse_args()
    if not os.path.ismount(args.shared):
        raise SystemExit(f"{args.shared} is not mounted: run `sudo bash scripts/sshfs-up.sh` first")
    shm = Path(os.environ.get("PODLINE_SHM_DIR", "/dev/shm"))
    print("\n".join(measure(args.mib, shm, args.shared).lines()))


if __name__ == "__main__":
    main()
