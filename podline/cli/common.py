"""Shared CLI plumbing: the state handle, error exits (2 for bad input, 1 for failures), output."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from podline.api.names import CLUSTER_SCOPED, resolve_kind
from podline.controller import daemon
from podline.home import home, wake_controller
from podline.store import Obj, Store


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@dataclass
class State:
    """Per-invocation handle: the home directory, the store (opened lazily), the chosen context."""

    context: str | None = None
    namespace: str = "default"
    _store: Store | None = field(default=None, repr=False)

    @property
    def home(self) -> Path:
        return home()

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.home / "state.db")
        return self._store

    def check_context(self) -> str:
        """The context new work goes to (exit 2 when config.yaml is bad or the context does not exist)."""
        from podline.api.config import load_config
        from podline.api.errors import ManifestError

        try:
            cfg = load_config(self.home)
        except ManifestError as exc:
            fail(str(exc), 2)
        name = self.context or cfg.current_context
        ctx = cfg.contexts.get(name)
        if ctx is None:
            fail(f'context "{name}" does not exist (see podline config get-contexts)', 2)
        return name

    def ensure_controller(self) -> None:
        """`apply` and friends start the controller when it is not running, then nudge it."""
        try:
            daemon.start(self.home)
        except RuntimeError as exc:
            fail(str(exc))
        wake_controller(self.home)

    def namespace_of(self, kind: str) -> str:
        """The namespace `kind` is looked up in: -n's, or "" for a cluster-scoped kind."""
        return "" if kind in CLUSTER_SCOPED else self.namespace

    def find(self, kind: str, name: str) -> Obj:
        obj = self.store.get(kind, self.namespace_of(kind), name)
        if obj is None:
            fail(f'{kind.lower()}s "{name}" not found')
        return obj


pass_state = click.make_pass_decorator(State, ensure=True)


def kind_or_exit(text: str) -> str:
    try:
        return resolve_kind(text)
    except ValueError as exc:
        fail(str(exc), 2)


def split_ref(ref: str, name: str | None = None) -> tuple[str, str]:
    """`pod/x` or (`pod`, `x`) → ('Pod', 'x'); bad kinds exit 2."""
    if "/" in ref and name is None:
        kind, _, name = ref.partition("/")
        return kind_or_exit(kind), name
    if name is None:
        fail(f"expected KIND/NAME or KIND NAME, got {ref!r}", 2)
    return kind_or_exit(ref), name


def console() -> Console:
    out = Console(soft_wrap=True)
    if not out.is_terminal:
        out = Console(width=250, soft_wrap=True)
    return out


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console().print(table)
