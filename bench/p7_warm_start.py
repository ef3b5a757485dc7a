"""P7a: warm container start through bubblewrap vs a bare process (issue 5's benchmark, first half).

Side by side in this one process, interleaved so load affects both alike:
  baseline  `/bin/busybox true` started and waited for with subprocess (a bare process)
  podline   what a new pod's container costs once the image is in the node cache: a fresh `Engine` (as each
            pod runner builds), `prepare()` of the image with IfNotPresent (a cache lookup), the bwrap
            argv built over the image rootfs with a volume and the pod's /dev/shm, bwrap started, the
            container's `true` run to its exit.
Overhead per container = median(podline) - median(baseline). Goal: ≤ 20 ms.

The image is the busybox test image of tests/imagebuild.py, loaded from an OCI layout into the cache
once before timing. Usage: python bench/p7_warm_start.py [--containers 100]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from podline.images import prepare  # noqa: E402
from podline.runtime.engine import Engine  # noqa: E402
from tests.imagebuild import busybox_image  # noqa: E402


def container_spec(image: str) -> dict:
    return {"name": "c", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["true"], "args": [],
            "env": {"GREETING": "hi"}, "workingDir": None, "mounts": [{"volume": "data", "mountPath": "/data"}]}


def start_container(plan: dict, spec: dict, volume: Path, rundir: Path, shm: Path) -> float:
    began = time.perf_counter()
    engine = Engine(plan, plan["pod"], {"data": volume}, rundir, shm)
    engine.prepare([spec], threading.Event())
    with open(rundir / "log", "ab") as log:
        code = engine.spawn(spec, log).wait()
    elapsed = time.perf_counter() - began
    if code != 0:
        raise SystemExit(f"container exited {code}: {(rundir / 'log').read_text()[-400:]}")
    return elapsed


def bare() -> float:
    began = time.perf_counter()
    subprocess.run(["/bin/busybox", "true"], check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        layout, cache = root / "layout", root / "cache"
        busybox_image(layout, tag="bench")
        image = f"oci:{layout}:bench"
        first = prepare(image, "IfNotPresent", cache)
        volume, rundir, shm = root / "vol", root / "run", root / "shm"
        for d in (volume, rundir, shm):
            d.mkdir()
        plan = {"runtime": "bwrap", "images": {"cache": str(cache)},
                "pod": {"name": "bench", "namespace": "default", "uid": "u"}}
        spec = container_spec(image)
        start_container(plan, spec, volume, rundir, shm)  # warm the page cache for both sides
        bare()
        podline, baseline = [], []
        for _ in range(args.containers):
            podline.append(start_container(plan, spec, volume, rundir, shm))
            baseline.append(bare())
    med_p, med_b = statistics.median(podline), statistics.median(baseline)
    print(f"image first prepared in {first.seconds * 1000:.0f} ms (unpack into the cache, not timed below)")
    print(f"{args.containers} containers, interleaved with {args.containers} bare processes")
    print(f"  bare process        median {med_b * 1000:6.1f} ms   p90 {quantile(baseline, 0.9) * 1000:6.1f} ms")
    print(f"  bwrap warm start    median {med_p * 1000:6.1f} ms   p90 {quantile(podline, 0.9) * 1000:6.1f} ms")
    overhead = (med_p - med_b) * 1000
    print(f"  overhead per container {overhead:.1f} ms (goal ≤ 20 ms: {'MET' if overhead <= 20 else 'MISSED'})")


def quantile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


if __name__ == "__main__":
    main()
