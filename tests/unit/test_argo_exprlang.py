"""`{{=…}}` expressions (podline.plan.argo_exprlang): expr-lang's operators and types, Argo's and sprig's
functions, Go's %v for results, names left for later, and bounds no expression can pass."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.plan.argo_depends import ExpressionError
from podline.plan.argo_exprlang import Unresolved, evaluate, render

SCOPE = {"inputs.parameters.n": "41", "inputs.parameters.my-list": "a,b,c", "steps.flip-coin.outputs.result": "heads",
         "item": '{"k":"v"}', "item.k": "v", "workflow.parameters.json": '{"a": {"b": [5, 6]}, "c": "x"}'}


@pytest.mark.parametrize(("expression", "expected"), [
    ("asInt(inputs.parameters.n) + 1", "42"),
    ("asFloat(inputs.parameters.n) / 2", "20.5"),
    ("7 / 2", "3.5"),  # `/` is always float division in expr
    ("6 / 2", "3"),  # and %v prints a whole float without a point
    ("-7 % 3", "-1"),  # Go's remainder takes the dividend's sign
    ("2 ** 10", "1024"),
    ("1e21", "1e+21"),
    ("0.00001", "1e-05"),
    ("0.5 + 0.25", "0.75"),
    ("inputs.parameters['my-list']", "a,b,c"),
    ("split(inputs.parameters['my-list'], ',')", "[a b c]"),
    ("steps['flip-coin'].outputs.result == 'heads' ? 'H' : 'T'", "H"),
    ("sprig.upper(steps['flip-coin'].outputs.result)", "HEADS"),
    ("sprig.trimPrefix('he', steps['flip-coin'].outputs.result)", "ads"),
    ("sprig.replace('a', 'o', 'banana')", "bonono"),
    ("sprig.add(1, '2', 3)", "6"),
    ("sprig.default('none', '')", "none"),
    ("jsonpath(workflow.parameters.json, '$.a.b[1]')", "6"),
    ("jsonpath(workflow.parameters.json, '$.c')", "x"),
    ("toJson(jsonpath(workflow.parameters.json, '$..b'))", "[[5,6]]"),
    ("toJson(map(1..3, {# * 2}))", "[2,4,6]"),
    ("toJson(filter([1, 2, 3, 4], # > 2))", "[3,4]"),
    ("all([2, 4], # % 2 == 0) and not any([2, 4], # > 9)", "true"),
    ("count(['a', 'bb', 'cc'], len(#) == 2)", "2"),
    ("item.k + '/' + toJson(item) + '/' + toJson(keys(item))", 'v/{"k":"v"}/["k"]'),  # a loop item that is a map
    ("'x' in ['x', 'y'] && 'k' in {'k': 1} && !(3 in [1, 2])", "true"),
    ("'banana' matches '^b.n' and 'banana' contains 'nan' and 'banana' startsWith 'ba'", "true"),
    ("{a: 1, 'b': [1, 2]}", "map[a:1 b:[1 2]]"),
    ("nope ?? 'fallback'", "fallback"),
    ("'p-' + nope ?? 'd'", "p-d"),  # ?? binds tightest, as in expr-lang
    ("asFloat('20') * 100000", "2e+06"),  # Go's %v: exponent form from 1e+06 on
    ("2 ** 20", "1.048576e+06"),
    ("123456.0", "123456"),
    ("'abc' not contains 'x' and 'abc' not startsWith 'b' and not ('a' not matches 'a')", "true"),
    ("toJson(map([{'name': 'a'}, {'name': 'b'}], .name))", '["a","b"]'),  # the `.field` shorthand of a predicate
    ("sum([1, 2.5]) + count([true, false, true])", "5.5"),
    ("round(-2.5) + round(2.5)", "0"),  # halves away from zero, as Go's math.Round: -3 + 3
    ("sprig.regexReplaceAll('(a+)(b)', 'xaab', '${2}$1$$')", "xbaa$"),
    ("len(sprig.uniq(1..99999))", "99999"),  # linear
    ("'quote \\' and \\\"' + `raw \\n`", "quote ' and \"raw \\n"),
    ("[1, 2, 3][1:]", "[2 3]"),
    ("0x1F + 1_000", "1031"),
    ("1 == 1.0 && '1' != 1", "true"),
])
def test_values(expression: str, expected: str) -> None:
    assert render(expression, SCOPE) == expected


@pytest.mark.parametrize(("expression", "name"), [
    ("steps.later.outputs.result", "steps.later"),
    ("tasks.a.outputs.result + 'x'", "tasks"),
    ("true ? missing : 1", "missing"),
])
def test_a_name_not_in_scope_is_unresolved(expression: str, name: str) -> None:
    with pytest.raises(Unresolved) as exc:
        render(expression, SCOPE)
    assert exc.value.name == name


@pytest.mark.parametrize(("expression", "problem"), [
    ("inputs.parameters.n + 1", "invalid operation: string + int"),
    ("1 +", "unexpected end"),
    ("1 2", "unexpected 2"),
    ("x.y()", "methods are not available"),
    ("__import__('os')", "unknown function __import__"),
    ("sprig.nope(1)", "unknown function sprig.nope"),
    ("repeat('ab', 10000000)", "a value larger than"),
    ("1..10000000", "a range of more than"),
    ("map(1..100000, map(1..100000, #))", "more than 200000 steps of evaluation"),
    ("2 ** 100000", "** overflows"),
    ("9223372036854775807 + 1", "integer overflow"),
    ("1 / 0", "division by zero"),
    ("(" * 70 + "1" + ")" * 70, "nesting deeper than 64"),
    ("'a' matches '('", "bad regular expression"),
    ("asInt('x1')", "'x1' is not an integer"),
    ("1 ? 2 : 3", "the condition of ?: is int"),
    ("[1][5]", "index 5 out of range"),
    ("filter(1, # > 0)", "filter needs a list"),
    ("sum(['a', 'b'], {#})", "sum needs numbers"),
    ("[1] in {'a': 1} ? 1 : {'a': 1}[[1]]", "cannot index map with array"),
    ("inputs[[1]]", "cannot index map with array"),
    ("sprig.regexMatch('(', 'a')", "regexMatch"),
    ("sprig.regexReplaceAll('', sprig.repeat(1000000, 'a'), sprig.repeat(1000, 'b'))", "a value larger than"),
    ("1" * 5000, "number literal too long"),
    ("99999999999999999999", "integer literal is too large"),
    ("0x_", "invalid number literal"),
    ("sprig.mul(" + ", ".join(["9223372036854775807"] * 3) + ")", "integer overflow"),
    ("+".join(["1"] * 3000), "more than 150 operations nested"),
    ("inputs" + ".a" * 400, "more than 150 operations nested"),
    ("toJson(fromJSON('" + "[" * 900 + "]" * 900 + "'))", "nested deeper than"),
    ("len(map(1..1000, {1..99999}))", "characters and items made"),
    ("sprig.until(1000000000)", "a value larger than"),
    ("jsonpath('[[[[1]]]]', '$........')", "'..' twice in a row"),
    ("int('1.5')", "'1.5' is not an integer"),
    ("asInt(' 7') + asInt('1_000')", "' 7' is not an integer"),
])
def test_errors_name_the_problem(expression: str, problem: str) -> None:
    with pytest.raises(ExpressionError) as exc:
        render(expression, SCOPE)
    assert problem in str(exc.value) and "\n" not in str(exc.value)


def test_nil_is_left_unresolved_and_values_keep_their_types() -> None:
    with pytest.raises(Unresolved):
        render("{'a': 1}.b", SCOPE)
    assert evaluate("asInt(inputs.parameters.n)", SCOPE) == 41
    assert evaluate("split('a b', ' ')", SCOPE) == ["a", "b"]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789.+-*/%^()[]{}<>=!&|?:,'\"`# abnotinx_$sprig")), max_size=40))
def test_any_text_gives_a_value_or_a_named_problem(text: str) -> None:
    """No input makes the interpreter raise anything but ExpressionError or Unresolved, or run unbounded."""
    try:
        render(text, SCOPE)
    except (ExpressionError, Unresolved):
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_string_value_passes_through_unchanged(value: str) -> None:
    """A parameter's text reaches the result as it is, whatever quotes or shell characters it holds."""
    assert render("inputs.parameters.v", {"inputs.parameters.v": value}) == value
    assert render("sprig.trim(inputs.parameters.v) == sprig.trim(inputs.parameters.v)",
                  {"inputs.parameters.v": value}) == "true"
