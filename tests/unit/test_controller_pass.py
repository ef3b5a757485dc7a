"""What keeps a controller pass cheap without changing what it does: the selective index behind the pass's
queries, pods read once per pass unless something was written, data kinds settled by kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.backends.registry import Backends
from podline.controller import loop
from podline.controller.context import Ctx
from podline.store import Obj, Store


def _store(tmp_path: Path) -> tuple[Store, str]:
    store = Store(tmp_path / "s.db")
    _, job = store.apply("Job", "default", "j", {})
    for i in range(40):
        _, pod = store.apply("Pod", "default", f"p-{i:02d}", {}, owner_uid=job.uid if i % 4 == 0 else None)
        if i % 3:
            pod.settled = True
            store.save(pod)
    return store, job.uid


def test_list_takes_the_selective_index_and_keeps_its_order(tmp_path: Path) -> None:
    store, job_uid = _store(tmp_path)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    for kwargs, index in (({"kind": "Pod", "unsettled": True}, "objects_unsettled"),
                          ({"unsettled": True}, "objects_unsettled"),
                          ({"kind": "Pod", "owner_uid": job_uid}, "objects_owner"),
                          ({"kind": "Pod", "owner_uid": job_uid, "unsettled": True}, "objects_owner")):
        statements.clear()
        got = store.list(**kwargs)
        sql = statements[-1]
        plan = " ".join(str(row) for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall())
        assert f"INDEX {index}" in plan
        plain = sql.replace(f"INDEXED BY {index}", "")
        assert [o.uid for o in got] == [row[0] for row in store.db.execute(plain).fetchall()]
    assert [o.name for o in store.list(kind="Pod", unsettled=True)] == [f"p-{i:02d}" for i in range(0, 40, 3)]
    assert [o.name for o in store.list(kind="Pod", owner_uid=job_uid)] == [f"p-{i:02d}" for i in range(0, 40, 4)]


def test_pods_created_in_a_pass_are_reconciled_in_it_and_unchanged_pods_are_read_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "s.db")
    _, job = store.apply("Job", "default", "j", {})
    store.apply("Pod", "default", "old", {}, internal={"run": {}, "requests": {"cpu": 250, "memory": 0, "gpu": 0}},
                status={"phase": "Running"})
    seen: list[str] = []
    used: list[dict[str, int]] = []

    def job_creates_a_pod_once(ctx: Ctx, obj: Obj) -> None:
        if obj.internal.get("created") is None:
            ctx.store.apply("Pod", "default", "new", {}, owner_uid=obj.uid)
            obj.internal["created"] = True
            ctx.store.save(obj)

    def record(ctx: Ctx, obj: Obj) -> None:
        seen.append(obj.name)
        used.append(dict(ctx.used))

    monkeypatch.setattr(loop, "reconcile_job", job_creates_a_pod_once)
    monkeypatch.setattr(loop, "reconcile_pod", record)
    controller = loop.Controller(store, Backends(tmp_path))
    controller.run_once()
    assert seen == ["new", "old"]  # the job wrote: pods were listed again
    assert used[0]["cpu"] == 250

    lists: list[tuple[str | None, bool]] = []
    original = store.list

    def counting(kind: str | None = None, **kwargs: object) -> list[Obj]:
        lists.append((kind, bool(kwargs.get("unsettled"))))
        return original(kind, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "list", counting)
    seen.clear()
    controller.run_once()
    assert seen == ["new", "old"]
    assert lists.count(("Pod", True)) == 1  # nothing written in between: the pods read for capacity are reused


def test_data_kinds_settle_and_deleted_ones_go(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    _, keep = store.apply("ConfigMap", "default", "keep", {})
    _, gone = store.apply("Secret", "default", "gone", {})
    store.apply("Dataset", "default", "d", {})
    store.mark_deleted(gone.uid)
    loop.Controller(store, Backends(tmp_path)).run_once()
    assert store.get_uid(gone.uid) is None
    assert store.list(unsettled=True) == []
    assert store.get_uid(keep.uid).settled
