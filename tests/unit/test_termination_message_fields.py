"""The termination-message fields are read, not dropped without a word (helper-79)."""

from __future__ import annotations

from podline.api.loader import load_text
from podline.plan.pod import plan_pod
from tests.unit.inprocess_cli import pod


def test_a_custom_message_path_is_warned_about_and_the_default_is_not() -> None:
    (custom,) = load_text(pod(container="    terminationMessagePath: /tmp/why\n"), "x")
    assert custom.warnings == ["Container.terminationMessagePath is not read by podline (FallbackToLogsOnError is: "
                               "the log's end becomes the message of a failed container)"]
    (default,) = load_text(pod(container="    terminationMessagePath: /dev/termination-log\n"
                                         "    terminationMessagePolicy: File\n"), "x")
    assert default.warnings == []


def test_fallback_to_logs_reaches_the_plan() -> None:
    (doc,) = load_text(pod(container="    terminationMessagePolicy: FallbackToLogsOnError\n"), "x")
    plan = plan_pod(doc.obj.dump(), "uid", lambda *a: None)
    assert plan["containers"][0]["logsAsMessage"] is True
