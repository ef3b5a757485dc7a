"""P1: submit 1,000 shards of an Indexed Job through podline vs a raw loop of 1,000 `sbatch` calls,
and vs one raw `sbatch --array` call, side by side on the real Slurm cluster (scripts/slurm-up.sh).

Measured is the time to submit, not to run. Every submission starts an hour later (`--begin=now+1hour`; for
podline's Job through its `slurm.hpk.io/flags` annotation), so none competes for the node or makes slurmctld
start tasks while the others are timed:
  raw loop   1,000 × `sbatch --begin=now+1hour --wrap true`
  raw array  one `sbatch --begin=now+1hour --array=0-999 --wrap true`
  podline    from writing the Job (as `apply` does) until the controller records the array's job id
             (array recorded, plan and script written, one sbatch, job id recorded; the 1,000 pod
             objects are stored right after). Each trial uses a fresh controller, idle for SETTLE seconds
             first (as a long-running controller is between submissions; its start-up also starts the
             warm sbatch it keeps, see podline/backends/sbatch.py), so a trial does not pay for
             reconciling the previous trial's 1,000 pods (that cost is P4's subject).
Goals: podline ≥ 50× faster than the raw loop, within 1.2× of the raw array call.

Usage: python bench/p1_submit_shards.py [--shards N] [--trials N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from podline.api.config import Config, Context, save_config
from podline.controller import daemon
from podline.home import wake_controller
from podline.store import Store

SETTLE = 0.5
LATER = "--begin=now+1hour"


def sbatch(*args: str) -> str:
    return subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def raw_loop(n: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    ids = [sbatch(LATER, "--job-name=p1-raw", "--output=/dev/null", "--wrap", "true") for _ in range(n)]
    return time.perf_counter() - start, ids


def raw_array(n: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    job = sbatch(LATER, f"--array=0-{n - 1}", "--job-name=p1-array", "--output=/dev/null", "--wrap", "true")
    return time.perf_counter() - start, [job]


def job_manifest(n: int) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "p1", "namespace": "default", "annotations": {"slurm.hpk.io/flags": LATER}},
            "spec": {"completions": n, "parallelism": n, "completionMode": "Indexed", "backoffLimit": 6,
                     "template": {"metadata": {}, "spec": {
                         "restartPolicy": "Never", "terminationGracePeriodSeconds": 30,
                         "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}


def podline_submit(store: Store, home: Path, n: int, name: str) -> float:
    """Seconds from the apply to the controller's record of the job id. The end is read afterwards from the
    `Submitted` event, which the controller writes in the same transaction as the job id (wall clock, same
    machine), so the benchmark does not poll the store while the controller works (on 2 cores a tight poll
    loop slows what it measures)."""
    manifest = job_manifest(n)
    manifest["metadata"]["name"] = name
    start = time.time()
    _, job = store.apply("Job", "default", name, manifest, context="hpc")
    wake_controller(home)
    while time.time() - start < 120:
        time.sleep(0.01)
        submitted = [e.at for e in store.events(job.uid) if e.reason == "Submitted"]
        if submitted:
            return submitted[0] - start
    raise SystemExit("podline did not submit within 120 s; see controller.log")


def podline_trial(tmp: Path, n: int, trial: int) -> float:
    """One submission on a fresh controller and home (each trial starts from the same empty state); the
    context's shared directory is one for all trials, as a context's is long-lived."""
    home = tmp / f"home-{trial}"
    home.mkdir()
    os.environ["PODLINE_HOME"] = str(home)
    save_config(home, Config(current_context="hpc", contexts={
        "local": Context(), "hpc": Context(backend="slurm", shared_dir=str(tmp / "shared"))}))
    daemon.start(home)
    time.sleep(SETTLE)
    store = Store(home / "state.db")
    try:
        return podline_submit(store, home, n, f"p1-{trial}")
    finally:
        subprocess.run(["scancel", f"--name=podline.default.p1-{trial}"], check=False)
        daemon.stop(home)
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=11, help="array and podline trials, interleaved; medians")
    args = parser.parse_args()
    n = args.shards
    with tempfile.TemporaryDirectory() as tmp:
        to_cancel: list[str] = []
        arrays, podlines = [], []
        try:
            t_loop, ids = raw_loop(n)
            to_cancel += ids
            for trial in range(args.trials):
                t_array, ids = raw_array(n)
                to_cancel += ids
                arrays.append(t_array)
                podlines.append(podline_trial(Path(tmp), n, trial))
        finally:
            subprocess.run(["scancel", *to_cancel], check=False)
        t_array, t_podline = statistics.median(arrays), statistics.median(podlines)
    print(f"P1 submit {n} shards (real Slurm, single node)")
    print(f"  raw loop of {n} sbatch     {t_loop:8.3f} s  ({t_loop / n * 1000:.2f} ms per job)")
    print(f"  raw sbatch --array          {t_array:8.3f} s  (median of {args.trials}: "
          f"{', '.join(f'{t * 1000:.1f}' for t in arrays)} ms)")
    print(f"  podline Indexed Job         {t_podline:8.3f} s  (median of {args.trials}: "
          f"{', '.join(f'{t * 1000:.1f}' for t in podlines)} ms)")
    print(f"  podline vs raw loop: {t_loop / t_podline:6.1f}x faster   (goal >= 50x)")
    print(f"  podline vs raw array: {t_podline / t_array:5.2f}x        (goal <= 1.2x)")


if __name__ == "__main__":
    main()
