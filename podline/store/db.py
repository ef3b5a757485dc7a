"""One SQLite file under `$PODLINE_HOME` (WAL mode, versioned schema) holding every object.

Each object row keeps three things apart, as an operator should: the `manifest` the user applied (intent),
the Kubernetes-shaped `status` others read, and `internal` bookkeeping of the controller (run directory,
launch intent, back-off timers). The controller writes its intent here *before* any side effect, which is
what makes a SIGKILL at any point recoverable without losing or repeating work.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    uid TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    manifest TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT '{}',
    internal TEXT NOT NULL DEFAULT '{}',
    owner_uid TEXT,
    context TEXT NOT NULL DEFAULT 'local',
    settled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    deleted_at REAL,
    UNIQUE (kind, namespace, name)
);
CREATE INDEX IF NOT EXISTS objects_owner ON objects (owner_uid);
-- (schema 2 added objects.context: which backend context runs the object)
CREATE INDEX IF NOT EXISTS objects_unsettled ON objects (settled, kind);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL,
    at REAL NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_uid ON events (uid, id);
"""


@dataclass
class Obj:
    """One stored object. The manifest is decoded on first use (a reconcile pass rarely needs it)."""

    uid: str
    kind: str
    namespace: str
    name: str
    manifest_json: str
    generation: int
    status: dict[str, Any]
    internal: dict[str, Any]
    owner_uid: str | None
    settled: bool
    created_at: float
    deleted_at: float | None
    context: str = "local"
    loaded: tuple[str, str, bool] = ("", "", False)  # status, internal, settled as read: skip no-op writes
    _manifest: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            self._manifest = json.loads(self.manifest_json)
        return self._manifest

    @property
    def key(self) -> str:
        return f"{self.kind.lower()}/{self.namespace}/{self.name}"

    @property
    def labels(self) -> dict[str, str]:
        return self.manifest.get("metadata", {}).get("labels", {})


@dataclass
class Event:
    uid: str
    at: float
    type: str
    reason: str
    message: str


_SELECT = ("uid, kind, namespace, name, manifest, generation, status, internal, owner_uid, settled, "
           "created_at, deleted_at, context")


def _row_to_obj(row: tuple[Any, ...]) -> Obj:
    uid, kind, ns, name, manifest, gen, status, internal, owner, settled, created, deleted, context = row
    return Obj(uid, kind, ns, name, manifest, gen, json.loads(status), json.loads(internal), owner, bool(settled),
               created, deleted, context, (status, internal, bool(settled)))


class Store:
    """Thin typed access to the database; every write is its own transaction unless grouped by `tx()`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        new = not path.exists()
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        if new:
            path.chmod(0o600)  # secrets live here
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._depth = 0
        self._migrate()

    def _migrate(self) -> None:
        self.db.executescript(SCHEMA)  # idempotent: every statement is IF NOT EXISTS
        with self.tx():
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return
            version = int(row[0])
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} has schema {version}, newer than this podline "
                                   f"({SCHEMA_VERSION}); upgrade podline")
            if version < 2:
                self.db.execute("ALTER TABLE objects ADD COLUMN context TEXT NOT NULL DEFAULT 'local'")
            self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[None]:
        """A write transaction (nested calls join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._depth = 0

    # --- reads -------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        row = self.db.execute(f"SELECT {_SELECT} FROM objects WHERE kind=? AND namespace=? AND name=?",
                              (kind, namespace, name)).fetchone()
        return _row_to_obj(row) if row else None

    def get_uid(self, uid: str) -> Obj | None:
        row = self.db.execute(f"SELECT {_SELECT} FROM objects WHERE uid=?", (uid,)).fetchone()
        return _row_to_obj(row) if row else None

    def list(self, kind: str | None = None, namespace: str | None = None, owner_uid: str | None = None,
             unsettled: bool = False) -> list[Obj]:
        clauses, args = [], []
        for column, value in (("kind", kind), ("namespace", namespace), ("owner_uid", owner_uid)):
            if value is not None:
                clauses.append(f"{column}=?")
                args.append(value)
        if unsettled:
            clauses.append("settled=0")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        # Left alone, SQLite answers `kind=? AND (settled=0 | owner_uid=?)` by walking every object of that kind
        # in the (kind, namespace, name) index, because it is already in ORDER BY order: with 10,000 pods that
        # is milliseconds per call, and the controller asks once per kind and once per Job each pass. Sorting
        # the few rows the selective index finds is far cheaper.
        hint = ("INDEXED BY objects_owner" if owner_uid is not None
                else "INDEXED BY objects_unsettled" if unsettled else "")
        rows = self.db.execute(f"SELECT {_SELECT} FROM objects {hint} {where} ORDER BY namespace, name, uid",
                               args).fetchall()
        return [_row_to_obj(r) for r in rows]

    def events(self, uid: str) -> list[Event]:
        rows = self.db.execute("SELECT uid, at, type, reason, message FROM events WHERE uid=? ORDER BY id",
                               (uid,)).fetchall()
        return [Event(*r) for r in rows]

    # --- writes ------------------------------------------------------------------------------
    def apply(self, kind: str, namespace: str, name: str, manifest: dict[str, Any],
              owner_uid: str | None = None, status: dict[str, Any] | None = None, context: str = "local",
              internal: dict[str, Any] | None = None) -> tuple[str, Obj]:
        """Create the object or update its manifest; returns ('created'|'configured'|'unchanged', obj).

        `context` (the backend context that runs it) and `internal` are set at creation only.
        """
        now = time.time()
        with self.tx():
            current = self.get(kind, namespace, name)
            if current is None:
                uid = str(uuid.uuid4())
                self.db.execute(
                    "INSERT INTO objects (uid, kind, namespace, name, manifest, status, internal, owner_uid, "
                    "context, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (uid, kind, namespace, name, json.dumps(manifest), json.dumps(status or {}),
                     json.dumps(internal or {}), owner_uid, context, now, now))
                result = "created"
            elif current.manifest == manifest:
                return "unchanged", current
            else:  # as Kubernetes, a change of metadata alone (labels, annotations) is no new generation
                bump = int(_beyond_metadata(current.manifest) != _beyond_metadata(manifest))
                self.db.execute("UPDATE objects SET manifest=?, generation=generation+?, settled=0, "
                                "updated_at=? WHERE uid=?", (json.dumps(manifest), bump, now, current.uid))
                result = "configured"
            obj = self.get(kind, namespace, name)
        assert obj is not None
        return result, obj

    def create_many(self, kind: str, namespace: str, items: list[tuple[str, dict[str, Any], dict[str, Any]]],
                    owner_uid: str | None = None, context: str = "local",
                    status: dict[str, Any] | None = None, uids: list[str] | None = None) -> None:
        """Insert many new objects (name, manifest, internal) in one statement, with the `uids` given or new
        ones; a name clash raises."""
        now = time.time()
        status_json = json.dumps(status or {})
        uids = uids or [str(uuid.uuid4()) for _ in items]
        rows = [(uid, kind, namespace, name, json.dumps(manifest), status_json, json.dumps(internal),
                 owner_uid, context, now, now) for uid, (name, manifest, internal) in zip(uids, items, strict=True)]
        with self.tx():
            self.db.executemany(
                "INSERT INTO objects (uid, kind, namespace, name, manifest, status, internal, owner_uid, context, "
                "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)

    def save(self, obj: Obj) -> None:
        """Write back status, internal bookkeeping and the settled flag of an object, if they changed."""
        current = (json.dumps(obj.status), json.dumps(obj.internal), obj.settled)
        if current == obj.loaded:
            return
        obj.loaded = current
        # settled stays 0 for an object someone marked deleted or applied anew meanwhile (the CLI, between this
        # pass's read and write): its new intent must still be reconciled
        self.db.execute("UPDATE objects SET status=?, internal=?, settled=CASE WHEN deleted_at IS NULL AND "
                        "generation=? THEN ? ELSE 0 END, updated_at=? WHERE uid=?",
                        (current[0], current[1], obj.generation, int(obj.settled), time.time(), obj.uid))

    def mark_deleted(self, uid: str) -> None:
        self.db.execute("UPDATE objects SET deleted_at=COALESCE(deleted_at, ?), settled=0 WHERE uid=?",
                        (time.time(), uid))

    def remove(self, uid: str) -> None:
        with self.tx():
            self.db.execute("DELETE FROM objects WHERE uid=?", (uid,))
            self.db.execute("DELETE FROM events WHERE uid=?", (uid,))

    def add_event(self, uid: str, reason: str, message: str, type_: str = "Normal") -> None:
        self.db.execute("INSERT INTO events (uid, at, type, reason, message) VALUES (?,?,?,?,?)",
                        (uid, time.time(), type_, reason, message))


def _beyond_metadata(manifest: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in manifest.items() if key != "metadata"}
