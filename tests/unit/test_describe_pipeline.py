"""`describe pipeline`: a step's STATE says why it waits or how it ended, and its message follows the table."""

from __future__ import annotations

import json

import pytest

from podline.cli.describe import describe_pipeline
from podline.store.db import Obj


def test_step_states_name_back_off_and_stop(capsys: pytest.CaptureFixture[str]) -> None:
    manifest = {"kind": "Pipeline", "metadata": {"name": "p"}, "spec": {"steps": []}}
    steps = [{"shard": 0, "name": "a", "phase": "Succeeded", "attempts": 1},
             {"shard": 0, "name": "b", "phase": "Pending", "attempts": 1, "reason": "BackOff",
              "message": "back-off 2s restarting failed step (exit code 3)"},
             {"shard": 0, "name": "c", "phase": "Failed", "attempts": 1, "reason": "Stopped",
              "message": "stopped: step b failed: exit code 3"}]
    status = {"phase": "Running", "shards": [{"index": 0, "phase": "Running", "attempts": 1}], "steps": steps}
    obj = Obj("u", "Pipeline", "default", "p", json.dumps(manifest), 1, status, {}, None, False, 0.0, None)
    describe_pipeline(obj)
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:3] for line in lines if line.split()[:1] in (["a"], ["b"], ["c"])}
    assert rows == {"a": ["Succeeded", "1"], "b": ["Pending", "(BackOff)"], "c": ["Failed", "(Stopped)"]}, lines
    assert "  Step b:             back-off 2s restarting failed step (exit code 3)" in lines, lines
    assert "  Step c:             stopped: step b failed: exit code 3" in lines, lines
    assert not any(line.lstrip().startswith("Step a:") for line in lines), lines
