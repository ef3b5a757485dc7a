"""Argo's synchronization registry (podline.controller.argo_locks.Locks) over a real store: mutexes and
ConfigMap semaphores, first come first served, held and released across passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.controller.argo_locks import Locks, status_of
from podline.store import Obj, Store

MUTEX = {"mutex": {"name": "m"}}
SEMAPHORE = {"semaphore": {"configMapKeyRef": {"name": "limits", "key": "workers"}}}


def workflows(store: Store, *names: str) -> list[Obj]:
    return [store.apply("Workflow", "default", n, {"metadata": {"name": n}})[1] for n in names]


def test_a_mutex_is_held_by_one_and_handed_on_in_order_of_asking(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    a, b, c = workflows(store, "a", "b", "c")
    locks = Locks(store)
    wanted = locks.wanted("default", MUTEX)
    assert wanted == [("default/Mutex/m", 1)]
    assert locks.acquire(a, "", wanted, 1.0) is None
    assert locks.acquire(b, "", wanted, 2.0) == "Waiting for default/Mutex/m lock. Lock status: 0/1"
    assert locks.acquire(c, "", wanted, 3.0) is not None
    for wf in (a, b, c):
        store.save(wf)
    later = Locks(store)  # the next pass reads it back from the store
    a, b, c = (store.get("Workflow", "default", n) for n in "abc")
    assert later.release(a) is True
    assert later.acquire(c, "", wanted, 4.0) is not None  # c asked after b: b goes first
    assert later.acquire(b, "", wanted, 5.0) is None
    assert status_of(b, later) == {"mutex": {"holding": [{"mutex": "default/Mutex/m", "holder": "b"}]}}
    # a waiter's entry names who holds the mutex, as Argo's does
    assert status_of(c, later) == {"mutex": {"waiting": [{"mutex": "default/Mutex/m", "holder": "b"}]}}


def test_a_semaphore_admits_as_many_as_its_config_map_says_and_names_a_bad_limit(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    wf, = workflows(store, "w")
    locks = Locks(store)
    with pytest.raises(ValueError, match="^semaphore ConfigMap default/limits has no key workers$"):
        locks.wanted("default", SEMAPHORE)
    store.apply("ConfigMap", "default", "limits", {"data": {"workers": "two"}})
    with pytest.raises(ValueError, match="is not a number"):
        locks.wanted("default", SEMAPHORE)
    store.apply("ConfigMap", "default", "limits", {"data": {"workers": "2"}})
    wanted = locks.wanted("default", SEMAPHORE)
    got = [locks.acquire(wf, node, wanted, float(i)) for i, node in enumerate(["n1", "n2", "n3"])]
    assert got[:2] == [None, None] and got[2] == "Waiting for default/ConfigMap/limits/workers lock. Lock status: 0/2"
    assert locks.release(wf, "n1") is True and locks.acquire(wf, "n3", wanted, 9.0) is None

    assert status_of(wf, locks) == {"semaphore": {"holding": [{"semaphore": "default/ConfigMap/limits/workers",
                                                               "holders": ["n2", "n3"]}]}}
    store.apply("ConfigMap", "default", "limits", {"data": {"workers": "1"}})  # shrunk below its holders
    assert locks.acquire(wf, "n4", locks.wanted("default", SEMAPHORE), 10.0) == \
        "Waiting for default/ConfigMap/limits/workers lock. Lock status: 0/1"


def test_waiting_workflows_are_served_in_the_order_they_were_made(tmp_path: Path) -> None:
    """Two workflows that first ask in one pass queue by creation, not by which the pass reached first."""
    store = Store(tmp_path / "s.db")
    holder, older, newer = workflows(store, "holder", "older", "newer")
    locks = Locks(store)
    wanted = locks.wanted("default", MUTEX)
    assert locks.acquire(holder, "", wanted, 10.0) is None
    assert locks.acquire(newer, "", wanted, 10.0) is not None  # reached first in the pass
    assert locks.acquire(older, "", wanted, 10.0) is not None
    locks.release(holder)
    assert locks.acquire(newer, "", wanted, 11.0) is not None and locks.acquire(older, "", wanted, 11.0) is None
