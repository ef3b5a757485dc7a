"""P1: submit 1,000 shards of an Indexed Job through podline vs a raw loop of 1,000 `sbatch` calls,
and vs one raw `sbatch --array` call, side by side on the real Slurm cluster (scripts/slurm-up.sh).

Measured is the time to submit, not to run:
  raw loop   1,000 × `sbatch --hold --wrap true` (held, so they do not compete for the node)
  raw array  one `sbatch --hold --array=0-999 --wrap true`
  podline    from writing the Job (as `apply` does) until the controller has recorded the array's job id
             (pods for all indexes stored, plan and script written, one sbatch, all recorded)
Goals: podline ≥ 50× faster than the raw loop, within 1.2× of the raw array call.

Usage: python bench/p1_submit_shards.py [--shards N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from podline.api.config import Config, Context, save_config
from podline.controller import daemon
from podline.home import wake_controller
from podline.store import Store


def sbatch(*args: str) -> str:
    return subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def raw_loop(n: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    ids = [sbatch("--hold", "--job-name=p1-raw", "--output=/dev/null", "--wrap", "true") for _ in range(n)]
    return time.perf_counter() - start, ids


def raw_array(n: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    job = sbatch("--hold", f"--array=0-{n - 1}", "--job-name=p1-array", "--output=/dev/null", "--wrap", "true")
    return time.perf_counter() - start, [job]


def job_manifest(n: int) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "p1", "namespace": "default"},
            "spec": {"completions": n, "parallelism": n, "completionMode": "Indexed", "backoffLimit": 6,
                     "template": {"metadata": {}, "spec": {
                         "restartPolicy": "Never", "terminationGracePeriodSeconds": 30,
                         "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}


def podline_submit(store: Store, home: Path, n: int) -> float:
    start = time.perf_counter()
    store.apply("Job", "default", "p1", job_manifest(n), context="hpc")
    wake_controller(home)
    while True:
        row = store.db.execute("SELECT internal FROM objects WHERE kind='Job' AND name='p1'").fetchone()
        if row and '"jobId"' in row[0]:
            return time.perf_counter() - start
        if time.perf_counter() - start > 120:
            raise SystemExit("podline did not submit within 120 s; see controller.log")
        time.sleep(0.0005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=1000)
    args = parser.parse_args()
    n = args.shards
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        os.environ["PODLINE_HOME"] = str(home)
        save_config(home, Config(current_context="hpc", contexts={
            "local": Context(), "hpc": Context(backend="slurm", shared_dir=str(Path(tmp) / "shared"))}))
        daemon.start(home)
        store = Store(home / "state.db")
        to_cancel: list[str] = []
        try:
            t_array, ids = raw_array(n)
            to_cancel += ids
            t_loop, ids = raw_loop(n)
            to_cancel += ids
            t_podline = podline_submit(store, home, n)
        finally:
            subprocess.run(["scancel", *to_cancel], check=False)
            subprocess.run(["scancel", "--name=podline.default.p1"], check=False)
            daemon.stop(home)
    print(f"P1 submit {n} shards (real Slurm, single node)")
    print(f"  raw loop of {n} sbatch     {t_loop:8.3f} s  ({t_loop / n * 1000:.2f} ms per job)")
    print(f"  raw sbatch --array          {t_array:8.3f} s")
    print(f"  podline Indexed Job         {t_podline:8.3f} s")
    print(f"  podline vs raw loop: {t_loop / t_podline:6.1f}x faster   (goal >= 50x)")
    print(f"  podline vs raw array: {t_podline / t_array:5.2f}x        (goal <= 1.2x)")


if __name__ == "__main__":
    main()
