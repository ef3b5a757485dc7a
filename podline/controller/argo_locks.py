"""Argo's synchronization: mutexes and ConfigMap semaphores bounding how many workflows, or nodes of a
template, run at once, across every workflow the controller runs.

Each workflow keeps its part in `internal["locks"]`: `holding` {holder: [keys]} and `waiting` {holder: {"keys",
"since"}}, where the holder is "" for the workflow itself or a node id. The registry (`Locks`) is read from the
store once a pass and kept current while the pass's workflows acquire and release, so two workflows of one pass
never both take the last slot. Waiters are admitted first come, first served. Keys are Argo's:
`<namespace>/Mutex/<name>` and `<namespace>/ConfigMap/<name>/<key>` (the limit is that ConfigMap entry).
"""

from __future__ import annotations

from typing import Any

from podline.store import Obj, Store


class Locks:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.holders: dict[str, set[tuple[str, str]]] = {}
        self.waiters: dict[str, list[tuple[float, str, str]]] = {}
        self.names: dict[str, str] = {}  # workflow uid -> name, for status
        self.asked = 0  # requests made in this pass: nodes reached in one walk queue in the walk's order
        for wf in store.list(kind="Workflow", unsettled=True):  # a finished workflow released all (_finish)
            if wf.status.get("phase") not in ("Succeeded", "Failed", "Error"):
                self.names[wf.uid] = wf.name
                self._load(wf.uid, wf.internal.get("locks", {}))

    def _load(self, uid: str, locks: dict[str, Any]) -> None:
        for holder, keys in locks.get("holding", {}).items():
            for key in keys:
                self.holders.setdefault(key, set()).add((uid, holder))
        for holder, wait in locks.get("waiting", {}).items():
            for key in wait["keys"]:
                self.waiters.setdefault(key, []).append((wait["since"], uid, holder))
        for queue in self.waiters.values():
            queue.sort()

    def wanted(self, namespace: str, sync: dict[str, Any]) -> list[tuple[str, int]]:
        """(key, limit) of each lock a `synchronization` names; ValueError when a limit cannot be read."""
        out: list[tuple[str, int]] = []
        mutexes = ([sync["mutex"]] if "mutex" in sync else []) + sync.get("mutexes", [])
        for mutex in mutexes:
            out.append((f"{mutex.get('namespace') or namespace}/Mutex/{mutex['name']}", 1))
        semaphores = ([sync["semaphore"]] if "semaphore" in sync else []) + sync.get("semaphores", [])
        for semaphore in semaphores:
            ref = semaphore["configMapKeyRef"]
            where = semaphore.get("namespace") or namespace
            out.append((f"{where}/ConfigMap/{ref['name']}/{ref['key']}", self._limit(where, ref)))
        return out

    def _limit(self, namespace: str, ref: dict[str, str]) -> int:
        found = self.store.get("ConfigMap", namespace, ref["name"])
        text = (found.manifest.get("data") or {}).get(ref["key"]) if found is not None else None
        if text is None:
            raise ValueError(f"semaphore ConfigMap {namespace}/{ref['name']} has no key {ref['key']}")
        try:
            return max(0, int(str(text).strip()))
        except ValueError:
            raise ValueError(f"semaphore {namespace}/{ref['name']}/{ref['key']} is not a number: "
                             f"{str(text)[:40]!r}") from None

    def acquire(self, wf: Obj, holder: str, wanted: list[tuple[str, int]], now: float) -> str | None:
        """None when `holder` holds every lock (now or already); else why it waits (it queues, in order)."""
        locks = wf.internal.setdefault("locks", {"holding": {}, "waiting": {}})
        self.names[wf.uid] = wf.name
        if holder in locks["holding"]:
            return None
        keys = [key for key, _ in wanted]
        # first come, first served: a workflow by when it was made, a node by when the walk reached it
        self.asked += 1
        since = wf.created_at if holder == "" else now + self.asked * 1e-6
        wait = locks["waiting"].setdefault(holder, {"keys": keys, "since": since})
        for key in keys:
            entry = (wait["since"], wf.uid, holder)
            if entry not in self.waiters.setdefault(key, []):
                self.waiters[key].append(entry)
                self.waiters[key].sort()
        for key, limit in wanted:
            held = self.holders.get(key, set())
            ahead = [w for w in self.waiters[key] if w < (wait["since"], wf.uid, holder)]
            if len(held) + len(ahead) >= limit:
                return f"Waiting for {key} lock. Lock status: {max(0, limit - len(held))}/{limit}"
        for key in keys:
            self.holders.setdefault(key, set()).add((wf.uid, holder))
            self.waiters[key].remove((wait["since"], wf.uid, holder))
        locks["holding"][holder] = keys
        del locks["waiting"][holder]
        return None

    def release(self, wf: Obj, holder: str | None = None) -> bool:
        """Give up `holder`'s locks (all of the workflow's when None), and its places in queues; True if any."""
        locks = wf.internal.get("locks")
        if not locks:
            return False
        holders = [holder] if holder is not None else list({*locks["holding"], *locks["waiting"]})
        freed = False
        for name in holders:
            for key in locks["holding"].pop(name, []):
                self.holders.get(key, set()).discard((wf.uid, name))
                freed = True
            wait = locks["waiting"].pop(name, None)
            for key in wait["keys"] if wait else []:
                self.waiters[key] = [w for w in self.waiters.get(key, []) if w[1:] != (wf.uid, name)]
        return freed


def status_of(wf: Obj, locks: Locks) -> dict[str, Any]:
    """Argo's `status.synchronization`: the mutexes the workflow (or its nodes) hold, with the holder, and those
    it waits for, with who holds them; semaphores with their holders."""
    mine = wf.internal.get("locks", {})
    out: dict[str, Any] = {}

    def name(uid: str, holder: str) -> str:
        return holder or locks.names.get(uid, uid)

    for field, source in (("holding", mine.get("holding", {})),
                          ("waiting", {h: w["keys"] for h, w in mine.get("waiting", {}).items()})):
        for holder, keys in source.items():
            for key in keys:
                if "/Mutex/" in key:
                    who = holder or wf.name if field == "holding" else \
                        ",".join(sorted(name(u, h) for u, h in locks.holders.get(key, set())))
                    entry = {"mutex": key, "holder": who}
                    section = "mutex"
                else:
                    entry = {"semaphore": key, "holders": sorted(name(u, h) for u, h in locks.holders.get(key, set()))}
                    section = "semaphore"
                if entry not in out.setdefault(section, {}).setdefault(field, []):
                    out[section][field].append(entry)
    return out
