"""The functions `{{=…}}` expressions may call (podline.plan.argo_exprlang), and Go's `%v` for their results.

Three sets, as Argo's expression environment has them: expr-lang's built-ins (`len`, `upper`, `split`,
`toJSON`, …), Argo's own (`asInt`, `asFloat`, `jsonpath`, `toJson`), and sprig's, called as `sprig.NAME` with
sprig's argument order (the subject last: `sprig.trimPrefix("v", s)`). Every function works on plain values
(str, int, float, bool, None, list, dict) and keeps results within MAX_SIZE, so none can exhaust memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import re2

from podline.plan.argo_depends import ExpressionError

MAX_SIZE = 1 << 20  # characters of a string, items of a list
MAX_NESTING = 64  # of JSON read by fromJSON/jsonpath
INTEGER = re2.compile(r"[+-]?\d+")
FLOAT = re2.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(Inf|inf|NaN)")


def check_size(value: Any) -> Any:
    if isinstance(value, str | list) and len(value) > MAX_SIZE:
        raise ExpressionError(f"a value larger than {MAX_SIZE} characters or items")
    return value


# --- Go's %v and JSON ------------------------------------------------------------------------------------------

def _go_float(number: float) -> str:
    """%v of a float64: the shortest digits that read back, exponent form below 1e-4 and from 1e21."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)  # the decimal point's position in `text`
    if -4 < point <= 6:  # Go's %g: exponent form from 1e+06 on, as `fmt.Println(2e6)` prints 2e+06
        if point <= 0:
            body = "0." + "0" * -point + text
        elif point >= len(text):
            body = text + "0" * (point - len(text))
        else:
            body = text[:point] + "." + text[point:]
    else:
        power = point - 1
        body = text[0] + ("." + text[1:] if len(text) > 1 else "") + f"e{'-' if power < 0 else '+'}{abs(power):02d}"
    return ("-" if sign else "") + body


def go_string(value: Any) -> str:
    """A value as Go's fmt `%v` prints it (what Argo writes for `{{=…}}`): `[a b]`, `map[k:v]`, `<nil>`."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list):
        return check_size("[" + " ".join(go_string(item) for item in value) + "]")
    if isinstance(value, dict):
        return check_size("map[" + " ".join(f"{k}:{go_string(v)}" for k, v in sorted(value.items())) + "]")
    return str(value)


def _json_float(number: float) -> str:
    """A float as Go's encoding/json writes it: no '.0', exponents only outside [1e-6, 1e21)."""
    if not math.isfinite(number):
        raise ExpressionError(f"{number} cannot be written as JSON")
    if number == 0 or 1e-6 <= abs(number) < 1e21:
        text = format(Decimal(repr(number)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, _, exponent = repr(number).partition("e")
    return f"{mantissa.removesuffix('.0')}e{exponent[0]}{exponent[1:].lstrip('0')}"


def go_json(value: Any) -> str:
    """`value` as Go's json.Marshal writes it: compact, map keys sorted, <, >, & escaped.

    A YAML date (PyYAML reads `2020-01-01` as one) is written as its ISO text, as Argo keeps it.
    """
    if isinstance(value, dict):
        pairs = sorted((str(key), entry) for key, entry in value.items())
        return "{" + ",".join(f"{go_json(key)}:{go_json(entry)}" for key, entry in pairs) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(entry) for entry in value) + "]"
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, date):
        value = value.isoformat()
    if not isinstance(value, str | int | None):
        raise ExpressionError(f"a loop item of type {type(value).__name__} cannot be written as JSON")
    text = json.dumps(value, ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def to_json(value: Any) -> str:
    return check_size(go_json(value))


def from_json(text: str) -> Any:
    try:
        value = json.loads(_text(text))
    except (ValueError, RecursionError):
        raise ExpressionError(f"not JSON: {str(text)[:60]!r}") from None
    stack = [(value, 0)]
    while stack:  # nested at most MAX_NESTING deep, so printing it again cannot recurse without bound
        item, level = stack.pop()
        if level > MAX_NESTING:
            raise ExpressionError(f"JSON nested deeper than {MAX_NESTING}")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return value


# --- conversions -----------------------------------------------------------------------------------------------

def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ExpressionError(f"needs a string, not {type(value).__name__}")
    return value


def as_int(value: Any) -> int:
    """Argo's asInt: a number or the text of an integer."""
    if isinstance(value, bool):
        raise ExpressionError("needs a number or its text, not bool")
    if isinstance(value, int | float):
        return int(value)
    if not INTEGER.fullmatch(_text(value)):  # strconv.ParseInt(s, 10, 64): no spaces, underscores or prefixes
        raise ExpressionError(f"{value!r} is not an integer")
    return int(value)


def as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ExpressionError("needs a number or its text, not bool")
    if isinstance(value, int | float):
        return float(value)
    if not FLOAT.fullmatch(_text(value)):  # strconv.ParseFloat's forms
        raise ExpressionError(f"{value!r} is not a number")
    return float(value)


def to_int(value: Any) -> int:
    """expr's int(): floats truncate, text must be an integer (strconv.Atoi)."""
    return as_int(value)


def length(value: Any) -> int:
    if not isinstance(value, str | list | dict):
        raise ExpressionError(f"len of {type(value).__name__}")
    return len(value)


# --- JSONPath (Argo's jsonpath(text, path)) --------------------------------------------------------------------

def jsonpath(document: Any, path: str) -> Any:
    """`$.a.b[0]`, `$['a-b']`, `$.items[*].name`: the value (a list where `[*]` or `..` was used)."""
    data = from_json(document) if isinstance(document, str) else document
    values, many = [data], False
    text = _text(path).strip()
    if not text.startswith("$"):
        raise ExpressionError(f"a JSONPath starts with $: {path!r}")
    pos = 1
    step = re2.compile(r"(\.\.|\.)([A-Za-z_][\w-]*|\*)?|\[\s*(\*|-?\d+|'[^']*'|\"[^\"]*\")\s*\]")
    while pos < len(text):
        match = step.match(text, pos)
        if match is None or match.group(0) == ".":
            raise ExpressionError(f"cannot read JSONPath {path!r} at {text[pos:][:20]!r}")
        pos = match.end()
        if match.group(1) == "..":  # recursive descent: this level and every one below, then the key if named
            if many and text[match.start() - 2:match.start()] == "..":
                raise ExpressionError(f"JSONPath {path!r}: '..' twice in a row")
            values, many = [v for value in values for v in _descendants(value)], True
            check_size(values)
            if match.group(2) is None:
                continue
        key = match.group(2) if match.group(1) else match.group(3)
        if key == "*":
            many = True
            values = [v for value in values for v in (value.values() if isinstance(value, dict) else
                                                       value if isinstance(value, list) else [])]
        elif key[0] in "'\"":
            values = [value[key[1:-1]] for value in values if isinstance(value, dict) and key[1:-1] in value]
        elif key.lstrip("-").isdigit():
            i = int(key)
            values = [value[i] for value in values if isinstance(value, list) and -len(value) <= i < len(value)]
        else:
            values = [value[key] for value in values if isinstance(value, dict) and key in value]
    if many:
        return values
    if not values:
        raise ExpressionError(f"JSONPath {path!r} matches nothing")
    return values[0]


def _descendants(value: Any) -> list[Any]:
    out = [value]
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    for child in children:
        out.extend(_descendants(child))
    return out


# --- the sets --------------------------------------------------------------------------------------------------

def _split(text: str, sep: str, n: int = -1) -> list[str]:
    parts = _text(text).split(sep) if n < 0 else _text(text).split(sep, max(n - 1, 0))
    return check_size(parts)


def _join(items: list[Any], sep: str = "") -> str:
    return check_size(sep.join(go_string(item) for item in items))


def _repeat(text: str, n: int) -> str:
    if len(_text(text)) * max(n, 0) > MAX_SIZE:
        raise ExpressionError(f"a value larger than {MAX_SIZE} characters")
    return text * n


def _until(n: int) -> list[int]:
    if n > MAX_SIZE:
        raise ExpressionError(f"a value larger than {MAX_SIZE} items")
    return list(range(n))


def _uniq(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out: list[Any] = []
    for item in items:
        key = json.dumps(item, sort_keys=True, default=str)  # lists and maps too, in linear time
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _go_replacement(repl: str) -> str:
    """Go's regexp replacement (`$1`, `${name}`, `$$`) as Python's (`\\g<1>`); backslashes are literal in Go."""
    out = re2.sub(r"\$(\$|\{(\w+)\}|(\w+))", lambda m: "$" if m.group(1) == "$" else
                  f"\\g<{m.group(2) or m.group(3)}>", repl.replace("\\", "\\\\"))
    return out


def _regex_replace(rx: str, text: str, repl: str) -> str:
    if (len(_text(text)) + 1) * len(repl) + len(text) > MAX_SIZE:  # the most a replacement at every place makes
        raise ExpressionError(f"a value larger than {MAX_SIZE} characters")
    try:
        return re2.sub(rx, _go_replacement(repl), text)
    except re2.error as exc:
        raise ExpressionError(f"bad regular expression {rx!r} ({exc})") from None


def _quote(*items: Any) -> str:
    return " ".join(json.dumps(go_string(item), ensure_ascii=False) for item in items)


def _pick(function: Callable[..., Any]) -> Callable[..., Any]:
    """max/min over arguments, or over one list argument."""
    def pick(*args: Any) -> Any:
        items = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
        return function(items)
    return pick


def _b64decode(text: str) -> str:
    try:
        return base64.b64decode(_text(text), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise ExpressionError("not base64 text") from None


def _trim(text: str, chars: str | None = None) -> str:
    return _text(text).strip(chars) if chars is not None else _text(text).strip()


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "asInt": as_int, "asFloat": as_float, "jsonpath": jsonpath, "toJson": to_json, "toJSON": to_json,
    "fromJSON": from_json, "string": go_string, "int": to_int, "float": as_float, "len": length,
    "abs": abs, "ceil": math.ceil, "floor": math.floor, "round": lambda x: math.copysign(math.floor(abs(x) + 0.5), x),
    "trim": _trim, "trimPrefix": lambda s, p: _text(s).removeprefix(p),
    "trimSuffix": lambda s, p: _text(s).removesuffix(p),
    "upper": lambda s: _text(s).upper(), "lower": lambda s: _text(s).lower(), "split": _split, "join": _join,
    "replace": lambda s, old, new: check_size(_text(s).replace(old, new)), "repeat": _repeat,
    "indexOf": lambda s, sub: _text(s).find(sub), "lastIndexOf": lambda s, sub: _text(s).rfind(sub),
    "hasPrefix": lambda s, p: _text(s).startswith(p), "hasSuffix": lambda s, p: _text(s).endswith(p),
    "toBase64": lambda s: base64.b64encode(_text(s).encode()).decode(), "fromBase64": _b64decode,
    "keys": lambda m: sorted(m), "values": lambda m: [m[k] for k in sorted(m)], "max": _pick(max),
    "min": _pick(min), "first": lambda xs: xs[0] if xs else None, "last": lambda xs: xs[-1] if xs else None,
    "type": lambda v: {bool: "bool", int: "int", float: "float", str: "string", list: "array", dict: "map"}.get(
        type(v), "nil"),
}

SPRIG: dict[str, Callable[..., Any]] = {
    "trim": _trim, "trimAll": lambda cut, s: _text(s).strip(cut), "trimPrefix": lambda p, s: _text(s).removeprefix(p),
    "trimSuffix": lambda p, s: _text(s).removesuffix(p), "upper": lambda s: _text(s).upper(),
    "lower": lambda s: _text(s).lower(), "title": lambda s: _text(s).title(),
    "nospace": lambda s: "".join(_text(s).split()),
    "replace": lambda old, new, s: check_size(_text(s).replace(old, new)), "repeat": lambda n, s: _repeat(s, n),
    "contains": lambda sub, s: sub in _text(s), "hasPrefix": lambda p, s: _text(s).startswith(p),
    "hasSuffix": lambda p, s: _text(s).endswith(p), "quote": _quote,
    "squote": lambda *xs: " ".join(f"'{go_string(x)}'" for x in xs),
    "substr": lambda start, end, s: _text(s)[start:end if end >= 0 else None],
    "trunc": lambda n, s: _text(s)[:n] if n >= 0 else _text(s)[n:], "splitList": lambda sep, s: _split(s, sep),
    "join": lambda sep, xs: _join(xs if isinstance(xs, list) else [xs], sep),
    "default": lambda default, *v: v[0] if v and v[0] not in (None, "", 0, False, [], {}) else default,
    "empty": lambda v: v in (None, "", 0, False, [], {}), "ternary": lambda yes, no, cond: yes if cond else no,
    "coalesce": lambda *xs: next((x for x in xs if x not in (None, "", 0, False, [], {})), None),
    "int": to_int, "int64": to_int, "atoi": lambda s: as_int(s) if _text(s) else 0, "float64": as_float,
    "toString": go_string, "toJson": to_json, "fromJson": from_json, "toPrettyJson": lambda v: json.dumps(v, indent=2),
    "add": lambda *xs: sum(to_int(x) for x in xs), "add1": lambda x: to_int(x) + 1,
    "sub": lambda a, b: to_int(a) - to_int(b), "mul": lambda *xs: math.prod(to_int(x) for x in xs),
    "div": lambda a, b: int(to_int(a) / to_int(b)), "mod": lambda a, b: int(math.fmod(to_int(a), to_int(b))),
    "max": lambda *xs: max(to_int(x) for x in xs), "min": lambda *xs: min(to_int(x) for x in xs),
    "list": lambda *xs: list(xs), "first": lambda xs: xs[0] if xs else None, "last": lambda xs: xs[-1] if xs else None,
    "rest": lambda xs: xs[1:], "initial": lambda xs: xs[:-1], "append": lambda xs, x: check_size([*xs, x]),
    "uniq": _uniq, "has": lambda x, xs: x in xs,
    "until": _until, "b64enc": lambda s: base64.b64encode(_text(s).encode()).decode(),
    "b64dec": _b64decode, "sha1sum": lambda s: hashlib.sha1(_text(s).encode()).hexdigest(),
    "sha256sum": lambda s: hashlib.sha256(_text(s).encode()).hexdigest(),
    "regexMatch": lambda rx, s: re2.search(rx, _text(s)) is not None,
    "regexFind": lambda rx, s: (lambda m: m.group(0) if m else "")(re2.search(rx, _text(s))),
    "regexReplaceAll": _regex_replace,
}
