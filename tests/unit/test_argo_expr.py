"""Argo template logic (podline.plan.argo_expr): substitution, `when`, `depends`, loops and durations.

Cases follow Argo's docs and examples (coinflip, loops, loops-sequence, dag-enhanced-depends); the property
tests pin what tables cannot: substitution is one pass, `when` agrees with Python, loop items round-trip.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.plan.argo_expr import (
    ExpressionError,
    TaskResult,
    depends_from_dependencies,
    depends_names,
    evaluate_depends,
    evaluate_when,
    expand_sequence,
    item_label,
    item_scope,
    parse_duration,
    parse_items,
    references,
    substitute,
)

# ------------------------------------------------------------------------------------------------ substitution


@pytest.mark.parametrize(("text", "names"), [
    ("a {{inputs.parameters.x}} b {{ item.name }}", ["inputs.parameters.x", "item.name"]),
    ("no references", []),
    ("{{=sprig.upper(inputs.parameters.x)}}", ["=sprig.upper(inputs.parameters.x)"]),
    ("{{= a + b }}{{a}}", ["=a + b", "a"]),
    ("{{steps.flip-coin.outputs.result}} == heads", ["steps.flip-coin.outputs.result"]),
])
def test_references(text: str, names: list[str]) -> None:
    assert references(text) == names


SCOPE = {"inputs.parameters.message": "hello world", "item.image": "debian", "item.tag": "9.1", "x": "{{y}}"}


@pytest.mark.parametrize(("value", "expected"), [
    ("{{inputs.parameters.message}}", "hello world"),
    ("{{item.image}}:{{item.tag}}", "debian:9.1"),  # Argo's loops-maps example
    ("{{ item.image }}", "debian"),
    ("{{x}}", "{{y}}"),  # one pass only
    ("{{unknown}} and {{=1+1}}", "{{unknown}} and 2"),
    ("{{= unknown + 1 }} {{=sprig.upper(inputs.parameters['message'])}}", "{{= unknown + 1 }} HELLO WORLD"),
    (["cowsay", "{{inputs.parameters.message}}"], ["cowsay", "hello world"]),
    ({"{{x}}": {"args": ["{{x}}", 3, None, True]}}, {"{{x}}": {"args": ["{{y}}", 3, None, True]}}),
    (7, 7),
])
def test_substitute(value: Any, expected: Any) -> None:
    assert substitute(value, SCOPE) == expected
    assert substitute(value, SCOPE, strict=True, leave=("unknown",)) == expected


def test_substitute_does_not_mutate() -> None:
    value = {"a": ["{{x}}"]}
    substitute(value, SCOPE)
    assert value == {"a": ["{{x}}"]}


def test_substitute_strict() -> None:
    with pytest.raises(ExpressionError, match=r"unresolved reference \{\{steps\.a\.outputs\.result\}\} in"):
        substitute(["ok", {"k": "say {{ steps.a.outputs.result }}"}], {}, strict=True)
    with pytest.raises(ExpressionError, match=r"unresolved reference x in expression 'asInt\(x\)'"):
        substitute("{{=asInt(x)}}", {}, strict=True)
    with pytest.raises(ExpressionError, match=r"invalid operation: string \+ int in expression 'x \+ 1'"):
        substitute("{{=x + 1}}", {"x": "1"}, strict=True)
    assert substitute("{{=x + 1}}", {"x": "1"}) == "{{=x + 1}}"  # not strict: left for a later, strict pass
    assert substitute("{{=steps.a.outputs.result}}", {}, strict=True, leave=("steps.",)) == \
        "{{=steps.a.outputs.result}}"
    kept = "{{steps.a.outputs.result}} {{tasks.b.ip}} {{item}} {{workflow.status}}"
    assert substitute(kept, {}, strict=True, leave=("steps.", "tasks.", "item", "workflow.status")) == kept


def test_substitute_error_is_one_line() -> None:
    with pytest.raises(ExpressionError) as caught:
        substitute("line one\n{{nope}}\nline three", {}, strict=True)
    assert "\n" not in str(caught.value) and "nope" in str(caught.value)


NAME = st.from_regex(r"[a-z][a-z0-9.\-]{0,8}", fullmatch=True)
PLAIN = st.text(st.characters(blacklist_characters="{}"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    scope=st.dictionaries(NAME, st.text(max_size=12) | NAME.map(lambda n: "{{" + n + "}}"), max_size=5),
    parts=st.lists(st.tuples(PLAIN, NAME | st.none()), max_size=6),
)
def test_substitute_is_one_pass(scope: dict[str, str], parts: list[tuple[str, str | None]]) -> None:
    text = "".join(plain + ("{{" + name + "}}" if name else "") for plain, name in parts)
    expected = "".join(plain + (scope.get(name, "{{" + name + "}}") if name else "") for plain, name in parts)
    assert substitute(text, scope) == expected


@settings(max_examples=100, deadline=None)
@given(text=st.text(st.characters(blacklist_characters="{}")), scope=st.dictionaries(NAME, st.text()))
def test_substitute_leaves_text_without_braces(text: str, scope: dict[str, str]) -> None:
    assert substitute(text, scope, strict=True) == text


# ------------------------------------------------------------------------------------------------------- when


@pytest.mark.parametrize(("expr", "expected"), [
    ("heads == heads", True),  # Argo's coinflip
    ("tails == heads", False),
    ("heads != tails", True),
    ("( tails == tails &&\n  heads == tails ) || tails =~ tai", True),  # conditionals example, over lines
    ("hello =~ hea", False),
    ("heads !~ '^t'", True),
    ("true", True),
    ("false", False),
    ("!false", True),
    ("!true == false", True),  # (!true) == false
    ("5 > 3", True),
    ("-1.5 < 0", True),
    ("10 > 9", True),  # numeric, not text order
    ("2.0 == 2", True),
    ("'5' == 5", False),  # govaluate's reflect.DeepEqual: a string never equals a number
    ("'5' != 5", True),
    ("abc < abd", True),  # two strings: lexical
    ("b >= a", True),
    ("'a b' == \"a b\"", True),
    ("'' == ''", True),
    ("'it\\'s' == \"it's\"", True),
    ("v1.2.3 == 'v1.2.3'", True),
    ("us-east-1 == us-east-1", True),
    ("true == 'true'", False),  # a bool never equals a string (`{{inputs.parameters.flag}} == 'true'`)
    ("(1 < 2) == true", True),
    ("1 < 2 && 2 < 1 || 3 == 3", True),
    ("1 < 2 && (2 < 1 || 3 != 3)", False),
    ("!(1 == 1) || !(2 == 3)", True),
    ("abc =~ 'b.$'", True),
    ("'1.50' =~ '50$'", True),  # quoted: regexes see the text as written
])
def test_evaluate_when(expr: str, expected: bool) -> None:
    assert evaluate_when(expr) is expected


@pytest.mark.parametrize("expr", [
    "", "   ", "heads", "'true'", "5", "hello world == hello world", "true < false", "1 < abc", "1 < 2 < 3",
    "(1 == 1", "1 == 1)", "== 1", "1 ==", "1 = 1", "!heads", "a && true", "x =~ '('", "heads =~ ^h",
    "'open == open", "a $ b", "-x == -x", "123 =~ 12",  # govaluate's =~ needs two strings, 123 is a number
])
def test_evaluate_when_rejects(expr: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_when(expr)
    assert "\n" not in str(caught.value)


OPS = {"==": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[str, str]:
    a, b = draw(st.integers(-99, 99)), draw(st.integers(-99, 99))
    op = draw(st.sampled_from(sorted(OPS)))
    return f"{a} {op} {b}", f"{a} {OPS[op]} {b}"


def _combine(children: st.SearchStrategy[tuple[str, str]]) -> st.SearchStrategy[tuple[str, str]]:
    binary = st.tuples(children, st.sampled_from([("&&", "and"), ("||", "or")]), children).map(
        lambda t: (f"{t[0][0]} {t[1][0]} {t[2][0]}", f"{t[0][1]} {t[1][1]} {t[2][1]}"))
    negated = children.map(lambda c: (f"!({c[0]})", f"not ({c[1]})"))
    grouped = children.map(lambda c: (f"({c[0]})", f"({c[1]})"))
    return binary | negated | grouped


@settings(max_examples=300, deadline=None)
@given(pair=st.recursive(comparisons(), _combine, max_leaves=8))
def test_evaluate_when_agrees_with_python(pair: tuple[str, str]) -> None:
    when, python = pair
    assert evaluate_when(when) is eval(python)  # Python's and/or/not have the same precedence as ||/&&/!


# ---------------------------------------------------------------------------------------------------- depends


@pytest.mark.parametrize(("expr", "names"), [
    ("", []),
    ("A", ["A"]),
    ("build-a && build-b", ["build-a", "build-b"]),
    ("A && (B.Failed || C.Skipped) && !A.Errored", ["A", "B", "C"]),
    ("(task_1.AnySucceeded||t2.AllFailed)&&3d.Omitted", ["task_1", "t2", "3d"]),
])
def test_depends_names(expr: str, names: list[str]) -> None:
    assert depends_names(expr) == names


@pytest.mark.parametrize("expr", ["A.Success", "A &&", "A B", "(A", "A || || B", "-a", "A.", "A & B", "A.b.Failed"])
def test_depends_names_rejects(expr: str) -> None:
    with pytest.raises(ExpressionError):
        depends_names(expr)


def test_depends_from_dependencies() -> None:
    assert depends_from_dependencies(["A", "B", "C"]) == "A && B && C"
    assert depends_from_dependencies([]) == ""
    assert evaluate_depends(depends_from_dependencies([]), {}) is True


DOCS = "A && (B.Failed || C.Skipped)"  # Argo's enhanced-depends example


@pytest.mark.parametrize(("expr", "results", "expected"), [
    (DOCS, {"A": "Succeeded"}, None),
    (DOCS, {"A": "Succeeded", "B": "Running", "C": "Skipped"}, None),
    (DOCS, {"A": "Failed", "B": "Pending", "C": "Succeeded"}, None),  # all named tasks must be complete
    (DOCS, {"A": "Succeeded", "B": "Failed", "C": "Succeeded"}, True),
    (DOCS, {"A": "Succeeded", "B": "Succeeded", "C": "Skipped"}, True),
    (DOCS, {"A": "Succeeded", "B": "Succeeded", "C": "Succeeded"}, False),
    (DOCS, {"A": "Skipped", "B": "Failed", "C": "Failed"}, True),  # bare A holds when A was skipped
    (DOCS, {"A": "Failed", "B": "Failed", "C": "Skipped"}, False),
    ("A", {"A": "Omitted"}, False),
    ("A.Omitted", {"A": "Omitted"}, True),
    ("A.Errored", {"A": "Error"}, True),
    ("A.Failed", {"A": "Error"}, False),
    ("A.Daemoned || !A.Daemoned", {"A": "Succeeded"}, True),
    ("A.Daemoned", {"A": "Succeeded"}, False),
    ("!A", {"A": "Failed"}, True),
    ("A || B", {"A": "Succeeded"}, None),  # B missing from results: not complete
    ("", {}, True),
    # expanded tasks: a list of the children's phases
    ("A.AnySucceeded", {"A": ["Failed", "Succeeded"]}, True),
    ("A.AnySucceeded", {"A": ["Failed", "Error"]}, False),
    ("A.AnySucceeded", {"A": ["Failed", "Running"]}, None),
    ("A.AllFailed", {"A": ["Failed", "Error"]}, True),
    ("A.AllFailed", {"A": ["Failed", "Succeeded"]}, False),
    ("A.AllFailed", {"A": []}, False),
    ("A", {"A": ["Succeeded", "Skipped"]}, True),
    ("A.Succeeded", {"A": []}, True),
    ("A.Failed", {"A": ["Succeeded", "Failed"]}, True),
    ("A", {"A": ["Succeeded", "Omitted"]}, False),
    ("A.AnySucceeded", {"A": "Succeeded"}, True),  # a plain task counts as its own only child
    ("A.Succeeded && B", {"A": TaskResult("Succeeded"), "B": "Succeeded"}, True),
])
def test_evaluate_depends(expr: str, results: dict[str, Any], expected: bool | None) -> None:
    assert evaluate_depends(expr, results) is expected


def test_evaluate_depends_rejects_before_waiting() -> None:
    with pytest.raises(ExpressionError, match="unknown task result 'Done'"):
        evaluate_depends("A.Done", {})


# ------------------------------------------------------------------------------------------------------ loops


@pytest.mark.parametrize(("seq", "items"), [
    ({"count": 5}, ["0", "1", "2", "3", "4"]),  # loops-sequence example
    ({"count": "5"}, ["0", "1", "2", "3", "4"]),
    ({"start": 100, "end": 105}, ["100", "101", "102", "103", "104", "105"]),
    ({"start": "5", "end": "1"}, ["5", "4", "3", "2", "1"]),
    ({"count": 0}, []),
    ({"start": 3, "count": 2}, ["3", "4"]),
    ({"start": 2, "end": 2}, ["2"]),
    ({"end": "-1"}, ["0", "-1"]),
    ({"count": "3", "format": "%02d"}, ["00", "01", "02"]),
    ({"start": 1, "end": 2, "format": "2020-05-%02d"}, ["2020-05-01", "2020-05-02"]),
    ({"start": "10", "count": 2, "format": "%02X"}, ["0A", "0B"]),
    ({"start": 8, "count": 1, "format": "x%o%%"}, ["x10%"]),
    ({"start": 254, "count": 2, "format": "%x"}, ["fe", "ff"]),
    ({"count": 1, "format": "id-%s"}, ["id-0"]),
    ({"count": " 2 ", "start": None, "format": ""}, ["0", "1"]),
])
def test_expand_sequence(seq: dict[str, Any], items: list[str]) -> None:
    assert expand_sequence(seq) == items


@pytest.mark.parametrize("seq", [
    {"count": 2, "end": 3}, {"count": -1}, {"count": "1.5"}, {"count": "five"}, {"start": 1}, {},
    {"end": "{{tasks.t1.outputs.result}}"}, {"count": True}, {"count": 10_001}, {"start": 0, "end": 20_000},
    {"count": 1, "format": "%d-%d"}, {"count": 1, "format": "plain"}, {"count": 1, "format": "%f"},
    {"count": 1, "format": "%#x"}, {"count": 1, "format": "%(x)d"},
])
def test_expand_sequence_rejects(seq: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError):
        expand_sequence(seq)


def test_parse_items() -> None:
    text = '[{"image": "debian", "tag": "9.1"}, {"image": "alpine", "tag": "3.6"}]'  # loops-param example
    items = parse_items(text)
    assert [item_scope(item)["item.image"] + ":" + item_scope(item)["item.tag"] for item in items] == [
        "debian:9.1", "alpine:3.6"]
    assert parse_items(" [1, \"two\", true] \n") == [1, "two", True]
    assert parse_items("[]") == []


@pytest.mark.parametrize("text", ["", "not json", '{"a": 1}', '"[1]"', "[1,", "x" * 200, "[" + "1," * 10_000 + "1]"])
def test_parse_items_rejects(text: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_items(text)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(("item", "scope"), [
    ("hello", {"item": "hello"}),
    (True, {"item": "true"}),
    (3, {"item": "3"}),
    (1.5, {"item": "1.5"}),
    (2.0, {"item": "2"}),  # Go writes float64 2 as 2
    (1e-7, {"item": "1e-7"}),
    (0.00001, {"item": "0.00001"}),
    (1e21, {"item": "1e+21"}),
    (None, {"item": "null"}),
    (date(2020, 5, 1), {"item": "2020-05-01"}),  # PyYAML's reading of `- 2020-05-01`
    ({1: date(2020, 5, 1)}, {"item": '{"1":"2020-05-01"}', "item.1": "2020-05-01"}),
    (["a", 1], {"item": '["a",1]'}),
    ({"os": "debian", "version": 9.1}, {"item": '{"os":"debian","version":9.1}', "item.os": "debian",
                                        "item.version": "9.1"}),
    ({"b": {"y": "<&>", "x": [1]}, "a": False}, {
        "item": '{"a":false,"b":{"x":[1],"y":"\\u003c\\u0026\\u003e"}}', "item.a": "false",
        "item.b": '{"x":[1],"y":"\\u003c\\u0026\\u003e"}', "item.b.x": "[1]", "item.b.y": "<&>"}),
])
def test_item_scope(item: Any, scope: dict[str, str]) -> None:
    assert item_scope(item) == scope


def test_item_scope_rejects_what_json_cannot_hold() -> None:
    with pytest.raises(ExpressionError):
        item_scope({"a": float("nan")})
    with pytest.raises(ExpressionError):
        item_scope([object()])


def test_item_scope_with_items_example() -> None:
    scope = item_scope({"image": "debian", "tag": "9.1"})
    assert substitute("{{item.image}}:{{item.tag}}", scope) == "debian:9.1"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(item=st.dictionaries(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_-]{0,6}", fullmatch=True), JSON, max_size=5))
def test_item_scope_round_trips_json_dicts(item: dict[str, Any]) -> None:
    scope = item_scope(item)
    assert json.loads(scope["item"], parse_int=float) == item  # Go reads JSON numbers as float64
    for key, value in item.items():
        rendered = scope[f"item.{key}"]
        assert rendered == value if isinstance(value, str) else json.loads(rendered, parse_int=float) == value


@pytest.mark.parametrize(("item", "label"), [
    ("hello", "hello"),
    (7, "7"),
    (False, "false"),
    ({"b": 2, "a": 1}, "a:1,b:2"),
    ({"os": "debian", "nested": {"k": "v"}}, 'nested:{"k":"v"},os:debian'),
    (["a", 1], "[a 1]"),
    ("x" * 100, "x" * 60),
])
def test_item_label(item: Any, label: str) -> None:
    assert item_label(item) == label


# -------------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(("text", "seconds"), [
    (30, 30.0), (2.5, 2.5), ("30", 30.0), ("2.5", 2.5), ("1s", 1.0), ("1.5m", 90.0), ("2h", 7200.0),
    ("1h30m", 5400.0), ("500ms", 0.5), ("1m30.5s", 90.5), ("0", 0.0), ("-1.5s", -1.5), (" 10s ", 10.0),
    ("100us", 1e-4), ("1000000ns", 1e-3), (".5h", 1800.0),
])
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "1d", "1h 30m", "1.2.3s", "abc", "1hm", "--1s", "1e3"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_duration(text)


def test_when_matches_with_re2_so_no_pattern_can_stall_the_controller() -> None:
    """Argo matches `=~` with Go's RE2 (linear time); so does podline. Backtracking-only syntax is therefore
    refused, and a pattern that makes a backtracking engine run for hours is answered at once."""
    with pytest.raises(ExpressionError, match="bad regular expression"):
        evaluate_when("aa =~ 'a(?=a)'")  # a lookahead: Python's re has it, RE2 (and Go) do not
    assert evaluate_when("'" + "a" * 60 + "b' =~ '^(a+)+$'") is False
