"""P6: latency between dependent pipeline steps (Argo needs ~10 s per step; the aim is milliseconds).

Side by side in one run:
  baseline  N `bash -c true` processes run one after another (the least any chain of N steps costs)
  podline   a Pipeline of N chained steps, each `bash -c true`, applied through the real CLI on the local
            backend and run by the real controller and pipeline runner, once with the default checkpoint
            policy (L1 + an L2 copy after every step) and once with checkpoints off.
  workflow  an Argo Workflow of N chained steps (a steps template, one step per group), each its own pod as
            in Argo: the controller notices a pod's end (its runner wakes it), records the node and creates
            the next pod in one pass; the pod reconciler launches it in the same pass.
  slurm     (with --slurm, when a Slurm cluster answers) the same workflow on a `slurm` context, once with a
            job per step (sbatch each, as HPK and interLink do) and once in a pilot allocation
            (`podline.io/pilot: "true"`: one sbatch, the steps queued into it and forked by its agent).
Reported: the median hand-off gap (a step's start minus its predecessor's finish, from the runner's own
timestamps: `status.steps` of the pipeline, the main container's state of each workflow pod) and the
per-step overhead (pipeline compute time / N minus the baseline's time per process).

Usage: python bench/p6_step_latency.py [--steps N] [--slurm [--slurm-steps N]]
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


def workflow_manifest(name: str, steps: int, pilot: bool = False) -> str:
    meta = f"{{name: {name}, annotations: {{podline.io/pilot: 'true'}}}}" if pilot else f"{{name: {name}}}"
    lines = ["apiVersion: argoproj.io/v1alpha1", "kind: Workflow", f"metadata: {meta}", "spec:",
             "  entrypoint: chain", "  templates:", "  - name: chain", "    steps:"]
    lines += [f"    - [{{name: s{i}, template: step}}]" for i in range(steps)]
    lines += ["  - name: step", "    container: {image: busybox, command: [bash, -c, 'echo $0 > /dev/null', s]}"]
    return "\n".join(lines) + "\n"


def run_workflow(env: dict[str, str], name: str, steps: int, pilot: bool = False) -> tuple[list[float], float]:
    podline(env, "apply", "-f", "-", stdin=workflow_manifest(name, steps, pilot))
    podline(env, "wait", f"workflow/{name}", "--for=phase=Succeeded", "--timeout=300")
    pods = json.loads(podline(env, "get", "pods", "-o", "json"))["items"]
    spans = []
    for pod in pods:
        node = pod["metadata"]["annotations"]["workflows.argoproj.io/node-name"]
        if not node.startswith(f"{name}["):
            continue
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        spans.append((int(node[len(name) + 1:node.index("]")]), parse_rfc3339(term["startedAt"]),
                      parse_rfc3339(term["finishedAt"])))
    spans.sort()
    gaps = [b[1] - a[2] for a, b in zip(spans, spans[1:], strict=False)]
    return gaps, spans[-1][2] - spans[0][1]


def slurm_results(tmp: Path, steps: int) -> dict[str, tuple[list[float], float]]:
    """The workflow on a slurm context (partition debug): a job per step, then in one pilot allocation."""
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        print("no Slurm cluster answers (scripts/slurm-up.sh): the slurm variants are skipped", file=sys.stderr)
        return {}
    env = {**os.environ, "PODLINE_HOME": str(tmp / "slurm-home"), "PODLINE_SHM_DIR": str(tmp / "shm")}
    (tmp / "shared").mkdir()
    podline(env, "config", "set-context", "hpc", "--backend", "slurm", "--partition", "debug", "--shared-dir",
            str(tmp / "shared"), "--scratch-dir", str(tmp / "scratch"))
    podline(env, "config", "use-context", "hpc")
    try:
        return {f"workflow on Slurm, {label}": run_workflow(env, f"p6-slurm-{i}", steps, pilot)
                for i, (label, pilot) in enumerate((("a job per step", False), ("one pilot job", True)))}
    finally:
        subprocess.run([sys.executable, "-m", "podline.cli", "down"], env=env, capture_output=True)


def bare(steps: int) -> float:
    began = time.perf_counter()
    for i in range(steps):
        subprocess.run(["bash", "-c", "echo $0 > /dev/null", f"s{i}"], check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--slurm", action="store_true", help="also run the workflow on Slurm (job per step, pilot)")
    parser.add_argument("--slurm-steps", type=int, default=10, help="chained steps of the Slurm workflows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PODLINE_HOME": str(Path(tmp) / "home"), "PODLINE_SHM_DIR": str(Path(tmp) / "shm")}
        try:
            baseline = bare(args.steps)
            results = {label: run_pipeline(env, f"p6-{label}", args.steps, every)
                       for label, every in (("checkpoints", 1), ("nocheckpoints", 0))}
            results["workflow (a pod per step)"] = run_workflow(env, "p6-workflow", args.steps)
            slurm = slurm_results(Path(tmp), args.slurm_steps) if args.slurm else {}
        finally:
            subprocess.run([sys.executable, "-m", "podline.cli", "down"], env=env, capture_output=True)
    per_process = baseline / args.steps
    print(f"P6 step hand-off latency, {args.steps} chained steps (bash -c true each)")
    print(f"{'variant':<36}{'median gap ms':>14}{'max gap ms':>12}{'per step ms':>13}{'overhead ms':>13}")
    print(f"{'baseline (bare processes)':<36}{'-':>14}{'-':>12}{per_process * 1e3:>13.1f}{0:>13.1f}")
    for label, (gaps, total) in results.items():
        per_step = total / args.steps
        print(f"{'podline ' + label:<36}{statistics.median(gaps) * 1e3:>14.1f}{max(gaps) * 1e3:>12.1f}"
              f"{per_step * 1e3:>13.1f}{(per_step - per_process) * 1e3:>13.1f}")
    if slurm:
        print(f"on Slurm, {args.slurm_steps} chained steps:")
    for label, (gaps, total) in slurm.items():
        print(f"{'podline ' + label:<36}{statistics.median(gaps) * 1e3:>14.1f}{max(gaps) * 1e3:>12.1f}"
              f"{total / args.slurm_steps * 1e3:>13.1f}{'':>13}")
    print("Argo's controller requeue puts ~10,000 ms between dependent steps; goal: milliseconds.")


if __name__ == "__main__":
    main()
