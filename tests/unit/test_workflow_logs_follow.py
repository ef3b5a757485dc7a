"""When `logs workflow/W -f -c STEP` may stop following: only when STEP's nodes can only ever be one step's
(helper-81: a template run in group 1 and again in group 3 returned after group 1)."""

from __future__ import annotations

import json

from podline.cli.watch import _declared_once
from podline.store.db import Obj


def workflow(*groups: list[dict[str, str]], extra: list[dict] | None = None) -> Obj:
    templates = [{"name": "main", "steps": [list(g) for g in groups]},
                 {"name": "work", "container": {"image": "busybox"}},
                 {"name": "other", "container": {"image": "busybox"}}, *(extra or [])]
    manifest = {"kind": "Workflow", "metadata": {"name": "w"}, "spec": {"entrypoint": "main", "templates": templates}}
    return Obj("u", "Workflow", "default", "w", json.dumps(manifest), 1, {}, {}, None, False, 0.0, None)


def test_a_step_declared_once_in_a_template_run_once_may_stop_early() -> None:
    wf = workflow([{"name": "a", "template": "work"}], [{"name": "b", "template": "other"}])
    assert _declared_once(wf, "a") and _declared_once(wf, "b")


def test_a_template_run_twice_or_a_name_used_twice_is_followed_to_the_end() -> None:
    wf = workflow([{"name": "a", "template": "work"}], [{"name": "b", "template": "other"}],
                  [{"name": "c", "template": "work"}])
    assert not _declared_once(wf, "work")  # a template name that runs twice
    assert _declared_once(wf, "a") and _declared_once(wf, "c")
    twice = workflow([{"name": "a", "template": "work"}], [{"name": "a", "template": "other"}])
    assert not _declared_once(twice, "a")


def test_a_step_of_a_template_called_twice_is_followed_to_the_end() -> None:
    inner = {"name": "inner", "steps": [[{"name": "deep", "template": "work"}]]}
    wf = workflow([{"name": "x", "template": "inner"}], [{"name": "y", "template": "inner"}], extra=[inner])
    assert not _declared_once(wf, "deep")


def test_a_step_named_as_its_template_run_once_may_stop_early() -> None:
    wf = workflow([{"name": "work", "template": "work"}], [{"name": "b", "template": "other"}])
    assert _declared_once(wf, "work")
