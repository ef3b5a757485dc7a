"""Shared CLI plumbing: the state handle, error exits (2 for bad input, 1 for failures), output, and
kubectl's label selector grammar (`-l`), parsed here rather than in `podline.api` so that `get` starts
without building the pydantic models."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from podline.api.names import CLUSTER_SCOPED, DNS1123_SUBDOMAIN, LABEL_VALUE, QUALIFIED_NAME, resolve_kind
from podline.controller import daemon
from podline.home import home, wake_controller
from podline.store import Obj, Store

if TYPE_CHECKING:
    from rich.console import Console


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@dataclass
class State:
    """Per-invocation handle: the home directory, the store (opened lazily), the chosen context."""

    context: str | None = None
    namespace: str = "default"
    namespace_given: bool = False  # -n on the command line: it then applies to manifests too (apply/delete -f)
    recursive: bool = False  # -R: -f directories with their subdirectories (kubectl's --recursive)
    _store: Store | None = field(default=None, repr=False)

    @property
    def manifest_namespace(self) -> str | None:
        """The namespace manifests read with -f go to when they name none (None: their own, or "default")."""
        return self.namespace if self.namespace_given else None

    @property
    def home(self) -> Path:
        return home()

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.home / "state.db")
        return self._store

    def check_context(self) -> str:
        """The context new work goes to (exit 2 when config.yaml is bad or the context does not exist)."""
        from podline.api.config import load_config
        from podline.api.errors import ManifestError

        try:
            cfg = load_config(self.home)
        except ManifestError as exc:
            fail(str(exc), 2)
        name = self.context or cfg.current_context
        ctx = cfg.contexts.get(name)
        if ctx is None:
            fail(f'context "{name}" does not exist (see podline config get-contexts)', 2)
        return name

    def ensure_controller(self) -> None:
        """`apply` and friends start the controller when it is not running, then nudge it."""
        try:
            daemon.start(self.home)
        except RuntimeError as exc:
            fail(str(exc))
        wake_controller(self.home)

    def namespace_of(self, kind: str) -> str:
        """The namespace `kind` is looked up in: -n's, or "" for a cluster-scoped kind."""
        return "" if kind in CLUSTER_SCOPED else self.namespace

    def find(self, kind: str, name: str) -> Obj:
        obj = self.store.get(kind, self.namespace_of(kind), name)
        if obj is None:
            fail(f'{kind.lower()}s "{name}" not found')
        return obj


pass_state = click.make_pass_decorator(State, ensure=True)


def kind_or_exit(text: str) -> str:
    try:
        return resolve_kind(text)
    except ValueError as exc:
        fail(str(exc), 2)


def split_ref(ref: str, name: str | None = None) -> tuple[str, str]:
    """`pod/x` or (`pod`, `x`) → ('Pod', 'x'); bad kinds exit 2."""
    if "/" in ref and name is None:
        kind, _, name = ref.partition("/")
        return kind_or_exit(kind), name
    if name is None:
        fail(f"expected KIND/NAME or KIND NAME, got {ref!r}", 2)
    return kind_or_exit(ref), name


def console(width: int) -> Console:
    """A rich console for tables, at least `width` columns wide: as kubectl's, a table is never cut to the
    terminal (a long event message runs on; cut, it took the other columns with it). rich is imported here,
    by the commands that print one (a twentieth of a second that `get -o json`, `apply` and `wait` need not
    pay)."""
    from rich.console import Console

    return Console(width=max(width, 80), soft_wrap=True)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, no_wrap=True)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))  # as written: `[x]` in a message is no rich markup
    widths = [max(cell_len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    out = console(sum(widths) + 2 * len(widths))
    with out.capture() as captured:
        out.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))  # no padding after the last cell


# --- label selectors (-l), as Kubernetes' labels.Parse reads them -----------------------------------------

SELECTOR_SPECIAL = re.compile(r"\s|[!=(),<>]")
SELECTOR_TOKEN = re.compile(r"!=|==|[!=(),<>]|[^\s!=(),<>]+")  # whitespace separates tokens, as in kubectl
INTEGER = re.compile(r"[-+]?[0-9]+")
OPERATORS = ("=", "==", "!=", "in", "notin", ">", "<")
END = ""  # the token after the last one


class SelectorError(ValueError):
    """A malformed selector, or one naming an invalid label key or value."""


@dataclass(frozen=True)
class Requirement:
    """One comma-separated part: `key`, `!key`, `key OP value` or `key in|notin (values)`."""

    key: str
    operator: str  # one of OPERATORS, "exists" or "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator in ("exists", "!"):
            return (self.key in labels) == (self.operator == "exists")
        if self.operator in ("!=", "notin"):  # true too when the label is absent, as in Kubernetes
            return labels.get(self.key) not in self.values
        if self.key not in labels:
            return False
        if self.operator in (">", "<"):
            return _compare(labels[self.key], self.operator, int(self.values[0]))
        return labels[self.key] in self.values

    def __str__(self) -> str:
        if self.operator in ("exists", "!"):
            return ("" if self.operator == "exists" else "!") + self.key
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"


@dataclass(frozen=True)
class Selector:
    """Requirements that must all hold (the empty selector selects everything)."""

    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _integer(text: str) -> int | None:
    """A base-10 int64, as Go's strconv.ParseInt reads it (no spaces, no underscores)."""
    if not INTEGER.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


def _compare(value: str, operator: str, bound: int) -> bool:
    number = _integer(value)
    if number is None:
        return False
    return number > bound if operator == ">" else number < bound


def _identifier(token: str) -> bool:
    return token != END and not SELECTOR_SPECIAL.match(token)


def check_selector_key(key: str) -> str:
    parts = key.split("/")
    name = parts[-1]
    if len(parts) > 2 or (len(parts) == 2 and (len(parts[0]) > 253 or not DNS1123_SUBDOMAIN.fullmatch(parts[0]))):
        raise SelectorError(f"invalid label key {key!r}: the prefix must be a DNS-1123 subdomain")
    if len(name) > 63 or not QUALIFIED_NAME.fullmatch(name):
        raise SelectorError(f"invalid label key {key!r}: must be a qualified name ([prefix/]name, name at most "
                            "63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)")
    return key


def _check_values(operator: str, values: list[str]) -> tuple[str, ...]:
    if operator in (">", "<"):
        if _integer(values[0]) is None:
            raise SelectorError(f"for '{operator}', the value must be an integer, got {values[0]!r}")
        return (values[0],)
    for value in values:
        if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            raise SelectorError(f"invalid label value {value!r}: at most 63 letters, digits, '-', '_' or '.', "
                                "starting and ending with a letter or digit")
    return tuple(sorted(set(values))) if operator in ("in", "notin") else tuple(values)


class _Parser:
    """A recursive-descent reading of kubectl's grammar over the tokens of one selector."""

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = SELECTOR_TOKEN.findall(text)
        self.position = 0

    def peek(self) -> str:
        return self.tokens[self.position] if self.position < len(self.tokens) else END

    def take(self) -> str:
        token = self.peek()
        self.position += 1
        return token

    def expected(self, token: str, what: str) -> SelectorError:
        shown = token if token.isprintable() else repr(token)[1:-1]  # the error stays one line
        return SelectorError(f"found '{shown or 'end of string'}', expected: {what}")

    def selector(self) -> Selector:
        if self.peek() == END:
            return Selector(())
        requirements = [self.requirement("!, identifier, or 'end of string'")]
        while (token := self.take()) != END:
            if token != ",":
                raise self.expected(token, "',' or 'end of string'")
            requirements.append(self.requirement("identifier after ','"))
        return Selector(tuple(requirements))

    def requirement(self, expected: str) -> Requirement:
        if not (_identifier(self.peek()) or self.peek() == "!"):
            raise self.expected(self.peek(), expected)
        negated = self.peek() == "!"
        if negated:
            self.take()
        key = self.take()
        if not _identifier(key):
            raise self.expected(key, "identifier")
        check_selector_key(key)
        if self.peek() in (END, ","):
            return Requirement(key, "!" if negated else "exists")
        if negated:
            raise self.expected(self.peek(), "',' or 'end of string'")
        operator = self.take()
        if operator not in OPERATORS:
            raise self.expected(operator, "'=', '==', '!=', 'in', 'notin', '>' or '<'")
        values = self.set_values() if operator in ("in", "notin") else [self.exact_value()]
        return Requirement(key, operator, _check_values(operator, values))

    def exact_value(self) -> str:
        if self.peek() in (END, ","):
            return ""  # `key=` selects the empty value
        token = self.take()
        if not _identifier(token):
            raise self.expected(token, "identifier")
        return token

    def set_values(self) -> list[str]:
        """`(a, b)`; an empty item (`()`, `(a,)`) is the empty value, as Kubernetes reads it."""
        if (token := self.take()) != "(":
            raise self.expected(token, "'('")
        values = [""]
        while (token := self.take()) != ")":
            if token == ",":
                values.append("")
            elif _identifier(token) and values[-1] == "":
                values[-1] = token
            else:
                raise self.expected(token, "',', ')' or identifier")
        return values


def parse_selector(text: str) -> Selector:
    """kubectl's label selector: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1`,
    `k<1`, joined by commas (all must hold); raise SelectorError when malformed."""
    return _Parser(text).selector()


def selector_or_exit(text: str) -> Selector:
    """The parsed -l selector, or exit 2 naming it and its problem."""
    try:
        return parse_selector(text)
    except SelectorError as exc:
        fail(f"-l {text!r}: {exc}", 2)


def set_namespace(state: State, value: str) -> None:
    """-n, before the verb or after it (kubectl takes both); an invalid namespace is exit 2."""
    from podline.api.base import check_dns_label

    try:
        state.namespace = check_dns_label(value, "namespace")
    except ValueError as exc:
        fail(f"-n: {exc}", 2)
    state.namespace_given = True


def _namespace_after_verb(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        set_namespace(ctx.ensure_object(State), value)


def _context_after_verb(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        state = ctx.ensure_object(State)
        state.context = value
        state.check_context()  # a mistyped one is exit 2, as before the verb


_namespace = click.option("-n", "--namespace", "namespace_", default=None, expose_value=False,
                          callback=_namespace_after_verb, help="Namespace (as -n before the verb).")
_context = click.option("--context", "context_", default=None, expose_value=False, callback=_context_after_verb,
                        help="Backend context (as --context before the verb).")


def namespace_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """-n and --context after the verb too, as kubectl takes its global flags anywhere."""
    return _namespace(_context(command))


def _recursive(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).recursive = True


recursive_option = click.option("-R", "--recursive", is_flag=True, expose_value=False, callback=_recursive,
                                help="Read -f directories with their subdirectories.")
