"""Containers inside real Slurm allocations: pipeline steps in bubblewrap, the image pulled from a real
registry once per node however many array tasks need it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.imagebuild import Layer, busybox_image
from tests.integration.test_registry import Registry, push
from tests.integration.test_slurm_pods import REASON, cancel_leftovers

pytestmark = [pytest.mark.skipif(REASON is not None, reason=REASON or ""),
              pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    layout = tmp_path / "layout"
    busybox_image(layout, tag="step", extra=[Layer().file("etc/made-by", b"podline test image\n")])
    private = Registry(tmp_path / "registry")
    push(layout, "step", f"{private.addr}/podline/steps:1")
    yield f"{private.addr}/podline/steps:1"
    private.stop()


@pytest.fixture
def hpc_bwrap(cli: Cli, tmp_path: Path) -> Iterator[Cli]:
    shared, scratch = tmp_path / "shared", tmp_path / "scratch"
    shared.mkdir()
    cli("config", "set-context", "hpc", "--backend", "slurm", "--partition", "debug", "--shared-dir", str(shared),
        "--scratch-dir", str(scratch), "--runtime", "bwrap")
    cli("config", "use-context", "hpc")
    yield cli
    cancel_leftovers(shared)


def slurm_nodes() -> set[str]:
    return set(subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True).stdout.split())


def test_pipeline_steps_run_in_containers_on_slurm_with_one_pull_per_node(hpc_bwrap: Cli, registry: str,
                                                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    hpc_bwrap.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: boxed}}
spec:
  shards: 3
  outputs: [{{path: result, destination: {out}}}]
  steps:
  - name: make
    image: "{registry}"
    command: [sh, -c, 'cat /etc/made-by > data; echo "task $SLURM_ARRAY_TASK_ID" >> data;
                       echo "node ${{SLURMD_NODENAME:-unset}}" > node']
  - name: finish
    image: "{registry}"
    dependsOn: [make]
    command: [sh, -c, 'mkdir -p result && cat data > result/who && ls / > result/root && cp node result/']
""")
    assert hpc_bwrap.wait("pipeline/boxed", "phase=Succeeded", timeout=180).returncode == 0
    for i in range(3):
        assert (out / str(i) / "who").read_text() == f"podline test image\ntask {i}\n"
        assert "workspace" in (out / str(i) / "root").read_text().split()  # the image's root, not the host's
        assert (out / str(i) / "node").read_text().split()[1] in slurm_nodes()  # as a job script sees it
    shards = hpc_bwrap.json("pipeline", "boxed")["status"]["shards"]
    pulled = [s["images"][0]["pulled"] for s in shards]
    assert sorted(pulled) == [False, False, True], f"one pull for the node, the other tasks use its cache: {shards}"
    assert len({s["jobId"].split("_")[0] for s in shards}) == 1


def test_an_argo_workflow_runs_each_step_as_a_slurm_job_in_a_container(hpc_bwrap: Cli, registry: str) -> None:
    """Parameters out of one container's /tmp, an artifact directory to the next step through the shared
    directory, a `when` that skips, the script's stdout as its result: each step its own sbatch."""
    hpc_bwrap.apply(f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: boxed-wf}}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {{name: make, template: make}}
      - name: use
        template: use
        depends: make
        arguments:
          parameters: [{{name: who, value: "{{{{tasks.make.outputs.parameters.who}}}}"}}]
          artifacts: [{{name: data, from: "{{{{tasks.make.outputs.artifacts.data}}}}"}}]
      - {{name: never, template: make, depends: make, when: "{{{{tasks.make.outputs.result}}}} == nothing"}}
  - name: make
    outputs:
      parameters: [{{name: who, valueFrom: {{path: /tmp/who}}}}]
      artifacts: [{{name: data, path: /tmp/data}}]
    container:
      image: "{registry}"
      command: [sh, -c, 'cat /etc/made-by > /tmp/who; mkdir /tmp/data; ls / > /tmp/data/root; echo made']
  - name: use
    inputs:
      parameters: [{{name: who}}]
      artifacts: [{{name: data, path: /in/data}}]
    script:
      image: "{registry}"
      command: [sh]
      source: |
        echo "{{{{inputs.parameters.who}}}} in job $SLURM_JOB_ID"
        grep -cx -e work -e srv /in/data/root || true
""")
    assert hpc_bwrap.wait("workflow/boxed-wf", "phase=Succeeded", timeout=180).returncode == 0
    wf = hpc_bwrap.json("workflow", "boxed-wf")
    nodes = {n["displayName"]: n for n in wf["status"]["nodes"].values()}
    assert nodes["make"]["outputs"]["parameters"] == [{"name": "who", "value": "podline test image"}]
    first, count = nodes["use"]["outputs"]["result"].splitlines()
    assert first.startswith("podline test image in job ") and first.split()[-1].isdigit()
    assert count == "0"  # the host's /work and /srv are not there: the listing came from inside the container
    assert nodes["never"]["phase"] == "Skipped"
    jobs = {p["metadata"]["name"]: p for p in hpc_bwrap.json("pods")["items"]}
    assert len(jobs) == 2
