"""Argo Workflows template logic as pure functions: `{{...}}` substitution, `when`, loops and durations.

The controller runs Argo Workflows without Argo, so it must read a workflow the way Argo's controller
would: substitute `{{inputs.parameters.x}}` once, decide a step's `when` with govaluate's rules, expand
withItems / withParam / withSequence into the same items and node names, and read Go durations.  Keeping
these rules here, free of I/O, lets them be tested against Argo's own examples in isolation.  DAG
`depends` logic (and ExpressionError) live in argo_depends.py, loop items (which keep withParam's JSON text)
in argo_items.py, `when` (govaluate's grammar) in argo_when.py; all are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from podline.plan import argo_exprlang as exprlang
from podline.plan.argo_depends import (
    ExpressionError,
    TaskResult,
    depends_from_dependencies,
    depends_names,
    evaluate_depends,
    quoted,
    task_phase,
)
from podline.plan.argo_exprfuncs import go_json
from podline.plan.argo_items import MAX_ITEMS, item_label, item_scope, parse_items, render_item
from podline.plan.argo_when import evaluate_when

_REFERENCE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


# ----------------------------------------------------------------------------------------------- substitution


def _name(inner: str) -> str:
    name = inner.strip()
    return "=" + name[1:].strip() if name.startswith("=") else name


def references(text: str) -> list[str]:
    """The trimmed names inside `{{ ... }}` in order; an expr-lang `{{= a + b}}` comes back as '=a + b'."""
    return [_name(match.group(1)) for match in _REFERENCE.finditer(text)]


def _later(name: str, leave: tuple[str, ...]) -> bool:
    """Is `name` (`steps.a`, or just `steps` when no step has outputs yet) one the caller resolves later?"""
    return name.startswith(leave) or (name + ".").startswith(leave)


def expression_value(expression: str, scope: Mapping[str, str], strict: bool, leave: tuple[str, ...]) -> str | None:
    """`{{=expression}}` evaluated in `scope` (podline.plan.argo_exprlang); None to leave it for a later pass:
    it names what the scope lacks (in strict mode only names under `leave`), or fails when not strict."""
    try:
        return exprlang.render(expression, scope)
    except exprlang.Unresolved as exc:
        if strict and not _later(exc.name, leave):
            raise ExpressionError(f"unresolved reference {exc.name} in expression {quoted(expression)}") from None
    except ExpressionError:
        if strict:
            raise
    except (RecursionError, MemoryError, ArithmeticError, TypeError, ValueError) as exc:  # a bound missed: the
        if strict:  # step fails with the reason, never the controller or the workflow
            raise ExpressionError(f"expression {quoted(expression)} cannot be computed ({type(exc).__name__})") \
                from None
    return None


def _substitute_text(text: str, scope: Mapping[str, str], strict: bool, leave: tuple[str, ...]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = _name(match.group(1))
        if name in scope:
            return scope[name]
        if name.startswith("="):
            value = expression_value(name[1:], scope, strict, leave)
            return match.group(0) if value is None else value
        if strict and not name.startswith(leave):
            raise ExpressionError(f"unresolved reference {{{{{name}}}}} in {quoted(text)}")
        return match.group(0)

    return _REFERENCE.sub(replace, text)  # one pass: inserted text is never looked at again


def substitute(value: Any, scope: Mapping[str, str], *, strict: bool = False, leave: tuple[str, ...] = ()) -> Any:
    """A copy of `value` (str, list, dict, nested) with each `{{ name }}` whose name is in `scope` replaced.

    Names not in scope stay as written, or raise ExpressionError when `strict` unless they start with one of
    the `leave` prefixes (e.g. "steps." while a steps template is instantiated before its steps ran).
    `{{=...}}` expressions are evaluated in the same scope (expression_value).  Dict keys are not substituted.
    """
    if isinstance(value, str):
        return _substitute_text(value, scope, strict, leave)
    if isinstance(value, list):
        return [substitute(entry, scope, strict=strict, leave=leave) for entry in value]
    if isinstance(value, dict):
        return {key: substitute(entry, scope, strict=strict, leave=leave) for key, entry in value.items()}
    return value


# ------------------------------------------------------------------------------------------------------ loops

_PRINTF = re.compile(r"%(?:%|[-+ 0]*\d*(?:\.\d+)?(?P<conv>[dxXos])|.?)")


def _integer(value: Any, key: str) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"[-+]?\d+", text):
        raise ExpressionError(f"withSequence {key} must be an integer, not {quoted(str(value))}")
    return int(text)


def _format_one(fmt: str, number: int) -> str:
    directives = [m for m in _PRINTF.finditer(fmt) if m.group(0) != "%%"]
    if len(directives) != 1 or directives[0].group("conv") is None:
        raise ExpressionError(f"withSequence format {quoted(fmt)} needs exactly one of %d %x %X %o %s (no '#')")
    return fmt % (str(number) if directives[0].group("conv") == "s" else number)


def expand_sequence(seq: Mapping[str, Any]) -> list[str]:
    """withSequence's items: `count` from `start`, or `start` to `end` inclusive (descending if end < start).

    One of count and end is required; start defaults to 0.  Values are ints or integer text (as left by
    substitution); `format` is printf-like with one of %d %x %X %o %s (flags, width, precision), default "%d".
    """
    if seq.get("count") is not None and seq.get("end") is not None:
        raise ExpressionError("withSequence takes count or end, not both")
    start = _integer(0 if seq.get("start") is None else seq["start"], "start")
    if seq.get("count") is not None:
        count = _integer(seq["count"], "count")
        if count < 0:
            raise ExpressionError(f"withSequence count must not be negative, not {count}")
        numbers = range(start, start + count)
    elif seq.get("end") is not None:
        end = _integer(seq["end"], "end")
        numbers = range(start, end + 1) if end >= start else range(start, end - 1, -1)
    else:
        raise ExpressionError("withSequence needs count or end")
    if len(numbers) > MAX_ITEMS:
        raise ExpressionError(f"withSequence makes {len(numbers)} items, more than {MAX_ITEMS}")
    fmt = str(seq.get("format") or "%d")
    return [_format_one(fmt, number) for number in numbers]


# --------------------------------------------------------------------------------------------------- durations

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | int | float) -> float:
    """Seconds in a Go duration ("1h30m", "500ms", "-1.5s") or a plain number of seconds (30, "30", "2.5")."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    raw = str(text).strip()
    sign, body = (-1.0, raw[1:]) if raw.startswith("-") else (1.0, raw.removeprefix("+"))
    if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", body):
        return sign * float(body)
    parts = list(_DURATION_PART.finditer(body))
    if not body or "".join(part.group(0) for part in parts) != body:
        raise ExpressionError(f"bad duration {quoted(str(text))}: expected e.g. 30, 1.5m, 1h30m or 500ms")
    return sign * sum(float(part.group(1)) * _UNIT_SECONDS[part.group(2)] for part in parts)


__all__ = [
    "ExpressionError",
    "TaskResult",
    "depends_from_dependencies",
    "depends_names",
    "evaluate_depends",
    "evaluate_when",
    "task_phase",
    "expand_sequence",
    "go_json",
    "item_label",
    "item_scope",
    "parse_duration",
    "parse_items",
    "render_item",
    "references",
    "substitute",
]
