"""P7: first-use unpack time of a ~50 MiB image through prepare() vs `tar -xzf` of the same layers.

Both sides run in this one process, side by side, alternating, on the same gzip layer files:
  baseline  `tar -xzf LAYER -C DIR` for each layer in order into a fresh directory (GNU tar, with gzip in
            a second process; no whiteout handling, no safety checks, no digest check)
  podline   prepare("oci:LAYOUT:bench", "IfNotPresent", fresh cache): reads the layout, verifies every
            blob's sha256, applies the layers with whiteouts and the safety checks, renames into the cache.
The image (tests/imagebuild.py, built offline): the busybox layer plus LAYERS padded layers holding many
small files and two big half-compressible files each, ~50 MiB unpacked in total. Goal: ratio ≤ 1.3.

Usage: python bench/p7_unpack.py [--trials N] [--mib 50] [--layers 4] [--files-per-layer 1500] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from podline.images import prepare  # noqa: E402
from podline.images.cache import remove_tree  # noqa: E402
from tests import imagebuild as ib  # noqa: E402


def build(layout: Path, mib: int, layers: int, files: int) -> list[Path]:
    """The bench image; returns its layer blobs in order."""
    padded = [ib.padded_layer(max(1, (mib - 2) // layers), seed=i, files=files, name=f"data{i}") for i in range(layers)]
    digest = ib.add_image(layout, [ib.busybox_layer(), *padded], ib.image_config(cmd=["sh"]), tag="bench")
    return [ib.layout_blob(layout, layer["digest"]) for layer in ib.manifest_of(layout, digest)["layers"]]


def tar_x(blobs: list[Path], dest: Path) -> float:
    start = time.perf_counter()
    dest.mkdir()
    for blob in blobs:
        subprocess.run(["tar", "-xzf", str(blob), "-C", str(dest)], check=True)
    return time.perf_counter() - start


def podline_prepare(layout: Path, cache: Path) -> float:
    start = time.perf_counter()
    image = prepare(f"oci:{layout}:bench", "IfNotPresent", cache)
    elapsed = time.perf_counter() - start
    assert image.pulled and (image.rootfs / "bin/busybox").is_file()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--mib", type=int, default=50)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--files-per-layer", type=int, default=1500)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir in /var/tmp)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="p7-", dir=args.dir or "/var/tmp"))
    try:
        layout = work / "layout"
        blobs = build(layout, args.mib, args.layers, args.files_per_layer)
        packed = sum(b.stat().st_size for b in blobs)
        tar_times, podline_times = [], []
        for trial in range(args.trials + 1):  # trial 0 warms the page cache and is not counted
            order = [("tar", lambda t=trial: tar_x(blobs, work / f"tar{t}")),
                     ("podline", lambda t=trial: podline_prepare(layout, work / f"cache{t}"))]
            if trial % 2:
                order.reverse()
            results = {name: run() for name, run in order}
            remove_tree(work / f"tar{trial}")
            remove_tree(work / f"cache{trial}")
            if trial:
                tar_times.append(results["tar"])
                podline_times.append(results["podline"])
        entries, unpacked_mib = measure(layout)
        tar_med, podline_med = statistics.median(tar_times), statistics.median(podline_times)
        report = {
            "image": {"layers": len(blobs), "gzip_MiB": round(packed / 2**20, 1), "unpacked_MiB": unpacked_mib,
                      "entries": entries},
            "trials": args.trials,
            "tar_xzf_s": round(tar_med, 4),
            "podline_prepare_s": round(podline_med, 4),
            "ratio": round(podline_med / tar_med, 3),
            "goal": "ratio <= 1.3",
        }
        print(f"P7 unpack: {entries} entries, {unpacked_mib} MiB ({report['image']['gzip_MiB']} MiB gzip) in "
              f"{len(blobs)} layers; median of {args.trials}: tar -xzf {tar_med * 1000:.0f} ms, prepare() "
              f"{podline_med * 1000:.0f} ms, ratio {report['ratio']:.2f} (goal <= 1.3)")
        print(json.dumps(report))
    finally:
        remove_tree(work)


def measure(layout: Path) -> tuple[int, float]:
    """Entries and MiB of the unpacked image (unpacked once more, outside the timings)."""
    cache = layout.parent / "count"
    image = prepare(f"oci:{layout}:bench", "IfNotPresent", cache)
    total = sum(len(dirs) + len(files) for _, dirs, files in os.walk(image.rootfs))
    unpacked = sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(image.rootfs) for f in files)
    remove_tree(cache)
    return total, round(unpacked / 2**20, 1)


if __name__ == "__main__":
    main()
