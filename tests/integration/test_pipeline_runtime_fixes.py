"""Pipeline runtime fixes on the real local backend: steps that rename what the previous one wrote (every
background L2 copy torn) still resume without rerunning finished steps; a step retried after `apply` runs
the new spec and records its generation, with no stale failure once it succeeds; a sparse file that passed
sizeLimit comes back from a checkpoint still sparse (written in full it would be over the limit)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli, wait_for


def pipeline(name: str, steps: list[tuple[str, str]], extra: str = "") -> str:
    """A chain of busybox steps (name, shell script), each depending on the one before."""
    out, previous = [], None
    for step, script in steps:
        deps = f"\n    dependsOn: [{previous}]" if previous else ""
        out.append(f"  - name: {step}\n    image: busybox{deps}\n    command: [sh, -c, {json.dumps(script)}]")
        previous = step
    return f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: {name}}}
spec:
{extra}  steps:
""" + "\n".join(out) + "\n"


def steps_of(cli: Cli, name: str) -> dict[str, dict]:
    return {s["name"]: s for s in cli.json("pipeline", name)["status"]["steps"] if s["shard"] == 0}


def test_steps_renaming_the_previous_outputs_resume_without_rerunning_finished_steps(cli: Cli,
                                                                                      tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    # Enough files that the background copy of s1's checkpoint is still running when s2 renames them (a copy
    # that finished first would not be torn: then s3 would tear the next one, and s2 would rerun).
    make = ("mkdir d; i=0; while [ $i -lt 1000 ]; do echo $i > d/f$i; i=$((i+1)); done; "
            "head -c 4000000 /dev/urandom > d/big")
    cli.apply(pipeline("renames", [("s1", make), ("s2", "mv d d2; sleep 1"),
                                   ("s3", f"mv d2 d3; if [ ! -e {marker} ]; then touch {marker}; exit 1; fi")],
                       "  checkpoint: {nodeLocalEvery: 1}\n  backoffLimit: 2\n"))
    assert cli.wait("pipeline/renames", "phase=Succeeded").returncode == 0
    steps = steps_of(cli, "renames")
    assert {n: s["attempts"] for n, s in steps.items()} == {"s1": 1, "s2": 1, "s3": 2}
    assert steps["s3"]["restoredFrom"] == "L2"


def test_a_step_retried_after_apply_runs_the_new_spec_and_records_its_generation(cli: Cli, tmp_path: Path) -> None:
    def spec(b: str) -> str:
        return pipeline("update", [("a", "echo a > a"), ("b", b)], "  backoffLimit: 4\n")

    cli.apply(spec("echo b-v1; sleep 1; exit 3"))
    wait_for(lambda: "b-v1" in cli("logs", "pipeline/update", "-c", "b", check=False).stdout)
    assert "configured" in cli.apply(spec("echo b-v2")).stdout
    assert cli.wait("pipeline/update", "phase=Succeeded").returncode == 0
    log = cli("logs", "pipeline/update", "-c", "b").stdout
    assert log.count("b-v1") < 5 and log.rstrip().endswith("b-v2")
    steps = steps_of(cli, "update")
    assert steps["a"]["generation"] == 1 and steps["b"]["generation"] == 2
    assert steps["b"]["attempts"] >= 2 and steps["b"]["phase"] == "Succeeded"
    assert "message" not in steps["b"] and "reason" not in steps["b"]


def test_a_sparse_file_restored_from_l2_stays_within_the_size_limit(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    # The second step removes the sparse file and fails, once (L1 no longer holds it: the rewind copies it
    # back from L2; it waits for that background copy, which its `rm` would tear); then it records how much
    # of the file the restore allocated.
    l2_done = f"{cli.home}/scratch/checkpoints/*/0/1/manifest.json"
    second = (f"if [ ! -e {marker} ]; then touch {marker}; until ls {l2_done}; do sleep 0.05; done; rm sparse; "
              "exit 1; fi; du -k sparse > used")
    cli.apply(pipeline("sparse", [("make", "truncate -s 40M sparse; echo data > small"), ("check", second)],
                       "  workspace: {medium: Memory, sizeLimit: 1Mi}\n  backoffLimit: 2\n"
                       "  checkpoint: {nodeLocalEvery: 1}\n"
                       f"  outputs: [{{path: used, destination: {tmp_path / 'out'}}}]\n"))
    assert cli.wait("pipeline/sparse", "phase=Succeeded").returncode == 0
    steps = steps_of(cli, "sparse")
    assert steps["make"]["attempts"] == 1 and steps["check"]["attempts"] == 2
    assert steps["check"]["restoredFrom"] == "L2"
    assert int((tmp_path / "out" / "used").read_text().split()[0]) < 1024
