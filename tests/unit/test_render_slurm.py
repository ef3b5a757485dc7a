"""sbatch rendering is a pure function pinned by a golden file (regenerate: PODLINE_REGOLD=1 pytest …)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.api.loader import load_text
from podline.api.slurmflags import FlagError, parse_flags
from podline.plan.slurm import Placement, array_spec, render_indexed_job, render_pod

GOLDEN = Path(__file__).parent.parent / "golden"
PLACEMENT = Placement("debug", "proj1", None, "2:00:00", "/opt/podline/bin/python")
UID = "00000000-0000-0000-0000-000000000000"


def rendered() -> str:
    out = []
    for item in load_text((GOLDEN / "render-input.yaml").read_text(), "render-input.yaml"):
        doc = item.obj.dump()
        rundir = f"/shared/podline/pods/{item.obj.metadata.namespace}/{item.obj.metadata.name}/{UID}"
        render = render_pod if item.obj.kind == "Pod" else render_indexed_job
        out.append(render(doc, UID, rundir, PLACEMENT))
    return "".join(out)


def test_rendered_scripts_match_golden_file() -> None:
    golden = GOLDEN / "render-expected.sbatch"
    text = rendered()
    if os.environ.get("PODLINE_REGOLD"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_rendered_script_is_valid_bash_and_carries_no_manifest_strings() -> None:
    text = rendered()
    assert "rm -rf" not in text and "JOB_COMPLETION_INDEX" not in text  # commands travel in plan.json
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_annotation_flags_override_defaults() -> None:
    text = rendered()
    assert text.count("#SBATCH --time=") == 2  # one per script: the annotation's 90 replaced the deadline's 60
    assert "#SBATCH --time=90\n" in text and "#SBATCH --partition=gpu\n" in text
    assert "#SBATCH --partition=debug\n" in text  # the pod without a partition flag keeps the context's


def test_array_spec() -> None:
    assert array_spec(list(range(1000)), 64) == "0-999%64"
    assert array_spec(list(range(20)), 20) == "0-19"
    assert array_spec(list(range(5)), 100) == "0-4"
    assert array_spec([9, 3, 4, 5, 7], 2) == "3-5,7,9%2"


@pytest.mark.parametrize("text", ["--wrap=id", "--output=/tmp/x", "--export=ALL", "--chdir=/", "-o x",
                                  "--partition=a;b", "--time='1 2'", "--job-name=x", "--uid=0", "x"])
def test_disallowed_flags(text: str) -> None:
    with pytest.raises(FlagError):
        parse_flags(text)


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_any_accepted_flag_is_inert_on_an_sbatch_line(text: str) -> None:
    """Whatever survives validation has no shell or sbatch metacharacters left to exploit."""
    try:
        options = parse_flags(text)
    except FlagError:
        return
    for option in options:
        assert option.startswith("--") and "\n" not in option and " " not in option
        assert not set(option) & set("$`;<>\"'\\(){}!#~")
        assert shlex.split(option) == [option]



def test_jobs_are_not_requeued_by_slurm_and_a_manifest_cannot_ask_for_it() -> None:
    from podline.plan.slurm import sbatch_options
    options = sbatch_options("p", "default", "u", {"containers": [{"name": "c"}]}, {}, PLACEMENT, "/o", "/w")
    assert [o for o in options if o.endswith("requeue")] == ["--no-requeue"]
    with pytest.raises(FlagError, match="podline retries a job lost with its node itself"):
        parse_flags("--exclusive --requeue")
    assert parse_flags("--no-requeue") == ["--no-requeue"]
