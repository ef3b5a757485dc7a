"""Annotation flags that sbatch refuses next to podline's own options, and `--signal`, which must reach the pod.

`--mem`, `--mem-per-cpu` and `--mem-per-gpu` are mutually exclusive for sbatch (so are `--cpus-per-task` and
`--cpus-per-gpu`): the annotation's choice replaces podline's. `--signal` goes to the batch shell, i.e. the pod
runner, which forwards it to the containers (tests/unit/test_signal_forwarding.py runs that).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from podline.api.config import Context
from podline.api.pilot import PILOT_ID, PILOT_SIZE, PilotSize
from podline.api.slurmflags import FlagError, parse_flags
from podline.backends.base import SubmitError
from podline.backends.slurm import SlurmBackend
from podline.plan.slurm import Placement, render_indexed_job, render_pilot, render_pod

PLACEMENT = Placement("debug", None, None, "1:00:00", "/usr/bin/python3")
UID = "00000000-0000-0000-0000-000000000000"


def pod(flags: str, memory: str = "200Mi", cpu: str = "2") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "annotations": {"slurm.hpk.io/flags": flags}},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "busybox", "command": ["true"],
                 "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}


def directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


@pytest.mark.parametrize(("flag", "replaced"), [
    ("--mem-per-cpu=100M", "--mem=200M"), ("--mem-per-gpu=1G", "--mem=200M"), ("--mem=1G", "--mem=200M"),
    ("--cpus-per-gpu=4", "--cpus-per-task=2"),
])
def test_annotation_choice_replaces_podlines_option_of_its_group(flag: str, replaced: str) -> None:
    ours = directives(render_pod(pod(""), UID, "/shared/run", PLACEMENT))
    theirs = directives(render_pod(pod(flag), UID, "/shared/run", PLACEMENT))
    assert replaced in ours and replaced not in theirs
    assert theirs.index(flag) == ours.index(replaced)  # in podline's option's place, and only once
    assert len(theirs) == len(ours)


def test_indexed_job_template_flag_replaces_the_memory_option_too() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "default"},
           "spec": {"completions": 3, "parallelism": 3, "completionMode": "Indexed",
                    "template": {"metadata": {"annotations": {"slurm-job.vk.io/flags": "--mem-per-cpu=64M"}},
                                 "spec": pod("")["spec"]}}}
    options = directives(render_indexed_job(job, UID, "/shared/arr", PLACEMENT))
    assert "--mem-per-cpu=64M" in options and not any(o.startswith("--mem=") for o in options)


def test_pilot_keeps_its_own_memory_size_over_a_steps_per_cpu_memory() -> None:
    manifest = pod("--mem-per-cpu=100M")
    manifest["metadata"]["labels"] = {"workflows.argoproj.io/workflow": "wf"}
    options = directives(render_pilot(manifest, "pilot.1", "/shared/pilots/1", PilotSize(cpu=2000, memory=2**30),
                                      PLACEMENT))
    assert "--mem=1024M" in options and not any(o.startswith("--mem-per-cpu") for o in options)


@pytest.mark.parametrize("flags", ["--mem=1G --mem-per-cpu=1M", "--mem-per-gpu=1G --mem-per-cpu=1M",
                                   "-c 2 --cpus-per-gpu=3"])
def test_two_options_of_one_group_in_an_annotation_are_refused(flags: str) -> None:
    with pytest.raises(FlagError, match="mutually exclusive"):
        parse_flags(flags)


@pytest.mark.parametrize(("given", "rendered"), [
    ("--signal=B:USR1@120", "--signal=B:USR1@120"), ("--signal=USR1@120", "--signal=B:USR1@120"),
    ("--signal B:SIGUSR2", "--signal=B:USR2"), ("--signal=B:14@30", "--signal=B:ALRM@30"),
    ("--signal=TERM@60", "--signal=B:TERM@60"),
])
def test_signal_goes_to_the_batch_shell_by_name(given: str, rendered: str) -> None:
    """Without `B:` Slurm signals job steps only, and a pod's containers run in the batch step: both forms reach
    the runner, which forwards the signal to the containers."""
    assert parse_flags(given) == [rendered]


@pytest.mark.parametrize("value", ["KILL@60", "B:STOP", "B:CONT@5", "TSTP", "9@30", "64", "B:TTIN"])
def test_signals_the_runner_cannot_honour_are_refused(value: str) -> None:
    with pytest.raises(FlagError, match="cannot honour"):
        parse_flags(f"--signal={value}")


def test_script_ignores_a_forwarded_signal_until_the_runner_handles_it() -> None:
    """The shell `exec`s the runner; until the runner's handler is in place (Python start-up), a signal sent at
    once (a time limit below the warning time) must not kill it: ignored, and the ignoring survives exec."""
    script = render_pod(pod("--signal=USR1@120 --time=1"), UID, "/shared/run", PLACEMENT)
    lines = script.splitlines()
    assert "#SBATCH --signal=B:USR1@120" in lines
    assert lines.index("trap '' USR1") < next(i for i, line in enumerate(lines) if line.startswith("exec "))
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    for flags in ("--signal=B:TERM@60", "--time=5"):  # a stopping signal, or none: no trap
        assert "trap" not in render_pod(pod(flags), UID, "/shared/run", PLACEMENT)


def test_pod_with_a_signal_gets_its_own_job_not_a_pilot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a pilot the signal would go to the whole allocation's agent, at the pilot's time limit."""
    backend = SlurmBackend("hpc", Context(backend="slurm", shared_dir=str(tmp_path)), tmp_path)
    submitted: list[str] = []
    monkeypatch.setattr(backend, "submit", lambda directory, script, tag, adopt: submitted.append(script))
    monkeypatch.setattr(backend.pilots, "enqueue", lambda *args: submitted.append("pilot"))
    monkeypatch.setattr(backend.pilots, "make_room", lambda *args: None)
    for flags in ("--time=5", "--signal=B:USR1@60 --time=5"):
        manifest = pod(flags, memory="64Mi", cpu="1")
        manifest["metadata"]["annotations"].update({PILOT_ID: "wf-1", PILOT_SIZE: "cpu=2,memory=1Gi"})
        backend.launch(tmp_path / flags.replace(" ", "_"), {"pod": {}}, manifest)
    assert submitted[0] == "pilot" and "#SBATCH --signal=B:USR1@60" in submitted[1]


def test_a_stored_pod_with_a_flag_refused_now_fails_its_submission(tmp_path: Path) -> None:
    """Applied before `--signal=KILL` was refused: the launch fails the pod (not the controller's pass)."""
    backend = SlurmBackend("hpc", Context(backend="slurm", shared_dir=str(tmp_path)), tmp_path)
    with pytest.raises(SubmitError, match="cannot honour signal KILL") as refused:
        backend.launch(tmp_path / "run", {"pod": {}}, pod("--signal=KILL@60"))
    assert not refused.value.transient
