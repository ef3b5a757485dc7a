"""P6: latency between dependent pipeline steps (Argo needs ~10 s per step; the aim is milliseconds).

Side by side in one run:
  baseline  N `bash -c true` processes run one after another (the least any chain of N steps costs)
  podline   a Pipeline of N chained steps, each `bash -c true`, applied through the real CLI on the local
            backend and run by the real controller and pipeline runner, once with the default checkpoint
            policy (L1 + an L2 copy after every step) and once with checkpoints off.
Reported: the median hand-off gap (a step's start minus its predecessor's finish, from the runner's own
timestamps in `status.steps`) and the per-step overhead (pipeline compute time / N minus the baseline's
time per process).

Usage: python bench/p6_step_latency.py [--steps N]
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

from podline.runtime.files import parse_rfc3339


def manifest(name: str, steps: int, l2_every: int) -> str:
    lines = ["apiVersion: podline.io/v1alpha1", "kind: Pipeline", f"metadata: {{name: {name}}}", "spec:",
             f"  checkpoint: {{nodeLocalEvery: {l2_every}, sharedEvery: 0}}", "  steps:"]
    for i in range(steps):
        lines += [f"  - name: s{i}", "    image: busybox", "    command: [bash, -c, 'echo $0 > out', s" + str(i) + "]"]
        if i:
            lines.append(f"    dependsOn: [s{i - 1}]")
    return "\n".join(lines) + "\n"


def podline(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "podline.cli", *args], input=stdin, text=True, capture_output=True,
                          env=env, check=True)
    return proc.stdout


def run_pipeline(env: dict[str, str], name: str, steps: int, l2_every: int) -> tuple[list[float], float]:
    podline(env, "apply", "-f", "-", stdin=manifest(name, steps, l2_every))
    podline(env, "wait", f"pipeline/{name}", "--for=phase=Succeeded", "--timeout=300")
    status = json.loads(podline(env, "get", "pipeline", name, "-o", "json"))["status"]
    steps_done = sorted(status["steps"], key=lambda s: int(s["name"][1:]))
    gaps = [parse_rfc3339(b["startedAt"]) - parse_rfc3339(a["finishedAt"]) for a, b in zip(steps_done, steps_done[1:],
                                                                                         strict=False)]
    first, last = parse_rfc3339(steps_done[0]["startedAt"]), parse_rfc3339(steps_done[-1]["finishedAt"])
    return gaps, last - first


def bare(steps: int) -> float:
    began = time.perf_counter()
    for i in range(steps):
        subprocess.run(["bash", "-c", "echo $0 > /dev/null", f"s{i}"], check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PODLINE_HOME": str(Path(tmp) / "home"), "PODLINE_SHM_DIR": str(Path(tmp) / "shm")}
        try:
            baseline = bare(args.steps)
            results = {label: run_pipeline(env, f"p6-{label}", args.steps, every)
                       for label, every in (("checkpoints", 1), ("nocheckpoints", 0))}
        finally:
            subprocess.run([sys.executable, "-m", "podline.cli", "down"], env=env, capture_output=True)
    per_process = baseline / args.steps
    print(f"P6 step hand-off latency, {args.steps} chained steps (bash -c true each)")
    print(f"{'variant':<28}{'median gap ms':>14}{'max gap ms':>12}{'per step ms':>13}{'overhead ms':>13}")
    print(f"{'baseline (bare processes)':<28}{'-':>14}{'-':>12}{per_process * 1e3:>13.1f}{0:>13.1f}")
    for label, (gaps, total) in results.items():
        per_step = total / args.steps
        print(f"{'podline ' + label:<28}{statistics.median(gaps) * 1e3:>14.1f}{max(gaps) * 1e3:>12.1f}"
              f"{per_step * 1e3:>13.1f}{(per_step - per_process) * 1e3:>13.1f}")
    print("Argo's controller requeue puts ~10,000 ms between dependent steps; goal: milliseconds.")


if __name__ == "__main__":
    main()
