"""Errors for bad input, rendered as the one line the CLI prints before exiting with code 2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def format_path(loc: Sequence[str | int]) -> str:
    """Render a pydantic/JSON location as `spec.containers[0].name`."""
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself was invalid": the key is already named
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<document>"


@dataclass
class ManifestError(Exception):
    """One problem in one document of one input source."""

    source: str
    problem: str
    path: str = ""
    document: int | None = None
    kind: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        where = self.source
        if self.document is not None:
            where += f": document {self.document}"
            if self.kind or self.name:
                where += f" ({self.kind or '<no kind>'}/{self.name or '<no name>'})"
        field = f"{self.path}: " if self.path else ""
        return f"{where}: {field}{self.problem}"


class InvalidObject(Exception):
    """Raised by semantic checks with a field path; the loader adds the document context."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
