"""`podline.io/pilot`: the annotation's syntax and where it may stand, the allocation's size, which step pods go
into it, and its sbatch script (a pure function pinned by a golden file; regenerate: PODLINE_REGOLD=1 pytest …)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podline.api.errors import ManifestError
from podline.api.loader import load_text
from podline.api.pilot import PILOT_ID, PILOT_SIZE, PilotSize, parse_pilot
from podline.backends.pilot import pilot_of, pod_needs
from podline.plan.slurm import Placement, render_pilot
from podline.plan.workflow_pod import pilot_flags_match, pilot_size

GOLDEN = Path(__file__).parent.parent / "golden"


def test_true_false_and_sizes() -> None:
    assert parse_pilot("true") == PilotSize() and parse_pilot("True").cpu == 0  # to be sized from the templates
    assert parse_pilot("false") is None and parse_pilot("") is None
    assert parse_pilot("cpu=8, memory=32Gi, nvidia.com/gpu=2, idle=2m") == PilotSize(8000, 32 * 2**30, 2, 120)
    assert parse_pilot("cpu=1500m") == PilotSize(cpu=1500, idle=60)
    assert parse_pilot("cpu=0.1,idle=0") == PilotSize(cpu=100, idle=0)
    assert parse_pilot("cpu=4,time=2d,idle=3d") == PilotSize(cpu=4000, idle=3 * 86400, time=2 * 86400)


@pytest.mark.parametrize(("text", "problem"), [
    ("cpu=0", "cpu must be above 0"),
    ("cpu=-1", "cpu must be above 0"),
    ("memory=1Gi", "cpu=N is required"),
    ("cpu=2,cpu=3", "cpu is given twice"),
    ("cpu=2,gpu=1", "unknown key 'gpu'"),
    ("cpu=2,memory=lots", "memory: invalid quantity"),
    ("cpu=2,nvidia.com/gpu=1.5", "whole number"),
    ("cpu=2,idle=3w", "idle must be a duration"),
    ("cpu=2,idle=400d", "idle must be a duration"),
    ("cpu=2,time=30s", "time must be a duration such as 5m, 4h or 2d (at least a minute"),
    ("cpu=2,time=2h,time=3h", "time is given twice"),
    ("yes", "expected \"true\" or key=value pairs"),
    ("cpu=1e9", "at most"),
])
def test_malformed_values_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        parse_pilot(text)


@given(cpu=st.integers(1, 10**8), memory=st.integers(0, 2**60), gpu=st.integers(0, 1024),
       idle=st.integers(0, 365 * 86400), time=st.one_of(st.just(0), st.integers(60, 365 * 86400)))
def test_a_rendered_size_reads_back_the_same(cpu: int, memory: int, gpu: int, idle: int, time: int) -> None:
    size = PilotSize(cpu, memory, gpu, idle, time)
    assert parse_pilot(size.render()) == size


def workflow(meta: str = "", pod_metadata: str = "", kind: str = "Workflow") -> str:
    return (f"apiVersion: argoproj.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: w\n{meta}"
            f"spec:\n  entrypoint: main\n{pod_metadata}"
            "  templates:\n  - name: main\n    container: {image: busybox, command: [sh]}\n")


@pytest.mark.parametrize(("text", "where"), [
    (workflow('  annotations: {podline.io/pilot: "cpu=lots"}\n'),
     "document 1 (Workflow/w): metadata.annotations[podline.io/pilot]: cpu: invalid quantity"),
    (workflow('  annotations: {podline.io/pilot-id: "x"}\n'),
     "document 1 (Workflow/w): metadata.annotations[podline.io/pilot-id]: set by podline on step pods"),
    (workflow(pod_metadata='  podMetadata: {annotations: {podline.io/pilot-size: "cpu=1"}}\n'),
     "document 1 (Workflow/w): spec.podMetadata.annotations[podline.io/pilot-size]: only a Workflow runs in a"),
    (workflow('  annotations: {podline.io/pilot: "true"}\n', kind="WorkflowTemplate"),
     "document 1 (WorkflowTemplate/w): metadata.annotations[podline.io/pilot]: only a Workflow runs in a"),
    ('apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {podline.io/pilot: "true"}}\n'
     "spec: {containers: [{name: c, image: x}]}\n",
     "document 1 (Pod/p): metadata.annotations[podline.io/pilot]: only a Workflow runs in a pilot allocation"),
])
def test_the_annotation_belongs_on_a_workflow_and_is_checked_at_apply(text: str, where: str) -> None:
    with pytest.raises(ManifestError) as refused:
        load_text(text, "bad.yaml")
    assert str(refused.value).startswith(f"bad.yaml: {where}"), str(refused.value)


def test_a_good_annotation_is_accepted() -> None:
    [item] = load_text(workflow('  annotations: {podline.io/pilot: "cpu=4,memory=8Gi,idle=30s"}\n'), "ok.yaml")
    assert item.obj.kind == "Workflow"


def container(cpu: str | None = None, memory: str | None = None, gpu: str | None = None) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("nvidia.com/gpu", gpu)) if v is not None}
    return {"image": "x", "resources": {"requests": requests}}


def test_true_sizes_the_pilot_for_the_largest_step() -> None:
    """Not times `parallelism`: a width the workflow may never reach would ask for an allocation the
    partition may never give (its steps waiting forever); a size given by hand makes room for more."""
    templates = [{"name": "a", "container": container("1500m", "1Gi")},
                 {"name": "b", "script": {**container(gpu="1"), "source": "x"}},
                 {"name": "c", "container": container("{{inputs.parameters.cpu}}")},  # templated: not counted
                 {"name": "d", "steps": [[{"name": "x", "template": "a"}]]}]
    assert pilot_size(PilotSize(idle=5, time=600), templates) == PilotSize(2000, 2**30, 1, idle=5, time=600)
    assert pilot_size(PilotSize(), [{"name": "e", "container": {"image": "x"}}]) == PilotSize(cpu=1000)
    given_size = PilotSize(cpu=500, memory=1, gpu=0, idle=1)
    assert pilot_size(given_size, templates) is given_size


def test_only_steps_with_the_workflows_own_slurm_flags_share_its_pilot() -> None:
    spec = {"podMetadata": {"annotations": {"slurm.hpk.io/flags": "--constraint=ib"}}}
    assert pilot_flags_match(spec, {"name": "a"})
    assert pilot_flags_match(spec, {"metadata": {"annotations": {"slurm.hpk.io/flags": "--constraint=ib"}}})
    assert not pilot_flags_match(spec, {"metadata": {"annotations": {"slurm.hpk.io/flags": "--time=1"}}})
    assert not pilot_flags_match({}, {"metadata": {"annotations": {"slurm-job.vk.io/flags": "--exclusive"}}})


def step(cpu: str = "1", memory: str = "1Gi", size: str = "cpu=2,memory=2Gi,nvidia.com/gpu=0,idle=60s",
         pilot: str = "0f3c-uid") -> dict:
    return {"metadata": {"name": "w-a-1", "annotations": {PILOT_ID: pilot, PILOT_SIZE: size}},
            "spec": {"containers": [{"name": "main", **container(cpu, memory)}]}}


def test_which_step_pods_go_into_the_pilot() -> None:
    assert pilot_of(step(), None) == ("0f3c-uid", PilotSize(2000, 2 * 2**30, 0, 60))
    assert pilot_of(step(cpu="3"), None) is None  # larger than the pilot: a job of its own
    assert pilot_of(step(memory="3Gi"), None) is None
    assert pilot_of(step(memory="3Gi", size="cpu=2"), None) is not None  # a pilot of unset memory takes any
    assert pilot_of(step(size="cpu=lots"), None) is None
    assert pilot_of(step(pilot="../../etc"), None) is None  # the id names a directory: only a uid's characters
    assert pilot_of({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}, None) is None


def test_a_step_needing_more_time_than_the_pilot_has_gets_its_own_job() -> None:
    timed = step(size="cpu=2,time=1h")
    assert pilot_of(timed, 3600) is not None and pilot_of(timed, 7200) is None  # the context's limit: 2 h
    timed["spec"]["activeDeadlineSeconds"] = 3000  # its own job would have 50 minutes
    assert pilot_of(timed, 7200) is not None
    assert pilot_of(step(), 7200) is not None  # a pilot without a time has the context's, as its steps


def test_what_a_pod_takes_of_a_pilot() -> None:
    assert pod_needs(step(cpu="250m"), None) == {"cpu": 250, "memory": 2**30, "gpu": 0, "seconds": 0}
    bare = {"spec": {"containers": [{"name": "c"}], "activeDeadlineSeconds": 61}}
    assert pod_needs(bare, 3600) == {"cpu": 1000, "memory": 0, "gpu": 0, "seconds": 120}  # a core, whole minutes
    assert pod_needs({"spec": {"containers": [{"name": "c"}]}}, 3600)["seconds"] == 3600


def test_the_pilot_script_matches_its_golden_file_and_is_valid_bash() -> None:
    """The workflow's flags reach the pilot, except those that would make it other than the agent believes."""
    manifest = {"metadata": {"name": "w-a-1", "namespace": "physics",
                             "labels": {"workflows.argoproj.io/workflow": "analysis"},
                             "annotations": {"slurm.hpk.io/flags": "--exclusive --time=90 -c 1 --mem=50M"}}}
    size = PilotSize(cpu=2500, memory=3 * 2**30, gpu=1, idle=60, time=4 * 3600)
    text = render_pilot(manifest, "pilot.0000.1", "/shared/podline/pilots/0000", size,
                        Placement("debug", "proj1", None, "2:00:00", "/opt/podline/bin/python"))
    golden = GOLDEN / "pilot-expected.sbatch"
    if os.environ.get("PODLINE_REGOLD"):
        golden.write_text(text)
    assert text == golden.read_text()
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_a_pilot_starts_a_step_only_with_the_time_its_own_job_would_have(tmp_path: Path) -> None:
    """A fresh allocation may have spent up to a minute starting (the step's own job would have too); once it has
    run a step, a step needing more than the time left waits for a fresh allocation instead of being cut short."""
    import time

    from podline.runtime.pilot import FRESH_SLACK, Agent

    agent = Agent(tmp_path)
    agent.job_id, agent.asked_at = "7", time.monotonic()  # as if squeue had just been asked
    agent.ends_at = time.monotonic() + 3600 - 30
    assert agent._in_time({"seconds": 3600}) and agent._in_time({"seconds": 0})
    assert not agent._in_time({"seconds": 3600 + FRESH_SLACK})
    agent.started = 1
    assert not agent._in_time({"seconds": 3600})
    assert agent._in_time({"seconds": 3000})
    agent.ends_at = None  # unlimited, or Slurm does not say
    assert agent._in_time({"seconds": 10**6})
