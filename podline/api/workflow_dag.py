"""The grammar of an Argo DAG's dependencies: task names in a `depends` expression, and the search for a loop.

Validation only (what a task may name); `plan.argo_depends` evaluates the expressions as the DAG runs."""

from __future__ import annotations

import re

TASK_RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")
DEPENDS_TOKEN = re.compile(r"\s*(?:(&&|\|\||!|\(|\))|([a-zA-Z0-9][-a-zA-Z0-9_]*)(?:\.([A-Za-z]+))?)")


def parse_depends(text: str) -> list[str]:
    """Task names in a `depends` expression (`a && (b.Failed || !c.Skipped)`); ValueError if it does not parse."""
    tokens: list[tuple[str, str]] = []  # (operator, '') or ('name', task)
    pos = 0
    while pos < len(text.rstrip()):
        match = DEPENDS_TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot parse depends {text!r} at {text[pos:].strip()[:20]!r}")
        operator, name, result = match.groups()
        if result is not None and result not in TASK_RESULTS:
            raise ValueError(f"unknown task result {name}.{result} (use one of {', '.join(TASK_RESULTS)})")
        tokens.append((operator, "") if operator else ("name", name))
        pos = match.end()
    names: list[str] = []

    def expect(i: int) -> int:  # expression := term ('||' term)*, term := factor ('&&' factor)*
        i = factor(i)
        while i < len(tokens) and tokens[i][0] in ("&&", "||"):
            i = factor(i + 1)
        return i

    def factor(i: int) -> int:
        if i >= len(tokens):
            raise ValueError(f"depends {text!r} ends too early")
        kind, name = tokens[i]
        if kind == "!":
            return factor(i + 1)
        if kind == "(":
            i = expect(i + 1)
            if i >= len(tokens) or tokens[i][0] != ")":
                raise ValueError(f"depends {text!r}: unbalanced parentheses")
            return i + 1
        if kind == "name":
            names.append(name)
            return i + 1
        raise ValueError(f"depends {text!r}: unexpected {kind!r}")

    if not tokens:
        raise ValueError("depends must name at least one task")
    end = expect(0)
    if end != len(tokens):
        raise ValueError(f"depends {text!r}: unexpected {tokens[end][0]!r}")
    return names


def cycle(edges: dict[str, list[str]]) -> list[str]:
    """A dependency loop, starting and ending at its first task in listing order; [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if state.get(start):
            continue
        path, stack = [start], [iter(edges[start])]
        state[start] = 1
        while stack:
            dep = next(stack[-1], None)
            if dep is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(dep) == 1:
                loop = path[path.index(dep):]
                first = min(range(len(loop)), key=lambda k: list(edges).index(loop[k]))
                loop = loop[first:] + loop[:first]
                return [*loop, loop[0]]
            elif not state.get(dep):
                state[dep] = 1
                path.append(dep)
                stack.append(iter(edges[dep]))
    return []
