"""Which backend runs an object: its context's (from `config.yaml`), built once and reused.

The controller asks `for_context(name)` per object; the configuration is re-read when the file changes,
so `podline config set-context` takes effect without restarting the controller.
"""

from __future__ import annotations

from pathlib import Path

from podline.api.config import Config, Context, config_path, load_config
from podline.backends.base import Backend
from podline.backends.local import LocalBackend


class UnknownContext(Exception):
    pass


class Backends:
    def __init__(self, home: Path, notify: str = "") -> None:
        self.home = home
        self.notify = notify
        self.local = LocalBackend(home, notify)
        self._remote: dict[tuple[str, str], Backend] = {}  # (context, its settings) → backend
        self._by_name: dict[str, Backend] = {}
        self._config: Config | None = None
        self._stamp: float | None = None

    def config(self) -> Config:
        path = config_path(self.home)
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if self._config is None or stamp != self._stamp:
            self._config, self._stamp = load_config(self.home), stamp
            self._by_name = {}
            self._drop_stale()
        return self._config

    def _drop_stale(self) -> None:
        """Backends of contexts that were removed or changed are never asked again: release what they keep."""
        assert self._config is not None
        current = {_key(name, ctx) for name, ctx in self._config.contexts.items()}
        for key in [key for key in self._remote if key not in current]:
            self._remote.pop(key).close()

    def for_context(self, name: str) -> Backend:
        if self._config is None:
            self.config()
        backend = self._by_name.get(name)
        if backend is None:
            backend = self._by_name[name] = self._build(name)
        return backend

    def _build(self, name: str) -> Backend:
        ctx = self.config().contexts.get(name)
        if ctx is None:
            raise UnknownContext(f'context "{name}" no longer exists in {config_path(self.home)}')
        if ctx.backend == "local":
            return self.local
        key = _key(name, ctx)
        if key not in self._remote:  # unchanged settings keep their backend (and its squeue watcher)
            from podline.backends.slurm import SlurmBackend

            self._remote[key] = SlurmBackend(name, ctx, self.home, self.notify)
        return self._remote[key]

    def begin_pass(self) -> None:
        """Re-read config.yaml if it changed (once per pass, not per object), then each backend's turn."""
        self.config()
        self.local.begin_pass()
        for backend in self._remote.values():
            backend.begin_pass()

    def end_pass(self) -> None:
        """After a pass: every Slurm context of the configuration gets ready for its next submission."""
        for name, ctx in self.config().contexts.items():
            if ctx.backend != "local":
                self.for_context(name).end_pass()

    def close(self) -> None:
        """The controller stops: nothing may stay behind (a warm sbatch is killed, never fed)."""
        for backend in self._remote.values():
            backend.close()


def _key(name: str, ctx: Context) -> tuple[str, str]:
    """A remote backend is reused while its context keeps exactly these settings."""
    return name, ctx.model_dump_json()
