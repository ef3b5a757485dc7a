"""The SQLite store: schema versioning, WAL, create/update semantics, transactions, no-op writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from podline.store import Store
from podline.store.db import SCHEMA_VERSION


def test_create_update_unchanged_and_generation(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    result, obj = store.apply("Pod", "default", "a", {"spec": 1})
    assert result == "created" and obj.generation == 1
    assert store.apply("Pod", "default", "a", {"spec": 1})[0] == "unchanged"
    result, obj = store.apply("Pod", "default", "a", {"spec": 2})
    assert result == "configured" and obj.generation == 2 and obj.manifest == {"spec": 2}
    result, obj = store.apply("Pod", "default", "a", {"metadata": {"labels": {"x": "y"}}, "spec": 2})
    assert result == "configured" and obj.generation == 2 and not obj.settled  # metadata alone: same generation
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (tmp_path / "s.db").stat().st_mode & 0o777 == 0o600


def test_transaction_rolls_back_everything(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with pytest.raises(RuntimeError):
        with store.tx():
            store.apply("Pod", "default", "a", {})
            store.apply("Pod", "default", "b", {})
            raise RuntimeError("boom")
    assert store.list() == []


def test_save_skips_unchanged_objects(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    _, obj = store.apply("Pod", "default", "a", {})
    before = store.db.total_changes
    store.save(obj)
    assert store.db.total_changes == before
    obj.status["phase"] = "Running"
    store.save(obj)
    assert store.db.total_changes == before + 1
    assert store.get("Pod", "default", "a").status == {"phase": "Running"}


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    with pytest.raises(RuntimeError, match="newer than this podline"):
        Store(tmp_path / "s.db")


def test_remove_deletes_events_and_owner_listing(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    _, job = store.apply("Job", "default", "j", {})
    _, pod = store.apply("Pod", "default", "j-1", {}, owner_uid=job.uid)
    store.add_event(pod.uid, "Started", "x")
    assert [p.name for p in store.list(kind="Pod", owner_uid=job.uid)] == ["j-1"]
    store.remove(pod.uid)
    assert store.events(pod.uid) == [] and store.list(kind="Pod") == []


def test_a_save_does_not_settle_an_object_deleted_since_it_was_read(tmp_path: Path) -> None:
    """The controller reads, the CLI marks the object deleted, the controller saves it settled: the delete
    must still be seen (a settled object is never looked at again)."""
    controller, cli = Store(tmp_path / "s.db"), Store(tmp_path / "s.db")
    _, obj = controller.apply("Workflow", "default", "w", {"spec": {}})
    cli.mark_deleted(obj.uid)
    obj.status["phase"], obj.settled = "Succeeded", True
    controller.save(obj)
    [again] = controller.list(kind="Workflow", unsettled=True)
    assert again.deleted_at is not None and again.status["phase"] == "Succeeded"


def test_a_save_does_not_settle_an_object_applied_anew_since_it_was_read(tmp_path: Path) -> None:
    """The controller reads, the CLI applies a changed spec (a scale), the controller saves what it read as
    settled: the new generation must still be reconciled, not lost."""
    controller, cli = Store(tmp_path / "s.db"), Store(tmp_path / "s.db")
    _, obj = controller.apply("Pipeline", "default", "p", {"spec": {"shards": 1}})
    assert cli.apply("Pipeline", "default", "p", {"spec": {"shards": 2}})[0] == "configured"
    obj.status["phase"], obj.settled = "Succeeded", True
    controller.save(obj)
    [again] = controller.list(kind="Pipeline", unsettled=True)
    assert again.generation == 2 and again.manifest["spec"]["shards"] == 2
    again.settled = True
    controller.save(again)  # the pass that saw generation 2 may settle it
    assert controller.list(kind="Pipeline", unsettled=True) == []
