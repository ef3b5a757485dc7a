"""Errors for bad input, rendered as the one line the CLI prints before exiting with code 2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Fields whose values are maps: the next location part is a key, shown as `[key]` like Kubernetes does
# (`metadata.labels[app.kubernetes.io/name]`, `spec.containers[0].resources.limits[nvidia.com/gpu]`).
MAP_FIELDS = frozenset({"labels", "annotations", "data", "binaryData", "stringData", "requests", "limits",
                        "contexts", "nodeSelector"})


def format_path(loc: Sequence[str | int]) -> str:
    """Render a pydantic/JSON location as `spec.containers[0].name` (map keys in brackets)."""
    out = ""
    previous: str | int | None = None
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself was invalid": the key is already named
            continue
        if isinstance(part, int) or previous in MAP_FIELDS:
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
        previous = part
    return out or "<document>"


def one_line(text: str) -> str:
    """Control characters (a newline in a name, say) shown escaped, so an error stays one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


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
        return one_line(f"{where}: {field}{self.problem}")


class InvalidObject(Exception):
    """Raised by semantic checks with a field path; the loader adds the document context."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
