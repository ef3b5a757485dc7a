"""SQLite state store: desired state (manifests), observed status, controller bookkeeping and events."""

from podline.store.db import Event, Obj, Store

__all__ = ["Event", "Obj", "Store"]
