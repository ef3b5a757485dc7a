"""Argo's `{{=…}}` expressions: an interpreter for the part of expr-lang (github.com/expr-lang/expr) that
workflows use, with Argo's functions (`asInt`, `asFloat`, `jsonpath`, `toJson`) and sprig's under `sprig.`.

Argo evaluates `{{=EXPR}}` with the template's scope as the environment: the dotted names become nested
maps (`inputs.parameters.x` is `inputs.parameters['x']`), every value is a string, and the result is written
with Go's `%v` (`3`, `2.5`, `true`). A name not in scope yet (a step that has not run) leaves the expression
for a later pass, as Argo's "allow unresolved" does; `Unresolved` tells the caller so.

An interpreter of our own rather than Python's eval: an expression reaches only values of the scope and
these functions, never an object's attributes, and its cost is bounded (length, nesting, sizes of strings,
lists and numbers), so a hostile manifest cannot run code or stall the controller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import re2

from podline.plan.argo_depends import ExpressionError, quoted
from podline.plan.argo_exprfuncs import FUNCTIONS, SPRIG, check_size, go_string
from podline.plan.argo_exprparse import parse

MAX_RANGE = 100_000
MAX_STEPS = 200_000  # evaluations of one expression: predicates over lists multiply, so the total is bounded
MAX_WORK = 4_000_000  # characters and items of all strings and lists one expression makes
CLOSURES = ("all", "none", "any", "one", "filter", "map", "count", "find", "findIndex", "sum")


class Unresolved(Exception):
    """A name the scope does not hold (yet); `name` is its dotted path."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Scope(dict[str, Any]):
    """A level of the environment made from dotted names: a missing key is an unresolved name."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


def environment(scope: Mapping[str, str]) -> Scope:
    """Nested maps from dotted names. A name that is also a prefix of others (`item` beside `item.k` in a loop
    over maps) is the map, as Argo drops the conflicting text."""
    root = Scope("")
    for key, value in scope.items():
        if key.startswith("="):
            continue
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, Scope):
                child = node[part] = Scope(f"{node.path}{part}.")
            node = child
        if not isinstance(node.get(parts[-1]), Scope):
            node[parts[-1]] = value
    return root


# --- evaluation ----------------------------------------------------------------------------------------------

def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "array", type(None): "nil"}.get(
        type(value), "map")


class _Evaluator:
    def __init__(self, text: str, env: Scope) -> None:
        self.text, self.env = text, env
        self.pointer: list[Any] = []  # `#` of the innermost predicate
        self.steps = 0
        self.work = 0

    def fail(self, problem: str) -> ExpressionError:
        return ExpressionError(f"{problem} in expression {quoted(self.text)}")

    def value(self, node: Any) -> Any:
        result = self.eval(node)
        if isinstance(result, str | list) and len(result) > 64:  # what it made counts against MAX_WORK
            self.work += len(result)
            if self.work > MAX_WORK:
                raise self.fail(f"more than {MAX_WORK} characters and items made")
        return result

    def eval(self, node: Any) -> Any:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.fail(f"more than {MAX_STEPS} steps of evaluation")
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "var":
            if node[1] == "#":
                if not self.pointer:
                    raise self.fail("# outside a predicate")
                return self.pointer[-1]
            if node[1] not in self.env:
                raise Unresolved(node[1])
            return self.env[node[1]]
        if kind == "get":
            return self.member(node)
        if kind == "slice":
            return self.slice(node)
        if kind == "list":
            return check_size([self.value(item) for item in node[1]])
        if kind == "map":
            return {str(self.value(k)): self.value(v) for k, v in node[1]}
        if kind == "un":
            return self.unary(node[1], self.value(node[2]))
        if kind == "bin":
            return self.binary(node[1], node[2], node[3])
        if kind == "if":
            condition = self.value(node[1])
            if not isinstance(condition, bool):
                raise self.fail(f"the condition of ?: is {_type(condition)}, not bool")
            return self.value(node[2] if condition else node[3])
        if kind == "call":
            return self.call(node[1], node[2])
        raise self.fail("a predicate {…} outside a function that takes one")

    def member(self, node: Any) -> Any:
        base = self.eval(node[1])
        if base is None and node[3]:
            return None
        key = self.value(node[2])
        if not isinstance(key, str | int | float | bool):
            raise self.fail(f"cannot index {_type(base)} with {_type(key)}")
        if isinstance(base, Scope):
            if key not in base:
                raise Unresolved(f"{base.path}{key}")
            return base[key]
        if isinstance(base, dict):
            return base.get(key)
        if isinstance(base, list | str) and isinstance(key, int) and not isinstance(key, bool):
            if not -len(base) <= key < len(base):
                raise self.fail(f"index {key} out of range (length {len(base)})")
            return base[key]
        raise self.fail(f"cannot index {_type(base)} with {_type(key)}")

    def slice(self, node: Any) -> Any:
        base = self.value(node[1])
        bounds = [None if n is None else self.value(n) for n in node[2:]]
        if not isinstance(base, list | str) or not all(b is None or isinstance(b, int) for b in bounds):
            raise self.fail(f"cannot slice {_type(base)}")
        return base[bounds[0]:bounds[1]]

    def unary(self, op: str, value: Any) -> Any:
        if op in ("not", "!"):
            if not isinstance(value, bool):
                raise self.fail(f"invalid operation: {op} {_type(value)}")
            return not value
        if not _number(value):
            raise self.fail(f"invalid operation: {op} {_type(value)}")
        return -value if op == "-" else value

    def binary(self, op: str, left_node: Any, right_node: Any) -> Any:
        if op in ("and", "&&", "or", "||"):
            left = self.value(left_node)
            if not isinstance(left, bool):
                raise self.fail(f"invalid operation: {_type(left)} {op} …")
            if left == (op in ("or", "||")):
                return left
            right = self.value(right_node)
            if not isinstance(right, bool):
                raise self.fail(f"invalid operation: bool {op} {_type(right)}")
            return right
        if op == "??":
            try:
                left = self.value(left_node)
            except Unresolved:
                left = None
            return self.value(right_node) if left is None else left
        left, right = self.value(left_node), self.value(right_node)
        return self.operate(op, left, right)

    def operate(self, op: str, left: Any, right: Any) -> Any:
        if op in ("==", "!="):
            same = left == right if (_number(left) and _number(right)) or type(left) is type(right) else False
            return same == (op == "==")
        if op in ("in", "not in"):
            if isinstance(right, dict):
                found = isinstance(left, str | int | float | bool) and left in right
            elif isinstance(right, list):
                found = any(self.operate("==", left, item) for item in right)
            else:
                raise self.fail(f"invalid operation: {_type(left)} {op} {_type(right)}")
            return found == (op == "in")
        if op.startswith("not "):
            return not self.operate(op[4:], left, right)
        if op in ("matches", "contains", "startsWith", "endsWith"):
            if not isinstance(left, str) or not isinstance(right, str):
                raise self.fail(f"invalid operation: {_type(left)} {op} {_type(right)}")
            if op == "matches":
                try:  # RE2: linear time, as Go's regexp
                    return re2.search(right, left) is not None
                except re2.error as error:
                    raise self.fail(f"bad regular expression {right!r} ({error})") from None
            return {"contains": right in left, "startsWith": left.startswith(right),
                    "endsWith": left.endswith(right)}[op]
        if op in ("<", ">", "<=", ">="):
            if not ((_number(left) and _number(right)) or (isinstance(left, str) and isinstance(right, str))):
                raise self.fail(f"invalid operation: {_type(left)} {op} {_type(right)}")
            return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]
        if op == "..":
            if not (isinstance(left, int) and isinstance(right, int)) or isinstance(left, bool) or \
                    isinstance(right, bool):
                raise self.fail(f"invalid operation: {_type(left)} .. {_type(right)}")
            if right - left >= MAX_RANGE:
                raise self.fail(f"a range of more than {MAX_RANGE} numbers")
            return list(range(left, right + 1))
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            return check_size(left + right)
        if op == "+" and isinstance(left, list) and isinstance(right, list):
            return check_size(left + right)
        if not (_number(left) and _number(right)):
            raise self.fail(f"invalid operation: {_type(left)} {op} {_type(right)}")
        return self.arithmetic(op, left, right)

    def arithmetic(self, op: str, left: int | float, right: int | float) -> int | float:
        try:
            if op == "/":
                result: int | float = left / right
            elif op == "%":
                if not (isinstance(left, int) and isinstance(right, int)):
                    raise self.fail("invalid operation: % needs two integers")
                result = int(math.fmod(left, right))  # Go's sign rule: the result takes the dividend's sign
            elif op in ("**", "^"):
                result = math.pow(left, right)
            else:
                result = {"+": left + right, "-": left - right, "*": left * right}[op]
        except ZeroDivisionError:
            raise self.fail("division by zero") from None
        except (OverflowError, ValueError):
            raise self.fail(f"{op} overflows") from None
        if isinstance(result, int) and not -(2**63) <= result < 2**63:
            raise self.fail(f"integer overflow in {op}")
        if isinstance(result, float) and not math.isfinite(result):
            raise self.fail(f"{op} gives a number out of range")
        return result

    def call(self, name: str, args: list[Any]) -> Any:
        if name in CLOSURES:
            return self.closure(name, args)
        function: Callable[..., Any] | None = (SPRIG.get(name[6:]) if name.startswith("sprig.")
                                               else FUNCTIONS.get(name))
        if function is None:
            raise self.fail(f"unknown function {name}")
        values = [self.value(arg) for arg in args]
        try:
            result = function(*values)
        except ExpressionError as exc:
            raise self.fail(f"{name}: {exc}") from None
        except (TypeError, ValueError, KeyError, IndexError, OverflowError, ZeroDivisionError, re2.error) as exc:
            raise self.fail(f"{name}({', '.join(_type(v) for v in values)}): {exc}") from None
        if isinstance(result, int) and not isinstance(result, bool) and not -(2**63) <= result < 2**63:
            raise self.fail(f"{name}: integer overflow")
        return result

    def closure(self, name: str, args: list[Any]) -> Any:
        if len(args) == 1 and name in ("sum", "count"):  # without a predicate: the items themselves
            args = [args[0], ("var", "#")]
        if len(args) != 2:
            raise self.fail(f"{name} takes a list and a predicate")
        items = self.value(args[0])
        if not isinstance(items, list):
            raise self.fail(f"{name} needs a list, not {_type(items)}")
        body = args[1][1] if args[1][0] == "closure" else args[1]
        results = []
        for item in items:
            self.pointer.append(item)
            try:
                results.append(self.value(body))
            finally:
                self.pointer.pop()
        if name == "map":
            return results
        if name == "sum":
            if not all(_number(r) for r in results):
                raise self.fail("sum needs numbers")
            return self.arithmetic("+", sum(results), 0)
        if not all(isinstance(r, bool) for r in results):
            raise self.fail(f"the predicate of {name} must give bool")
        hits = [item for item, keep in zip(items, results, strict=True) if keep]
        index = next((i for i, keep in enumerate(results) if keep), -1)
        return {"all": all(results), "none": not any(results), "any": any(results), "one": len(hits) == 1,
                "filter": hits, "count": len(hits), "find": hits[0] if hits else None, "findIndex": index}[name]


def evaluate(text: str, scope: Mapping[str, str]) -> Any:
    """The value of the expression `text` (without `{{=` and `}}`) in `scope`; Unresolved if it names
    something the scope lacks, ExpressionError if it does not parse or cannot be computed."""
    tree = parse(text)
    return _Evaluator(text, environment(scope)).value(tree)


def render(text: str, scope: Mapping[str, str]) -> str:
    """`{{=text}}` as Argo writes it into the template: the value with Go's %v; nil is unresolved."""
    value = evaluate(text, scope)
    if value is None:
        raise Unresolved(text)
    return go_string(value)


__all__ = ["Unresolved", "evaluate", "render"]
