"""Stage-in failures no new attempt could mend fail the shard once (helper-78: a Dataset whose source was a
typo, or whose slice could never fit the sizeLimit, was retried as if transient: a new Slurm job per attempt
until backoffLimit, each event saying "resuming from its checkpoints", the message a raw "[Errno 2] ...")."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.runtime.shard_rules import final_failure, stage_in_failure
from podline.runtime.staging import DatasetNotFound, DatasetTooLarge, StagingError
from podline.runtime.workspace import Workspace


def workspace(tmp_path: Path, size_limit: int | None = None) -> Workspace:
    plan = {"pod": {"uid": "u1"}, "dirs": {"scratch": str(tmp_path / "scratch"), "shared": ""},
            "workspace": {"medium": "Disk", "sizeLimit": size_limit},
            "checkpoint": {"nodeLocalEvery": 0, "sharedEvery": 0}}
    ws = Workspace(plan, 0, lambda message: None)
    ws.restore()
    return ws


def test_a_dataset_whose_source_does_not_exist_is_a_final_failure(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    spec = {"name": "typo", "source": str(tmp_path / "dta"), "include": [], "exclude": []}
    with pytest.raises(DatasetNotFound) as caught:
        ws.stage_in([{"path": "in", "dataset": spec}], 2)
    reason, message = stage_in_failure(caught.value)
    assert (reason, message) == ("DatasetNotFound", f"stage-in: dataset typo: its source {tmp_path / 'dta'} does "
                                                    "not exist")
    assert final_failure(reason, message)


def test_a_source_input_that_does_not_exist_is_a_final_failure(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match=f"input in: its source {tmp_path / 'gone'} does not exist"):
        workspace(tmp_path).stage_in([{"path": "in", "source": str(tmp_path / "gone")}], 1)


@pytest.mark.parametrize("as_dataset", [True, False], ids=["dataset", "source"])
def test_a_slice_that_can_never_fit_the_size_limit_is_a_final_failure(tmp_path: Path, as_dataset: bool) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "big").write_bytes(b"x" * 3_000_000)
    item = {"path": "in", "dataset": {"name": "big", "source": str(data), "include": [], "exclude": []}} \
        if as_dataset else {"path": "in", "source": str(data)}
    with pytest.raises(DatasetTooLarge) as caught:
        workspace(tmp_path, size_limit=1 << 20).stage_in([item], 1)
    reason, message = stage_in_failure(caught.value)
    assert reason == "DatasetTooLarge" and "sizeLimit" in message and final_failure(reason, message)


def test_other_stage_in_failures_are_still_retried() -> None:
    reason, message = stage_in_failure(StagingError("/src/a kept changing while it was staged (3 tries)"))
    assert reason == "StageInFailed" and not final_failure(reason, message)


def test_a_file_gone_while_the_source_is_listed_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """helper-81: a producer's temp file removed mid-walk is no missing source (it was a final DatasetNotFound)."""
    from podline.runtime import staging

    data = tmp_path / "data"
    data.mkdir()

    def vanishing(*args: object) -> None:
        raise FileNotFoundError(2, "No such file or directory", str(data / "part.tmp"))

    monkeypatch.setattr(staging, "select", vanishing)
    spec = {"name": "busy", "source": str(data), "include": [], "exclude": []}
    with pytest.raises(StagingError) as caught:
        workspace(tmp_path).stage_in([{"path": "in", "dataset": spec}], 1)
    reason, message = stage_in_failure(caught.value)
    assert reason == "StageInFailed" and "part.tmp vanished while it was listed" in message
    assert not final_failure(reason, message)
