"""`when` with govaluate's full grammar (podline.plan.argo_when): arithmetic, `in`, ternaries, `??`, string
concatenation, bitwise operators, their precedence, short-circuiting and type checks, as Argo evaluates them.

Expected values follow govaluate's semantics (numbers are float64, `+` concatenates when a side is a
string, `c ? x : y` is `(c ? x) : y`); test_argo_expr.py keeps the comparison cases it had before.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.plan.argo_expr import ExpressionError, evaluate_when


@pytest.mark.parametrize(("expr", "expected"), [
    ("1 % 2 == 0", False),  # withItems [1,2,3,4] with `{{item}} % 2 == 0`: Argo runs 2 and 4
    ("4 % 2 == 0", True),
    ("-7 % 3 == -1", True),  # math.Mod: the sign of the dividend
    ("7.5 % 2 == 1.5", True),
    ("1 + 2 * 3 == 7", True),
    ("(1 + 2) * 3 == 9", True),
    ("10 - 4 - 3 == 3", True),  # left-associative
    ("8 / 4 / 2 == 1", True),
    ("2 ** 3 ** 2 == 64", True),  # govaluate reorders ** left to right too
    ("-2 ** 2 == 4", True),  # prefix minus binds tighter than **
    ("1 / 0 > 1000", True),  # +Inf, no error (float64)
    ("5-1 == 4", True),  # a substituted `{{item}}-1`
    ("0x1F == 31", True),
    ("6 & 3 == 2 && (6 | 3) == 7 && (6 ^ 3) == 5", True),
    ("1 << 4 == 16 && 256 >> 4 == 16 && ~0 == -1", True),
    ("'a' in ('a', 'b')", True),
    ("c in ('a', 'b')", False),
    ("2 in (1, 2, 3)", True),
    ("'2' in (1, 2, 3)", False),  # strict equality, as govaluate's ==
    ("1 > 0 ? true : false", True),
    ("1 < 0 ? true : false", False),  # (1 < 0 ? true) is nil, and nil : false is false
    ("false ? 1 < 'x' : true", True),  # the unused side is not evaluated
    ("1 == 1 ? 'yes' == 'yes' : false", True),
    ("(false ? 1) ?? true", True),
    ("'ab' == 'a' + 'b'", True),
    ("'n' + 1 == 'n1' && 'n' + 1.5 == 'n1.5' && 'x' + true == 'xtrue'", True),
    ("'a' + 'b' + 1 + 2 == 'ab12'", True),  # left to right: strings all the way
    ("1 + 2 + 'a' == '3a'", True),
    ("us-east-1 == 'us-east-1'", True),  # a bare word keeps its hyphens
    ("abc =~ '^a' && !(abc !~ 'b')", True),
    ("false && 1 < 'x'", False),  # && and || short-circuit as govaluate's do
    ("true || 'a' + 1 > 2", True),
    ("!false && 2 >= 2", True),
    ("a < b == true", True),  # (a < b) == true
])
def test_govaluate_semantics(expr: str, expected: bool) -> None:
    assert evaluate_when(expr) is expected


@pytest.mark.parametrize(("expr", "problem"), [
    ("1 + true == 2", "it is not a number"),
    ("'a' - 'b' == 1", "it is not a number"),
    ("1 in 1", "it is not a array"),
    ("1 ? true : false", "it is not a bool"),
    ("false ? true", "expected boolean evaluation"),  # nil
    ("1 + 2", "expected boolean evaluation"),
    ("1, 2", "expected boolean evaluation"),
    ("1==-1", "invalid token '==-'"),  # a run of operator characters is one symbol, as govaluate reads it
    ("1 <> 2", "invalid token '<>'"),
    ("!!true", "invalid token '!!'"),
    ("1 << 1 && true", "it is not a bool"),
    ("1 +", "unexpected end"),
    ("(" * 70 + "true" + ")" * 70, "nesting deeper than 64"),
    ("-" * 70 + "1 == 1", "invalid token"),
    ("- " * 70 + "1 == 1", "nesting deeper than 64"),
    ("'" + "x" * 11000 + "' == 'y'", "longer than"),
])
def test_govaluate_errors(expr: str, problem: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_when(expr)
    assert problem in str(caught.value) and "\n" not in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(a=st.integers(-50, 50), b=st.integers(1, 50), c=st.integers(-50, 50))
def test_arithmetic_agrees_with_python(a: int, b: int, c: int) -> None:
    assert evaluate_when(f"{a} + {b} * {c} - {a} / {b} == {a + b * c - a / b}") is True
    assert evaluate_when(f"({a} + {c}) * {b} > {c} ? true : false") is ((a + c) * b > c)


def test_a_long_chain_neither_recurses_nor_fails() -> None:
    assert evaluate_when(" + ".join(["1"] * 2000) + " == 2000") is True
