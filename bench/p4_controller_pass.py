"""P4: one controller pass over 10,000 stored objects, next to the least any pass over that store must do.

The store is built directly (rows written as the controller leaves them; nothing is launched) in a
temporary PODLINE_HOME, in the steady state a busy machine sits in between two state changes:
  settled    9,000  1,500 finished Jobs with their 4 Succeeded pods each (7,500) and 1,500 ConfigMaps
  unsettled  1,000  600 running Pods and 50 running Jobs (parallelism 4) with their 4 running pods (250),
                    and 150 Pending Pods waiting for capacity (PODLINE_CPU_MILLIS is exactly what the 800
                    running pods request, so every pass must look at them but none is admitted)
A running pod has a real run directory: `started`, a `status.json` equal to its stored status, and a
`lock` held by a helper process for the whole run, as a live runner holds it. The pass is the real
`Controller.run_once()` (same Controller and store, warm; the first pass is not timed) and it must write
nothing: the bench checks that the store's change counter does not move. Workflows and Pipelines are left
out (their steady state depends on their shape); Jobs and Pods are what a store mostly holds.

Side by side, in this one process:
  baseline  one `SELECT` of the unsettled rows with their status and internal JSON decoded (what any pass
            must read to know what to look at), and the same plus one `stat` of each running pod's
            `status.json` (the least that notices a runner's change without its wake-up datagram)
  podline   `run_once()` with the local backend's liveness cache warm (a pass within 2 s of the last lock
            probe: what most passes are), and with every runner's lock probed (one pass every 2 s)
Also: a pass over the same 10,000 rows all settled (the index should make it ~free) and a pass with all
10,000 unsettled (the same mix times ten). Reported: median ms per pass, passes/s, µs per unsettled object.

Usage: python bench/p4_controller_pass.py [--passes N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

CPU_PER_POD = 100  # millicores requested by every pod
LOCK_HOLDER = """
import fcntl, os, resource, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
fds = []
for path in open(sys.argv[1]).read().split():
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    fds.append(fd)
print("ready", flush=True)
sys.stdin.read()
"""


def pod_manifest(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "bench"}},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox", "command": ["bash", "-c", "sleep 3600"],
                 "env": [{"name": "MODE", "value": "bench"}],
                 "resources": {"requests": {"cpu": f"{CPU_PER_POD}m", "memory": "64Mi"}}}]}}


def job_manifest(name: str) -> dict[str, Any]:
    template = pod_manifest("")
    del template["metadata"]["name"], template["metadata"]["namespace"]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
            "spec": {"completions": 4, "parallelism": 4, "backoffLimit": 6,
                     "template": {"metadata": template["metadata"], "spec": template["spec"]}}}


def container_status(phase: str, started: str, finished: str) -> dict[str, Any]:
    if phase == "Running":
        state: dict[str, Any] = {"running": {"startedAt": started}}
    else:
        state = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": finished}}
    return {"name": "main", "image": "busybox", "ready": phase == "Running", "restartCount": 0,
            "started": phase == "Running", "state": state}


def pod_status(phase: str) -> dict[str, Any]:
    started, finished = "2026-01-01T00:00:00.000000Z", "2026-01-01T00:01:00.000000Z"
    return {"phase": phase, "conditions": [{"type": "PodScheduled", "status": "True"}],
            "startTime": started, "containerStatuses": [container_status(phase, started, finished)]}


class Builder:
    """Rows as the controller leaves them, inserted in one transaction; run directories of running pods."""

    def __init__(self, home: Path) -> None:
        from podline.backends.local import LocalBackend

        self.home = home
        self.backend = LocalBackend(home)
        self.rows: list[tuple[Any, ...]] = []
        self.locks: list[str] = []
        self.now = time.time() - 60

    def add(self, kind: str, name: str, manifest: dict[str, Any], status: dict[str, Any], internal: dict[str, Any],
            settled: bool, owner: str | None = None, uid: str | None = None) -> str:
        uid = uid or str(uuid.uuid4())
        self.rows.append((uid, kind, "default", name, json.dumps(manifest), json.dumps(status), json.dumps(internal),
                          owner, int(settled), self.now, self.now))
        return uid

    def running_pod(self, name: str, labels: dict[str, str] | None = None, owner: str | None = None) -> None:
        uid = str(uuid.uuid4())
        rundir = self.backend.run_dir("default", name, uid)
        rundir.mkdir(parents=True)
        status = pod_status("Running")
        (rundir / "started").write_text(json.dumps({"pid": 1, "at": "2026-01-01T00:00:00.000000Z", "node": "x"}))
        (rundir / "status.json").write_text(json.dumps({"status": status, "finished": False, "pid": 1,
                                                        "node": socket.gethostname()}))
        self.locks.append(str(rundir / "lock"))
        internal = {"requests": {"cpu": CPU_PER_POD, "memory": 64 << 20, "gpu": 0}, "lastEvent": "Started:x",
                    "run": {"dir": str(rundir), "intentAt": self.now, "launchedAt": self.now},
                    "node": socket.gethostname()}
        self.add("Pod", name, pod_manifest(name, labels), status, internal, False, owner, uid)

    def pending_pod(self, name: str) -> None:
        message = "0/1 nodes are available: Insufficient cpu."
        status = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                       "reason": "Unschedulable", "message": message}]}
        self.add("Pod", name, pod_manifest(name), status, {"lastEvent": f"FailedScheduling:{message}"}, False)

    def job(self, name: str, finished: bool) -> None:
        uid = str(uuid.uuid4())
        labels = {"app": "bench", "job-name": name, "controller-uid": uid}
        start = "2026-01-01T00:00:00.000000Z"
        for i in range(4):
            pod = f"{name}-{i}x2b9"
            if finished:
                self.add("Pod", pod, pod_manifest(pod, labels), pod_status("Succeeded"),
                         {"finishedAt": self.now}, True, uid)
            else:
                self.running_pod(pod, labels, uid)
        if finished:
            status = {"active": 0, "succeeded": 4, "failed": 0, "ready": 0, "startTime": start,
                      "completionTime": start, "conditions": [{"type": "Complete", "status": "True",
                                                               "reason": "Completed", "message": "Job completed"}]}
            internal: dict[str, Any] = {"startedAt": self.now, "finishedAt": self.now, "lastEvent": "Completed:x"}
        else:
            status = {"active": 4, "succeeded": 0, "failed": 0, "ready": 4, "startTime": start}
            internal = {"startedAt": self.now, "lastEvent": "SuccessfulCreate:x"}
        self.add("Job", name, job_manifest(name), status, internal, finished, uid=uid)

    def save(self) -> None:
        from podline.store import Store

        store = Store(self.home / "state.db")
        with store.tx():
            store.db.executemany(
                "INSERT INTO objects (uid, kind, namespace, name, manifest, status, internal, owner_uid, settled, "
                "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", self.rows)
        store.close()
        (self.home / "locks.txt").write_text("\n".join(self.locks))


def build(home: Path, finished_jobs: int, configmaps: int, running: int, running_jobs: int, pending: int) -> int:
    """Write the store; return the capacity (millicores) that the running pods fill exactly."""
    b = Builder(home)
    for i in range(finished_jobs):
        b.job(f"done-{i}", finished=True)
    for i in range(configmaps):
        name = f"cm-{i}"
        b.add("ConfigMap", name, {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v" * 64}},
              {}, {}, True)
    for i in range(running):
        b.running_pod(f"run-{i}")
    for i in range(running_jobs):
        b.job(f"job-{i}", finished=False)
    for i in range(pending):
        b.pending_pod(f"wait-{i}")
    b.save()
    return (running + 4 * running_jobs) * CPU_PER_POD


class Bench:
    """One PODLINE_HOME: its lock holder, store, controller, and the timings of each side."""

    def __init__(self, home: Path, capacity: int) -> None:
        os.environ.update(PODLINE_HOME=str(home), PODLINE_CPU_MILLIS=str(capacity),
                          PODLINE_MEMORY_BYTES=str(1 << 50))
        from podline.backends.registry import Backends
        from podline.controller.loop import Controller
        from podline.store import Store

        self.holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(home / "locks.txt")],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout is not None and self.holder.stdout.readline().strip() == "ready"
        self.store = Store(home / "state.db")
        self.backends = Backends(home)
        self.controller = Controller(self.store, self.backends)
        self.running = [Path(p).parent / "status.json" for p in (home / "locks.txt").read_text().split()]
        self.unsettled = self.store.db.execute("SELECT COUNT(*) FROM objects WHERE settled=0").fetchone()[0]
        self.controller.run_once()  # warm-up; the store must be in its steady state already
        self.pass_()

    def close(self) -> None:
        assert self.holder.stdin is not None
        self.holder.stdin.close()
        self.holder.wait()
        self.store.close()

    def select(self) -> None:
        for row in self.store.db.execute("SELECT uid, kind, namespace, name, status, internal FROM objects "
                                         "WHERE settled=0 ORDER BY namespace, name, uid"):
            json.loads(row[4]), json.loads(row[5])

    def select_stat(self) -> None:
        self.select()
        for path in self.running:
            os.stat(path)

    def pass_(self) -> None:
        before = self.store.db.total_changes
        self.controller.run_once()
        if self.store.db.total_changes != before:
            raise SystemExit("a pass wrote to the store: the bench's store is not in a steady state")

    def pass_probed(self) -> None:
        self.backends.local._seen.clear()  # as every LIVENESS_EVERY seconds: each runner's lock is probed
        self.pass_()


def timed(fn: Any, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(label: str, seconds: float, unsettled: int, base: float | None = None) -> str:
    per = f"{seconds / unsettled * 1e6:8.1f}" if unsettled else "       -"
    ratio = f"{seconds / base:8.1f}x" if base else "         "
    rate = f"{1 / seconds:9.0f}" if seconds < 0.01 else f"{1 / seconds:9.1f}"
    return f"  {label:<44} {seconds * 1000:9.2f} ms {rate}/s {per} µs {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=30, help="timed passes per row (median reported)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the steady passes")
    args = parser.parse_args()
    n = args.passes
    with tempfile.TemporaryDirectory() as tmp:
        mixed, settled, busy = Path(tmp, "mixed"), Path(tmp, "settled"), Path(tmp, "busy")
        capacity = build(mixed, finished_jobs=1500, configmaps=1500, running=600, running_jobs=50, pending=150)
        settled.mkdir()
        shutil.copy(mixed / "state.db", settled / "state.db")
        (settled / "locks.txt").write_text("")
        from podline.store import Store

        flip = Store(settled / "state.db")
        flip.db.execute("UPDATE objects SET settled=1")
        flip.close()
        busy_capacity = build(busy, finished_jobs=0, configmaps=0, running=6000, running_jobs=500, pending=1500)

        bench = Bench(mixed, capacity)
        try:
            total = bench.store.db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
            u = bench.unsettled
            base = timed(bench.select, n)
            base_stat = timed(bench.select_stat, n)
            warm = timed(bench.pass_, n)
            probed = timed(bench.pass_probed, n)
            if args.profile:
                profile = cProfile.Profile()
                profile.runcall(lambda: [bench.pass_() for _ in range(n)])
        finally:
            bench.close()
        quiet = Bench(settled, capacity)
        try:
            quiet_base, quiet_pass = timed(quiet.select, n), timed(quiet.pass_, n)
        finally:
            quiet.close()
        loaded = Bench(busy, busy_capacity)
        try:
            bu = loaded.unsettled
            busy_base, busy_base_stat = timed(loaded.select, n), timed(loaded.select_stat, n)
            busy_warm, busy_probed = timed(loaded.pass_, n), timed(loaded.pass_probed, n)
        finally:
            loaded.close()

    print(f"P4 one controller pass ({os.cpu_count()} cores, python {sys.version.split()[0]}, median of {n})")
    print(f"  {'':<44} {'per pass':>12} {'passes':>10} {'per unsettled':>11} {'vs SELECT':>9}")
    print(f" {total:,} objects, {u:,} unsettled (600 running pods, 50 running jobs + 200 pods, 150 pending)")
    print(row("baseline: SELECT unsettled + JSON decode", base, u))
    print(row("baseline: + stat each running status.json", base_stat, u, base))
    print(row("podline run_once, liveness cached", warm, u, base))
    print(row("podline run_once, every lock probed", probed, u, base))
    print(f" {total:,} objects, all settled")
    print(row("baseline: SELECT unsettled (no rows)", quiet_base, 0))
    print(row("podline run_once", quiet_pass, 0, quiet_base))
    print(f" {bu:,} objects, all unsettled (the same mix x10)")
    print(row("baseline: SELECT unsettled + JSON decode", busy_base, bu))
    print(row("baseline: + stat each running status.json", busy_base_stat, bu, busy_base))
    print(row("podline run_once, liveness cached", busy_warm, bu, busy_base))
    print(row("podline run_once, every lock probed", busy_probed, bu, busy_base))
    if args.profile:
        print("\nprofile of the steady passes (10,000 objects, liveness cached), by cumulative time:")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
