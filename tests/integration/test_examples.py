"""The workflow example in examples/ runs as its comments say and computes what the pod demo computes."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, finish

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_workflow_example_matches_the_demo(cli: Cli) -> None:
    wf = finish(cli, cli("apply", "-f", str(EXAMPLES / "workflow.yaml")).stdout, "Succeeded", 60)
    name = wf["metadata"]["name"]
    assert wf["status"]["outputs"]["parameters"] == [{"name": "count", "value": "28571"},
                                                     {"name": "sum", "value": "2857157142"}]
    report = by_display(wf)[f"{name}.onExit"]["outputs"]["result"]
    assert report == f"{name} Succeeded: 28571 multiples of 7 up to 200000, sum 2857157142"
    assert "✔ reduce" in cli("describe", "workflow", name).stdout
