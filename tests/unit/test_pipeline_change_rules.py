"""What `apply` may change in a stored Pipeline, and the field path it names when it refuses (helper-83: every
refusal named `spec`, a reordered dependsOn counted as a change, and a finished pipeline took a new spec it would
never run)."""

from __future__ import annotations

import copy

import pytest

from podline.cli.apply_cmd import _pipeline_change_problem

SPEC = {"workspace": {"medium": "Memory"}, "backoffLimit": 2, "steps": [
    {"name": "a", "image": "busybox", "command": ["a"]},
    {"name": "b", "image": "busybox", "command": ["b"]},
    {"name": "c", "image": "busybox", "command": ["c"], "dependsOn": ["a", "b"]}]}


def changed(edit) -> dict:
    spec = copy.deepcopy(SPEC)
    edit(spec)
    return spec


@pytest.mark.parametrize(("edit", "phase", "problem"), [
    (lambda s: s.update(workspace={"medium": "Disk"}), "Running",
     "spec.workspace: field is immutable (workspace cannot change); delete the pipeline first"),
    (lambda s: s["steps"][1].update(name="bee"), "Running",
     "spec.steps[1].name: the step graph cannot change (was 'b'); delete the pipeline first"),
    (lambda s: s["steps"][2].update(dependsOn=["a"]), "Running",
     "spec.steps[2].dependsOn: the step graph cannot change (was ['a', 'b']); delete the pipeline first"),
    (lambda s: s["steps"][0].update(checkpoint="major"), "Pending",
     "spec.steps[0].checkpoint: the step graph cannot change (was None); delete the pipeline first"),
    (lambda s: s["steps"].append({"name": "d", "command": ["d"]}), "Running",
     "spec.steps: steps cannot be added or removed; delete the pipeline first"),
    (lambda s: s.update(shards=0), "Running", "spec.shards: a pipeline can gain shards, not lose them"),
    (lambda s: s["steps"][1].update(command=["fixed"]), "Failed",
     "spec.steps: the pipeline has finished (Failed) and runs no step again; delete it and apply it again "
     "(more shards do run)"),
    (lambda s: s.update(backoffLimit=5), "Succeeded",
     "spec.backoffLimit: the pipeline has finished (Succeeded) and runs no step again; delete it and apply it "
     "again (more shards do run)"),
], ids=["workspace", "renamed", "depends-on", "checkpoint-mark", "added", "fewer-shards", "finished-step",
        "finished-limit"])
def test_a_refused_change_names_its_field(edit, phase: str, problem: str) -> None:
    assert _pipeline_change_problem(SPEC, changed(edit), phase) == problem


@pytest.mark.parametrize(("edit", "phase"), [
    (lambda s: s["steps"][2].update(dependsOn=["b", "a"]), "Running"),  # the same graph
    (lambda s: s["steps"][1].update(command=["new"], image="alpine"), "Running"),
    (lambda s: s.update(backoffLimit=0, activeDeadlineSeconds=60), "Running"),
    (lambda s: s.update(shards=3), "Succeeded"),  # more shards run, finished or not
    (lambda s: s["steps"][2].update(dependsOn=["b", "a"]), "Succeeded"),  # helper-84: refused when finished
], ids=["reordered-depends-on", "step-spec", "limits", "more-shards-when-finished", "reordered-when-finished"])
def test_what_a_pipeline_takes(edit, phase: str) -> None:
    assert _pipeline_change_problem(SPEC, changed(edit), phase) is None
