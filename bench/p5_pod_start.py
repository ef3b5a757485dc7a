"""P5: pod start overhead of the local backend vs a bare `bash -c true`, and pods/s for 200 tiny pods.

Both sides run in this one process, side by side:
  baseline  `bash -c true` started and waited for with subprocess (what a pod's container costs at least)
  podline   a Pod whose container is `bash -c true`, written to the store as `apply` does, reconciled by the
            real background controller, counted from the write until the store says Succeeded.
Overhead per pod = median(podline latency) - median(baseline). Targets: ≤ 30 ms overhead, ≥ 100 pods/s.

Usage: python bench/p5_pod_start.py [--sequential N] [--burst N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from podline.controller import daemon
from podline.home import wake_controller
from podline.store import Store


def manifest(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "busybox", "command": ["bash", "-c", "true"]}]}}


def wait_succeeded(store: Store, pattern: str, count: int, timeout: float = 120.0) -> None:
    """Poll cheaply (a COUNT, every 1 ms) until `count` pods whose name is LIKE `pattern` are settled."""
    deadline = time.time() + timeout
    query = "SELECT COUNT(*) FROM objects WHERE settled=1 AND kind='Pod' AND name LIKE ?"
    while store.db.execute(query, (pattern,)).fetchone()[0] < count:
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for pods {pattern}")
        time.sleep(0.001)
    rows = store.db.execute("SELECT name, status FROM objects WHERE kind='Pod' AND name LIKE ?",
                            (pattern,)).fetchall()
    failed = [name for name, status in rows if '"phase": "Succeeded"' not in status]
    if failed:
        raise SystemExit(f"pods did not succeed: {failed[:5]}")


def bare_latency(n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(["bash", "-c", "true"], check=True)
        out.append(time.perf_counter() - start)
    return out


def pod_latency(store: Store, home: Path, n: int) -> list[float]:
    out = []
    for i in range(n):
        name = f"seq-{i}"
        start = time.perf_counter()
        store.apply("Pod", "default", name, manifest(name))
        wake_controller(home)
        wait_succeeded(store, name, 1)
        out.append(time.perf_counter() - start)
    return out


def burst(store: Store, home: Path, n: int) -> float:
    names = [f"burst-{i}" for i in range(n)]
    start = time.perf_counter()
    with store.tx():
        for name in names:
            store.apply("Pod", "default", name, manifest(name))
    wake_controller(home)
    wait_succeeded(store, "burst-%", n, timeout=300)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        os.environ["PODLINE_HOME"] = str(home)
        daemon.start(home)
        store = Store(home / "state.db")
        try:
            pod_latency(store, home, 3)  # warm-up
            bare = bare_latency(args.sequential)
            pods = pod_latency(store, home, args.sequential)
            bare_med, pod_med = statistics.median(bare), statistics.median(pods)
            elapsed = burst(store, home, args.burst)
        finally:
            daemon.stop(home)
    rate = args.burst / elapsed
    overhead_ms = (pod_med - bare_med) * 1000
    print(f"P5 pod start (local backend, {os.cpu_count()} cores, python {sys.version.split()[0]})")
    print(f"  bare `bash -c true`     median {bare_med * 1000:7.2f} ms  (n={args.sequential})")
    print(f"  podline pod, end to end median {pod_med * 1000:7.2f} ms  p90 "
          f"{statistics.quantiles(pods, n=10)[-1] * 1000:.2f} ms")
    print(f"  overhead per pod        {overhead_ms:7.2f} ms   (target <= 30 ms)   ratio {pod_med / bare_med:.2f}x")
    print(f"  burst of {args.burst} pods       {elapsed:7.2f} s  = {rate:.0f} pods/s   (target >= 100 pods/s)")


if __name__ == "__main__":
    main()
