"""A Job's successPolicy (Kubernetes >= 1.31): what apply refuses, and which rule the succeeded indexes meet
(helper-82: it was ignored with a warning, the Job running every index)."""

from __future__ import annotations

import pytest

from podline.api.errors import ManifestError
from podline.api.loader import load_text
from podline.controller.jobs import _success_rule


def job(policy: str, mode: str = "Indexed") -> str:
    return ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  completions: 4\n"
            f"  completionMode: {mode}\n  successPolicy: {policy}\n"
            "  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n")


@pytest.mark.parametrize(("policy", "mode", "path", "problem"), [
    ("{rules: [{succeededCount: 1}]}", "NonIndexed", "spec.successPolicy", "requires completionMode Indexed"),
    ("{rules: [{}]}", "Indexed", "spec.successPolicy.rules[0]", "at least one of succeededIndexes and succeededCount"),
    ("{rules: [{succeededIndexes: '2-1'}]}", "Indexed", "spec.successPolicy.rules[0].succeededIndexes",
     "increasing order"),
    ("{rules: [{succeededIndexes: '0,x'}]}", "Indexed", "spec.successPolicy.rules[0].succeededIndexes",
     "'x' is not an index"),
    ("{rules: [{succeededIndexes: '1-4'}]}", "Indexed", "spec.successPolicy.rules[0].succeededIndexes",
     "index 4 is not below completions (4)"),
    ("{rules: [{succeededCount: 1}, {succeededIndexes: '0-1', succeededCount: 3}]}", "Indexed",
     "spec.successPolicy.rules[1].succeededCount", "must be at most 2"),
    ("{rules: []}", "Indexed", "spec.successPolicy.rules", "at least 1 item"),
], ids=["non-indexed", "empty-rule", "decreasing", "not-an-index", "beyond-completions", "count-over-indexes",
        "no-rules"])
def test_a_bad_success_policy_is_refused_with_its_path(policy: str, mode: str, path: str, problem: str) -> None:
    with pytest.raises(ManifestError) as refused:
        load_text(job(policy, mode), "j.yaml")
    assert f"{path}: " in str(refused.value) and problem in str(refused.value), str(refused.value)


def test_a_good_one_is_taken_without_a_warning() -> None:
    (doc,) = load_text(job("{rules: [{succeededIndexes: '0,2-3', succeededCount: 2}]}"), "j.yaml")
    assert doc.warnings == []


@pytest.mark.parametrize(("rules", "completed", "matched"), [
    ([{"succeededIndexes": "0"}], "", None),
    ([{"succeededIndexes": "0"}], "0", 0),
    ([{"succeededIndexes": "0,2-3"}], "0,2", None),  # all of them
    ([{"succeededIndexes": "0,2-3"}], "0,2-3", 0),
    ([{"succeededCount": 2}], "3", None),
    ([{"succeededCount": 2}], "1,3", 0),
    ([{"succeededIndexes": "1-3", "succeededCount": 2}], "0,1", None),  # only those named count
    ([{"succeededIndexes": "1-3", "succeededCount": 2}, {"succeededCount": 1}], "0", 1),
    ([{"succeededCount": 0}], "", None),  # nothing succeeded: no rule met (helper-84: it completed at once)
    ([{"succeededCount": 0}], "2", 0),
])
def test_the_first_rule_met_decides(rules: list, completed: str, matched: int | None) -> None:
    assert _success_rule({"successPolicy": {"rules": rules}}, {"completedIndexes": completed}) == matched
