"""Kubernetes `$(VAR)` expansion in command, args and env values.

`$(NAME)` becomes NAME's value when defined, otherwise stays as written; `$$` is a literal `$`.
Nothing here involves a shell: the result is an argv element, never re-parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def expand(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            name = text[i + 2:end]
            out.append(env[name] if name in env else text[i:end + 1])
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def container_env(entries: list[dict[str, Any]], first: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build a container's environment in order: `expand` entries see the variables defined before them."""
    env: dict[str, str] = dict(first or {})
    for entry in entries:
        env[entry["name"]] = expand(entry["value"], env) if entry["expand"] else entry["value"]
    return env
