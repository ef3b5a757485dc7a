"""A step's or task's `when`, evaluated with govaluate's grammar and type rules, as Argo evaluates it.

Argo hands `when` (after `{{...}}` substitution) to govaluate, turning every bare word into a string, and
runs the step only if the result is the boolean true.  Workflows rely on more than comparisons: `{{item}} % 2
== 0`, `'{{x}}' in ('a', 'b')`, `a == b ? true : false`, `'ab' == 'a' + 'b'`.  So this module implements
govaluate's operators with its precedence, left associativity, short-circuiting and type checks, in a parse
to a small tree and an evaluation of it, bounded so a hostile expression can neither recurse nor stall.
"""

from __future__ import annotations

import math
import re
from typing import Any

import re2

from podline.plan.argo_depends import ExpressionError, quoted
from podline.plan.argo_exprfuncs import go_string

MAX_WHEN = 10_000  # characters
MAX_NESTING = 64  # parentheses and prefix operators inside each other
MASK64 = (1 << 64) - 1

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<num>(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?|\.\d+)(?![\w.]))"
    r"|(?P<word>(?:[^\W\d]|\.)[\w.\-]*|\d[\w.]*)"  # a bare word, a string to Argo: us-east-1, v1.2.3, 1.2.3
    r"|(?P<op>[=!<>~&|+\-*/^%:?]+)"  # govaluate reads a run of operator characters as one symbol
    r"|(?P<punct>[(),]))",
    re.DOTALL,
)
# Precedence levels from the loosest; each level is a left-associative chain (govaluate's reorderStages).
LEVELS: tuple[frozenset[str], ...] = (
    frozenset({","}),
    frozenset({"?", ":", "??"}),
    frozenset({"||"}),
    frozenset({"&&"}),
    frozenset({"==", "!=", "<", ">", "<=", ">=", "=~", "!~", "in"}),
    frozenset({"&", "|", "^"}),
    frozenset({"<<", ">>"}),
    frozenset({"+", "-"}),
    frozenset({"*", "/", "%"}),
    frozenset({"**"}),
)
PREFIX = frozenset({"-", "!", "~"})
SYMBOLS = frozenset().union(*LEVELS, PREFIX)

Node = tuple[Any, ...]  # ("lit", value) | ("un", op, node) | ("chain", node, ((op, node), ...))


def _tokens(expr: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos, end = 0, len(expr.rstrip())
    while pos < end:
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise ExpressionError(f"invalid token at {quoted(expr[pos:].strip(), 20)} in expression {quoted(expr)}")
        kind = match.lastgroup or "op"
        text = match.group(kind)
        if kind == "str":
            out.append(("lit", re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)))
        elif kind == "num":
            out.append(("lit", float(int(text, 16)) if text[:2].lower() == "0x" else float(text)))
        elif kind == "word" and text in ("true", "false"):
            out.append(("lit", text == "true"))
        elif kind == "word" and text in ("in", "IN"):
            out.append(("op", "in"))
        elif kind == "word":
            out.append(("lit", text))  # Argo turns govaluate's variables into strings
        elif kind == "op" and text not in SYMBOLS:
            raise ExpressionError(f"invalid token {text!r} in expression {quoted(expr)}")
        else:
            out.append(("op", text))
        pos = match.end()
    return out


class _Parser:
    """Recursive descent over LEVELS, then prefix operators, then a literal or `( ... )`."""

    def __init__(self, expr: str) -> None:
        self.expr, self.tokens, self.pos, self.depth = expr, _tokens(expr), 0, 0

    def fail(self, problem: str) -> ExpressionError:
        return ExpressionError(f"{problem} in expression {quoted(self.expr)}")

    def accept(self, ops: frozenset[str]) -> str | None:
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "op" and self.tokens[self.pos][1] in ops:
            self.pos += 1
            return str(self.tokens[self.pos - 1][1])
        return None

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError(f"empty expression {quoted(self.expr)}")
        node = self.level(0)
        if self.pos < len(self.tokens):
            raise self.fail(f"unexpected {go_string(self.tokens[self.pos][1])!r}")
        return node

    def level(self, index: int) -> Node:
        if index == len(LEVELS):
            return self.unary()
        first, rest = self.level(index + 1), []
        while (op := self.accept(LEVELS[index])) is not None:
            rest.append((op, self.level(index + 1)))
        return ("chain", first, tuple(rest)) if rest else first

    def unary(self) -> Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"nesting deeper than {MAX_NESTING}")
        try:
            op = self.accept(PREFIX)
            if op is not None:
                return ("un", op, self.unary())
            if self.pos >= len(self.tokens):
                raise self.fail("unexpected end")
            kind, value = self.tokens[self.pos]
            self.pos += 1
            if kind == "lit":
                return ("lit", value)
            if value != "(":
                raise self.fail(f"unexpected {value!r}")
            node = self.level(0)
            if self.accept(frozenset({")"})) is None:
                raise self.fail("missing ')'")
            return node
        finally:
            self.depth -= 1


# ------------------------------------------------------------------------------------------------- evaluation


def _kind(value: Any) -> str:
    return {bool: "bool", float: "number", str: "string", list: "array"}.get(type(value), "nil")


def _equal(a: Any, b: Any) -> bool:
    """Go's reflect.DeepEqual on govaluate's values: never equal across types (a number is no string)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _int64(value: float) -> int:
    """Go's int64(float64): truncated toward zero (wrapped, where Go leaves it to the platform)."""
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    wrapped = int(value) & MASK64
    return wrapped - (1 << 64) if wrapped >> 63 else wrapped


def _divide(a: float, b: float) -> float:
    if b != 0:
        return a / b
    return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1, b)


def _power(a: float, b: float) -> float:
    """math.Pow: Inf or NaN where Python's would raise."""
    try:
        return math.pow(a, b)
    except OverflowError:
        return -math.inf if a < 0 and b == int(b) and int(b) % 2 else math.inf
    except ValueError:
        return math.inf if a == 0 else math.nan


_ARITHMETIC = {
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _divide,
    "%": lambda a, b: math.fmod(a, b) if b != 0 and math.isfinite(a) else math.nan,
    "**": _power,
    "&": lambda a, b: float(_int64(a) & _int64(b)),
    "|": lambda a, b: float(_int64(a) | _int64(b)),
    "^": lambda a, b: float(_int64(a) ^ _int64(b)),
    "<<": lambda a, b: float(0 if _int64(b) & MASK64 >= 64 else (_int64(a) << (_int64(b) & MASK64)) & MASK64),
    ">>": lambda a, b: float(0 if _int64(b) & MASK64 >= 64 else (_int64(a) & MASK64) >> (_int64(b) & MASK64)),
}
_ORDER = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


class _Evaluator:
    def __init__(self, expr: str) -> None:
        self.expr = expr

    def fail(self, problem: str) -> ExpressionError:
        return ExpressionError(f"{problem} in expression {quoted(self.expr)}")

    def need(self, op: str, value: Any, kind: str) -> None:
        if _kind(value) != kind:
            raise self.fail(f"value {go_string(value)!r} cannot be used with {op!r}: it is not a {kind}")

    def value(self, node: Node) -> Any:
        if node[0] == "lit":
            return node[1]
        if node[0] == "un":
            return self.prefix(node[1], self.value(node[2]))
        left = self.value(node[1])
        for op, right in node[2]:
            left = self.binary(op, left, right)
        return left

    def prefix(self, op: str, value: Any) -> Any:
        self.need(op, value, "bool" if op == "!" else "number")
        if op == "!":
            return not value
        return -value if op == "-" else float(~_int64(value))

    def binary(self, op: str, left: Any, node: Node) -> Any:
        """`left op right`, evaluating `right` only when govaluate would (&&, ||, ?, :, ?? short-circuit)."""
        if (op == "&&" and left is False) or (op == "||" and left is True):
            return left
        if op in (":", "??"):
            return left if left is not None else self.value(node)
        if op == "?":
            if left is False:
                return None
            right = self.value(node)
            self.need(op, left, "bool")
            return right
        right = self.value(node)
        if op in ("&&", "||"):
            self.need(op, left, "bool")
            self.need(op, right, "bool")
            return right
        if op == ",":
            return [*left, right] if isinstance(left, list) else [left, right]
        if op in ("==", "!="):
            return _equal(left, right) == (op == "==")
        if op == "in":
            self.need(op, right, "array")
            return any(_equal(left, item) for item in right)
        if op in ("=~", "!~"):
            return self.match(op, left, right)
        if op in _ORDER:
            if {_kind(left), _kind(right)} not in ({"number"}, {"string"}):
                raise self.fail(f"{op!r} compares two numbers or two strings, not {go_string(left)!r} "
                                f"({_kind(left)}) and {go_string(right)!r} ({_kind(right)})")
            return _ORDER[op](left, right)
        if op == "+" and "string" in (_kind(left), _kind(right)):
            return go_string(left) + go_string(right)  # fmt's %v%v, as govaluate concatenates
        self.need(op, left, "number")
        self.need(op, right, "number")
        if op == "+":
            return left + right
        try:
            return _ARITHMETIC[op](left, right)
        except (ValueError, OverflowError) as exc:
            raise self.fail(f"{go_string(left)} {op} {go_string(right)} cannot be computed ({exc})") from None

    def match(self, op: str, left: Any, right: Any) -> bool:
        self.need(op, left, "string")
        self.need(op, right, "string")
        try:  # RE2 (linear time, as Argo's Go regexp): a hostile pattern cannot stall the controller
            found = re2.search(right, left) is not None
        except re2.error as error:
            raise self.fail(f"bad regular expression {right!r} ({error})") from None
        return found == (op == "=~")


def evaluate_when(expr: str) -> bool:
    """A step's or task's `when` (already substituted), with govaluate's rules as Argo uses them.

    Terms: numbers (float64, also 0x hex), 'single' or "double" quoted strings, true/false, and bare words,
    which are strings (Argo's coinflip: `heads == heads`; podline also keeps `us-east-1` and `v1.2.3` one word).
    Operators, loosest first, each level left-associative: `,` (makes an array, for `in`); `? : ??` (`c ? x :
    y` is `(c ? x) : y`: `c ? x` is nil when c is false, `v : y` and `v ?? y` are y when v is nil); `||`;
    `&&`; `== != < > <= >= =~ !~ in`; `& | ^`; `<< >>`; `+ -`; `* / %`; `**`; then prefix `- ! ~`.
    Types as govaluate checks them: `==` / `!=` are reflect.DeepEqual (`'5' == 5` is false); `<`… compare two
    numbers or two strings; `+` adds numbers or, when either side is a string, concatenates their `%v`;
    other arithmetic needs numbers (`%` is math.Mod; `/ 0` is ±Inf); `&& || !` need booleans and `&&`, `||`,
    `?`, `:`, `??` do not evaluate a right side they do not need; `=~` / `!~` need two strings and search
    the right side's RE2 pattern in the left.  A run of operator characters is one symbol, as govaluate reads
    it (`1==-1` is an invalid token).  The result must be a boolean; anything else is an ExpressionError.
    """
    if len(expr) > MAX_WHEN:
        raise ExpressionError(f"expression longer than {MAX_WHEN} characters: {quoted(expr)}")
    result = _Evaluator(expr).value(_Parser(expr).parse())
    if not isinstance(result, bool):
        raise ExpressionError(f"expected boolean evaluation for {quoted(expr)}, got {go_string(result)!r}")
    return result


def check_when_syntax(expr: str) -> None:
    """Parse `expr` without evaluating it (apply's check of a `when`, its `{{…}}` already replaced by stand-ins):
    ExpressionError if govaluate's grammar would refuse it."""
    if len(expr) > MAX_WHEN:
        raise ExpressionError(f"expression longer than {MAX_WHEN} characters: {quoted(expr)}")
    _Parser(expr).parse()
