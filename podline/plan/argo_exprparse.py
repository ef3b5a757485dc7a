"""Parsing of `{{=…}}` expressions (expr-lang's syntax, as Argo evaluates them) into a tree of tuples.

Kept apart from the evaluator (podline.plan.argo_exprlang) so each stays one job: this module knows tokens,
precedence and nesting limits; the tree it returns names operations that the evaluator carries out.
Nodes: ("lit", v), ("var", name), ("get", base, key, optional), ("slice", base, low, high), ("list", items),
("map", pairs), ("un", op, x), ("bin", op, a, b), ("if", cond, yes, no), ("call", name, args), ("closure", body).
"""

from __future__ import annotations

import re
from typing import Any

from podline.plan.argo_depends import ExpressionError, quoted

MAX_EXPRESSION = 10_000  # characters
MAX_DEPTH = 64  # nesting of the parse
MAX_TREE = 150  # depth of the tree, chains included (`a + b + c …`): the evaluator recurses that deep
INT64 = 2**63

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.(?!\.)\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|0[xX][0-9a-fA-F_]+|\d[\d_]*)"
    r"|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`)"
    r"|(?P<name>[A-Za-z_$][\w$]*|#)"
    r"|(?P<op>\*\*|==|!=|<=|>=|&&|\|\||\.\.|\?\.|\?\?|[-+*/%^<>!()\[\]{},.:?]))",
    re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v"}
_BINARY = {  # operator: (precedence, right-associative)
    "??": (500, False), "or": (10, False), "||": (10, False), "and": (15, False), "&&": (15, False),
    "==": (20, False), "!=": (20, False), "<": (20, False), ">": (20, False), "<=": (20, False), ">=": (20, False),
    "in": (20, False), "not in": (20, False), "matches": (20, False), "contains": (20, False),
    "startsWith": (20, False), "endsWith": (20, False), "not contains": (20, False), "not matches": (20, False),
    "not startsWith": (20, False), "not endsWith": (20, False), "..": (25, False), "+": (30, False), "-": (30, False),
    "*": (60, False), "/": (60, False), "%": (60, False), "**": (100, True), "^": (100, True),
}
_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}

def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExpressionError(f"invalid token at {quoted(text[pos:].strip(), 20)} in expression {quoted(text)}")
        kind = match.lastgroup or "op"
        raw = match.group(kind)
        if kind == "num":
            clean = raw.replace("_", "")
            if len(clean) > 40:
                raise ExpressionError(f"number literal too long in expression {quoted(text)}")
            try:
                value: Any = int(clean, 16) if clean[:2].lower() == "0x" else (
                    float(clean) if any(c in clean for c in ".eE") else int(clean))
            except ValueError:  # `0x_`, `1e_`: what the token pattern lets through but is no number
                raise ExpressionError(f"invalid number literal {quoted(raw)} in expression {quoted(text)}") from None
            if isinstance(value, int) and not -INT64 <= value < INT64:
                raise ExpressionError(f"integer literal is too large in expression {quoted(text)}")
            out.append(("lit", value))
        elif kind == "str":
            body = raw[1:-1]
            if raw[0] != "`":
                body = re.sub(r"\\(u[0-9a-fA-F]{4}|.)", lambda m: chr(int(m.group(1)[1:], 16))
                              if len(m.group(1)) == 5 else _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.DOTALL)
            out.append(("lit", body))
        elif kind == "name" and raw in ("true", "false", "nil"):
            out.append(("lit", {"true": True, "false": False, "nil": None}[raw]))
        else:
            out.append((kind, raw))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_EXPRESSION:
            raise ExpressionError(f"expression longer than {MAX_EXPRESSION} characters")
        self.text, self.tokens, self.pos, self.depth = text, _tokens(text), 0, 0

    def fail(self, problem: str) -> ExpressionError:
        return ExpressionError(f"{problem} in expression {quoted(self.text)}")

    def peek(self, offset: int = 0) -> tuple[str, Any]:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else ("end", None)

    def take(self, value: str | None = None) -> tuple[str, Any]:
        token = self.peek()
        if value is not None and token[1] != value:
            raise self.fail(f"expected {value!r}, found {token[1]!r}" if token[0] != "end" else f"expected {value!r}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        tree = self.expression()
        if self.peek()[0] != "end":
            raise self.fail(f"unexpected {self.peek()[1]!r}")
        if _depth(tree) > MAX_TREE:
            raise self.fail(f"more than {MAX_TREE} operations nested")
        return tree

    def expression(self, floor: int = 0) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH}")
        left = self.unary()
        while True:
            op = self._operator()
            if op is None or _BINARY[op][0] < floor:
                break
            precedence, right_assoc = _BINARY[op]
            self.pos += 2 if op.startswith("not ") else 1
            left = ("bin", op, left, self.expression(precedence if right_assoc else precedence + 1))
        if floor == 0 and self.peek()[1] == "?":
            self.take("?")
            yes = self.expression()
            self.take(":")
            left = ("if", left, yes, self.expression())
        self.depth -= 1
        return left

    def _operator(self) -> str | None:
        kind, value = self.peek()
        if kind in ("op", "name") and value == "not" and f"not {self.peek(1)[1]}" in _BINARY:
            return f"not {self.peek(1)[1]}"
        return value if kind in ("op", "name") and value in _BINARY else None

    def unary(self) -> Any:
        kind, value = self.peek()
        if kind in ("op", "name") and value in _UNARY:
            self.take()
            return ("un", value, self.expression(_UNARY[value]))
        return self.postfix(self.primary())

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "lit":
            return ("lit", value)
        if kind == "name":
            if self.peek()[1] == "(":
                self.take()
                return ("call", value, self.arguments(")"))
            return ("var", value)
        if value == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if value == "[":
            return ("list", self.arguments("]"))
        if value == "{":
            return self.braces()
        if value == "." and self.peek()[0] == "name":  # `.name` in a predicate: a field of `#`
            return ("get", ("var", "#"), ("lit", self.take()[1]), False)
        raise self.fail(f"unexpected {value!r}" if kind != "end" else "unexpected end")

    def braces(self) -> Any:
        """`{k: v, …}` a map, or `{ expr }` a predicate (`filter(xs, {# > 1})`)."""
        if self.peek()[1] == "}":
            self.take()
            return ("map", [])
        first = self.expression()
        if self.peek()[1] != ":":
            self.take("}")
            return ("closure", first)
        pairs = []
        key = first
        while True:
            self.take(":")
            pairs.append((("lit", key[1]) if key[0] == "var" else key, self.expression()))
            if self.take()[1] == "}":
                return ("map", pairs)
            if self.peek()[1] == "}":
                self.take()
                return ("map", pairs)
            key = self.expression()

    def arguments(self, close: str) -> list[Any]:
        """The items up to `close`, after the opening bracket."""
        args: list[Any] = []
        while self.peek()[1] != close:
            args.append(self.expression())
            if self.peek()[1] != close:
                self.take(",")
        self.take(close)
        return args

    def postfix(self, node: Any) -> Any:
        while True:
            value = self.peek()[1]
            if value in (".", "?."):
                self.take()
                kind, name = self.take()
                if kind != "name":
                    raise self.fail(f"expected a name after {value!r}")
                if node == ("var", "sprig") and self.peek()[1] == "(":
                    self.take()
                    node = ("call", f"sprig.{name}", self.arguments(")"))
                elif self.peek()[1] == "(":
                    raise self.fail("methods are not available (call functions by name)")
                else:
                    node = ("get", node, ("lit", name), value == "?.")
            elif value == "[":
                self.take()
                if self.peek()[1] == ":" or self._slice_ahead():
                    low = None if self.peek()[1] == ":" else self.expression()
                    self.take(":")
                    high = None if self.peek()[1] == "]" else self.expression()
                    self.take("]")
                    node = ("slice", node, low, high)
                else:
                    index = self.expression()
                    self.take("]")
                    node = ("get", node, index, False)
            else:
                return node

    def _slice_ahead(self) -> bool:
        depth, i = 0, self.pos
        while i < len(self.tokens):
            value = self.tokens[i][1]
            if value in ("(", "[", "{"):
                depth += 1
            elif value in (")", "]", "}"):
                if depth == 0:
                    return False
                depth -= 1
            elif value == ":" and depth == 0:
                return True
            elif value == "?" and depth == 0:
                return False
            i += 1
        return False


def parse(text: str) -> Any:
    return _Parser(text).parse()


def _depth(tree: Any) -> int:
    """The depth of a parsed tree, counted without recursion (a chain of 3,000 `+` must not overflow here)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, tuple):
            stack.extend((child, level + 1) for child in node[1:] if isinstance(child, tuple | list))
        elif isinstance(node, list):
            stack.extend((child, level) for child in node if isinstance(child, tuple | list))
    return deepest
