"""Argo DAG `depends` / `dependencies` logic, its boolean-expression parser, and ExpressionError.

A DAG task starts once the tasks it depends on are complete and its expression over their results holds
("Enhanced Depends Logic" in Argo's docs).  The controller asks two questions of an expression: which
tasks does it name (to check the DAG and order it) and, given the tasks' phases so far, is it true yet.
ExpressionError lives here rather than in argo_expr.py only so the modules import without a cycle (`when`,
with govaluate's richer grammar, is argo_when.py); argo_expr re-exports everything the controller needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from podline.api.workflow_dag import TASK_RESULTS


class ExpressionError(ValueError):
    """A template expression Argo would reject: bad syntax, an unresolved reference, an unsupported form."""


def quoted(text: str, limit: int = 120) -> str:
    """`text` for a one-line message: quoted, newlines escaped, long text cut."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class Token(NamedTuple):
    kind: str  # "op" for operators and parentheses, else an atom kind the caller's tokenizer chose
    text: str


class BoolParser:
    """Recursive descent for `!a == b && c || (d)`, precedence ! > comparison > && > ||.

    or := and ('||' and)* ; and := cmp ('&&' cmp)* ; cmp := unary (OP unary)? ; unary := '!' unary | primary ;
    primary := '(' or ')' | term.  The caller turns a term token into a value (`term`) and, for `when`,
    names its comparison operators and applies them (`compare`).  Evaluation is eager: nothing is skipped
    by short-circuiting, so every error surfaces whatever the values.
    """

    def __init__(
        self,
        expr: str,
        tokens: list[Token],
        term: Callable[[BoolParser, Token], Any],
        compare: Callable[[BoolParser, str, Any, Any], bool] | None = None,
        operators: tuple[str, ...] = (),
    ) -> None:
        self.expr, self.tokens, self.pos = expr, tokens, 0
        self.term, self.compare, self.operators = term, compare, operators

    def fail(self, problem: str) -> ExpressionError:
        return ExpressionError(f"{problem} in expression {quoted(self.expr)}")

    def take(self) -> Token:
        if self.pos >= len(self.tokens):
            raise self.fail("unexpected end")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def accept(self, *ops: str) -> str | None:
        if self.pos < len(self.tokens) and self.tokens[self.pos].kind == "op" and self.tokens[self.pos].text in ops:
            self.pos += 1
            return self.tokens[self.pos - 1].text
        return None

    def parse(self) -> Any:
        if not self.tokens:
            raise ExpressionError(f"empty expression {quoted(self.expr)}")
        value = self.disjunction()
        if self.pos < len(self.tokens):
            raise self.fail(f"unexpected {self.tokens[self.pos].text!r}")
        return value

    def boolean(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(f"{getattr(value, 'text', value)!r} is not a boolean")
        return value

    def disjunction(self) -> Any:
        value = self.conjunction()
        while self.accept("||"):
            right = self.conjunction()
            value = self.boolean(value) | self.boolean(right)
        return value

    def conjunction(self) -> Any:
        value = self.comparison()
        while self.accept("&&"):
            right = self.comparison()
            value = self.boolean(value) & self.boolean(right)
        return value

    def comparison(self) -> Any:
        left = self.unary()
        op = self.accept(*self.operators)
        if op is None or self.compare is None:
            return left
        return self.compare(self, op, left, self.unary())

    def unary(self) -> Any:
        if self.accept("!"):
            return not self.boolean(self.unary())
        token = self.take()
        if token.kind != "op":
            return self.term(self, token)
        if token.text != "(":
            raise self.fail(f"unexpected {token.text!r}")
        value = self.disjunction()
        if not self.accept(")"):
            raise self.fail("missing ')'")
        return value


# ---------------------------------------------------------------------------------------------------- depends

_DEPENDS_TOKEN = re.compile(r"\s*(?:(?P<op>&&|\|\||[!()])|(?P<ref>[a-zA-Z0-9][-a-zA-Z0-9_]*(?:\.\w+)?))")
RESULTS = TASK_RESULTS  # the names validation accepts (`api.workflow_dag`), evaluated here
COMPLETE = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})


class TaskResult(NamedTuple):
    """A task's phase: Succeeded, Failed, Error, Skipped, Omitted, Running or Pending."""

    phase: str


def _depends_tokens(expr: str) -> list[Token]:
    tokens, pos, end = [], 0, len(expr.rstrip())
    while pos < end:
        match = _DEPENDS_TOKEN.match(expr, pos)
        if match is None:
            raise ExpressionError(f"invalid token at {quoted(expr[pos:].strip(), 20)} in depends {quoted(expr)}")
        kind = match.lastgroup or "op"
        tokens.append(Token(kind, match.group(kind)))
        pos = match.end()
    return tokens


def _parse_depends(expr: str, resolve: Callable[[str, str], bool]) -> bool:
    """Parse `expr`, calling resolve(task, result) for every reference ("" for a bare name), in order."""

    def term(parser: BoolParser, token: Token) -> bool:
        name, _, result = token.text.partition(".")
        if "." in token.text and result not in RESULTS:
            raise parser.fail(f"unknown task result {result!r} (one of {', '.join(RESULTS)})")
        return resolve(name, result)

    return BoolParser(expr, _depends_tokens(expr), term).parse()


def depends_names(expr: str) -> list[str]:
    """The task names `expr` refers to, in order of first mention; ExpressionError for bad syntax."""
    names: dict[str, None] = {}
    if expr.strip():
        _parse_depends(expr, lambda name, _result: bool(names.setdefault(name)))
    return list(names)


def depends_from_dependencies(names: list[str]) -> str:
    """The `depends` expression equal to a `dependencies` list: "A && B && C" ("" for none)."""
    return " && ".join(names)


def _children(value: str | list[str] | TaskResult) -> list[str]:
    if isinstance(value, TaskResult):
        return [value.phase]
    return [value] if isinstance(value, str) else list(value)


def task_phase(value: str | list[str] | TaskResult) -> str:
    """A task's phase; for an expanded task (a list of its children's) that of the group node: Succeeded
    when every item succeeded or was skipped, else Failed."""
    if isinstance(value, TaskResult):
        return value.phase
    if isinstance(value, str):
        return value
    return "Succeeded" if all(phase in ("Succeeded", "Skipped") for phase in value) else "Failed"


def _holds(value: str | list[str] | TaskResult, result: str) -> bool:
    phase, children = task_phase(value), _children(value)
    if result == "AnySucceeded":
        return "Succeeded" in children
    if result == "AllFailed":
        return bool(children) and all(child in ("Failed", "Error") for child in children)
    if result == "":  # a bare name: A.Succeeded || A.Skipped || A.Daemoned
        return phase in ("Succeeded", "Skipped")
    return phase == {"Errored": "Error", "Daemoned": ""}.get(result, result)  # no daemons in podline


def evaluate_depends(expr: str, results: Mapping[str, str | list[str] | TaskResult]) -> bool | None:
    """Whether a task with this `depends` may start: None while a task it names is not complete yet.

    `results[name]` is a task's phase (a str or TaskResult) or, for a task expanded by withItems, withParam
    or withSequence, the list of its children's phases.  Complete means Succeeded, Failed, Error, Skipped or
    Omitted (for a list: every child; an empty list is complete).  A bare `A` is A.Succeeded || A.Skipped ||
    A.Daemoned; A.Errored is phase Error; Daemoned is always false.  For a list, A.AnySucceeded: some child
    Succeeded; A.AllFailed: at least one child and all Failed or Error; A.Succeeded / A.Failed / ... test the
    group node's phase, taken as Succeeded when every child Succeeded or was Skipped and Failed otherwise.
    A task missing from `results` counts as not complete.  An empty expression is True.
    """
    if not expr.strip():
        return True
    for name in depends_names(expr):
        if name not in results or not all(phase in COMPLETE for phase in _children(results[name])):
            return None
    return _parse_depends(expr, lambda name, result: _holds(results[name], result))
