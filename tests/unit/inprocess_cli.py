"""The CLI run in process against an empty home (no background controller may start), and the check that a
refusal is exit 2, one line naming the document, object, exact field path and problem, with nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from podline.cli.common import State
from podline.cli.main import cli
from podline.store import Store


def no_controller(self: State) -> None:
    raise AssertionError("an in-process CLI test must not start the background controller")


def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The store of a new home for the CLI (each test file's `store` fixture)."""
    monkeypatch.setenv("PODLINE_HOME", str(tmp_path))
    monkeypatch.setattr(State, "ensure_controller", no_controller)
    return Store(tmp_path / "state.db")


def run(*args: str, stdin: bytes | str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


def refused(store: Store, text: str, ident: str, path: str, problem: str, document: int = 1) -> str:
    """`apply -f -` of `text` exits 2 with exactly `error: <stdin>: document N (ident): path: …problem…` and
    stores nothing; returns the line."""
    result = run("apply", "-f", "-", stdin=text)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    head = f"error: <stdin>: document {document} ({ident}): " + (f"{path}: " if path else "")
    assert lines[0].startswith(head), f"expected {head!r}\n     got {lines[0]!r}"
    assert problem in lines[0][len(head):], lines[0]
    assert result.stdout == ""
    assert store.list() == []
    return lines[0]


def pod(spec: str = "", container: str = "", meta: str = "") -> str:
    """A valid Pod `p`; `spec`/`meta` lines indented 2, `container` lines 4, all newline-terminated."""
    return ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n" + meta + "spec:\n" + spec
            + "  containers:\n  - name: c\n    command: [x]\n" + container)


def pipeline(spec: str) -> str:
    """A valid Pipeline `pl` of one step; `spec` lines indented 2."""
    return ("apiVersion: podline.io/v1alpha1\nkind: Pipeline\nmetadata: {name: pl}\nspec:\n"
            "  steps: [{name: a, command: [x]}]\n" + spec)


def workflow(spec: str = "", template: str = "    container: {image: busybox}\n") -> str:
    """A valid Workflow `w` with one template `m`; `spec` lines indented 2, `template` lines 4."""
    return ("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  entrypoint: m\n"
            + spec + "  templates:\n  - name: m\n" + template)
