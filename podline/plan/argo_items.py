"""Loop items as Argo holds them: `{{item}}`, `{{item.KEY}}` and the `(i:label)` of a loop node's name.

Argo reads a withParam list into Items whose value is each entry's own JSON text (a json.RawMessage), and
writes `{{item}}` from that text, compacted as Go's json.Marshal compacts a RawMessage (white space gone,
`<`, `>`, `&` escaped), never from a number read and printed again: `[1.50, 1e3, {"k": 1.0}]` gives the items
`1.50`, `1e3` and `{"k":1.0}` and the nodes `wp(0:1.50)`, `wp(1:1e3)`, `wp(2:k:1.0)`. `parse_items` keeps that
text on each value it returns (RawJSON: values that compare equal to what json.loads gives, so callers may
treat them as plain JSON), and the functions here write items from it as Argo's `Item.String()` does.
Items written as YAML (withItems, withSequence) arrive as plain Python values and are written as Go's
json.Marshal writes them (go_json). Split from argo_expr.py, which re-exports these names.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from podline.plan.argo_depends import ExpressionError, quoted
from podline.plan.argo_exprfuncs import go_json

MAX_ITEMS = 10_000
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)'
                    r"|(?P<const>true|false|null)|(?P<punct>[\[\]{}:,]))", re.DOTALL)
_CONSTANTS = {"true": True, "false": False, "null": None}
_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class RawJSON:
    """A value read from withParam's JSON that remembers its text (`raw`), compacted as Go compacts it."""

    raw: str

    @classmethod
    def of(cls, value: Any, raw: str) -> Any:
        made = cls(value)  # type: ignore[call-arg]
        made.raw = raw
        return made


class RawStr(str, RawJSON):
    pass


class RawInt(int, RawJSON):
    pass


class RawFloat(float, RawJSON):
    pass


class RawList(list[Any], RawJSON):
    pass


class RawDict(dict[str, Any], RawJSON):
    pass


# ------------------------------------------------------------------------------------------------- reading


def _escape_html(token: str) -> str:
    return re.sub("[<>&\u2028\u2029]", lambda m: _HTML[m.group(0)], token)


def _number(text: str) -> Any:
    return RawInt.of(int(text), text) if re.fullmatch(r"-?\d+", text) else RawFloat.of(float(text), text)


def _value(text: str, pos: int) -> tuple[Any, int]:
    """The JSON value at `pos` of text json.loads accepted, with its compacted text; and where it ends."""
    match = _TOKEN.match(text, pos)
    assert match is not None  # the text was checked by json.loads
    if match.group("str") is not None:
        token = match.group("str")
        return RawStr.of(json.loads(token), _escape_html(token)), match.end()
    if match.group("num") is not None:
        return _number(match.group("num")), match.end()
    if match.group("const") is not None:
        return _CONSTANTS[match.group("const")], match.end()
    return _container(text, match.end(), match.group("punct"))


def _container(text: str, pos: int, opener: str) -> tuple[Any, int]:
    entries: list[tuple[str | None, Any]] = []
    closer = "]" if opener == "[" else "}"
    while True:
        match = _TOKEN.match(text, pos)
        assert match is not None
        if match.group("punct") in (closer, ","):  # an empty container, or the next entry
            pos = match.end()
            if match.group("punct") == closer:
                break
            continue
        key = None
        if opener == "{":
            key, pos = match.group("str"), _TOKEN.match(text, match.end()).end()  # type: ignore[union-attr]
        value, pos = _value(text, pos)
        entries.append((key, value))
    if opener == "[":
        values = [value for _, value in entries]
        return RawList.of(values, "[" + ",".join(raw_of(v) for v in values) + "]"), pos
    raw = "{" + ",".join(f"{_escape_html(k or '')}:{raw_of(v)}" for k, v in entries) + "}"
    return RawDict.of({json.loads(k or '""'): v for k, v in entries}, raw), pos


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python reads NaN and Infinity; Go does not


def parse_items(text: str) -> list[Any]:
    """withParam's items: `text` must be a JSON list (of at most MAX_ITEMS entries). Each entry keeps its JSON
    text (see RawJSON) and compares equal to what json.loads makes of it."""
    try:
        checked = json.loads(text, parse_constant=_no_constant)
        items = _value(text, 0)[0] if isinstance(checked, list) else None
    except (TypeError, ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        items = None
    if not isinstance(items, list):
        raise ExpressionError(f"withParam value is not a JSON list: {quoted(str(text), 80)}")
    if len(items) > MAX_ITEMS:
        raise ExpressionError(f"withParam value has {len(items)} items, more than {MAX_ITEMS}")
    return items


# ------------------------------------------------------------------------------------------------- writing


def raw_of(value: Any) -> str:
    """A read value's JSON text (true, false and null have only one spelling)."""
    return value.raw if isinstance(value, RawJSON) else go_json(value)


def _item_string(value: RawJSON | bool | None) -> str:
    """Argo's Item.String(): the compacted text, a string without its quotes (escapes as written), and
    `<`, `>`, `&` unescaped again (its jsonutil.Fix)."""
    raw = raw_of(value)
    text = raw[1:-1] if raw.startswith('"') else raw
    return text.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&")


def render_item(value: Any) -> str:
    """A loop value as it lands in `{{item}}`. Read from withParam: an object is written with its keys sorted
    and each value's own text (Go's json.Marshal of map[string]Item), a list as its text, anything else as
    Item.String(). Written in YAML: strings as is, everything else as Go JSON (true, 1.5, {...})."""
    if isinstance(value, RawDict):
        return "{" + ",".join(f"{go_json(key)}:{raw_of(entry)}" for key, entry in sorted(value.items())) + "}"
    if isinstance(value, RawList):
        return value.raw
    if isinstance(value, RawJSON):
        return _item_string(value)
    if isinstance(value, date):
        return value.isoformat()
    return value if isinstance(value, str) else go_json(value)


def _field(value: Any) -> str:
    """`{{item.KEY}}`: a field read from withParam is written as Item.String(), a YAML one as render_item."""
    return _item_string(value) if isinstance(value, RawJSON) else render_item(value)


def item_scope(item: Any) -> dict[str, str]:
    """The substitution scope of one loop item: "item", and for a dict "item.KEY" (and "item.KEY.SUB"...)."""
    scope = {"item": render_item(item)}

    def add(prefix: str, mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            scope[f"{prefix}.{key}"] = _field(value)
            if isinstance(value, dict):
                add(f"{prefix}.{key}", value)

    if isinstance(item, dict):
        add("item", item)
    return scope


def _label(value: Any) -> str:
    if isinstance(value, RawDict):
        return ",".join(sorted(f"{key}:{_item_string(entry)}" for key, entry in value.items()))
    if isinstance(value, RawList):
        return "[" + " ".join(_item_string(entry) for entry in value) + "]"  # fmt.Sprint of []Item
    if isinstance(value, dict):
        return ",".join(sorted(f"{key}:{render_item(entry)}" for key, entry in value.items()))
    if isinstance(value, list | tuple):
        return "[" + " ".join(_label(entry) for entry in value) + "]"
    return render_item(value)


def item_label(item: Any, limit: int = 60) -> str:
    """What Argo writes for an item in a loop node's name, the `hello` of `wf[0].print(0:hello)`.

    A dict becomes its sorted "key:value" pairs joined by commas (`a:1,b:2`), a list `[a b]`, a scalar its
    text, null `[]` (Argo takes it for an empty list); parentheses are dropped, as Argo drops them, and the
    label is cut to `limit` characters. The caller adds the name and index: f"{name}({index}:{label})".
    """
    label = "[]" if item is None else _label(item)
    return label.replace("(", "").replace(")", "")[:limit]
