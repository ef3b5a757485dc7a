"""`-l` label selectors read as kubectl reads them (labels.Parse): the grammar, its errors, and `get -l`.

The property tests render random selectors the way a user may write them (spacing included), and check the
parse against the intended requirements, its printed form against a re-parse, and selection against a
reference reading of Kubernetes' semantics (`!=` and `notin` also select objects without the label)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.cli.common import Requirement, Selector, SelectorError, State, parse_selector
from podline.cli.main import cli
from podline.store import Store

KEYS = ["app", "tier", "example.com/role", "in", "a.b_c-D9"]
VALUES = ["", "t1", "t2", "x-y", "A.b_c", "7", "42"]
NUMBERS = ["0", "7", "42", "-3", "+5", "x", "1_0", " 7"]  # label values a `>`/`<` requirement meets
SPACE = st.sampled_from(["", " ", "  ", "\t"])


def reference(req: tuple[str, str, list[str]], labels: dict[str, str]) -> bool:
    """Kubernetes' Requirement.Matches, written out plainly."""
    key, op, values = req
    has, value = key in labels, labels.get(key)
    if op in ("=", "==", "in"):
        return has and value in values
    if op in ("!=", "notin"):
        return not has or value not in values
    if op in ("exists", "!"):
        return has == (op == "exists")
    if not has or not re.fullmatch(r"[-+]?[0-9]+", value or ""):
        return False
    return int(value or 0) > int(values[0]) if op == ">" else int(value or 0) < int(values[0])


@st.composite
def requirements(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    key = draw(st.sampled_from(KEYS))
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!", ">", "<"]))
    if op in ("in", "notin"):
        return key, op, draw(st.lists(st.sampled_from(VALUES), min_size=1, max_size=3))
    if op in (">", "<"):
        return key, op, [str(draw(st.integers(-50, 50)))]
    return key, op, [] if op in ("exists", "!") else [draw(st.sampled_from(VALUES))]


@st.composite
def written(draw: st.DrawFn) -> tuple[str, list[tuple[str, str, list[str]]]]:
    """A selector as text (random spacing where kubectl allows it) and the requirements it stands for."""
    reqs = draw(st.lists(requirements(), min_size=1, max_size=4))
    parts = []
    for key, op, values in reqs:
        a, b, c, d = (draw(SPACE) for _ in range(4))
        if op == "exists":
            parts.append(f"{a}{key}{b}")
        elif op == "!":
            parts.append(f"{a}!{b}{key}{c}")
        elif op in ("in", "notin"):
            inner = f"{c},{d}".join(values)
            parts.append(f"{a}{key} {op}{b}({c}{inner}{d}){a}")
        else:
            parts.append(f"{a}{key}{b}{op}{c}{values[0]}{d}")
    return ",".join(parts), reqs


def expected(reqs: list[tuple[str, str, list[str]]]) -> Selector:
    return Selector(tuple(Requirement(k, op, tuple(sorted(set(v))) if op in ("in", "notin") else tuple(v))
                          for k, op, v in reqs))


LABELS = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES + NUMBERS), max_size=4)


@settings(max_examples=200, deadline=None)
@given(written(), st.lists(LABELS, min_size=1, max_size=5))
def test_parse_round_trips_and_selects_as_kubernetes(case: tuple[str, list], label_sets: list[dict]) -> None:
    text, reqs = case
    selector = parse_selector(text)
    assert selector == expected(reqs)
    assert parse_selector(str(selector)) == selector
    for labels in label_sets:
        assert selector.matches(labels) == all(reference(r, labels) for r in reqs), (text, labels)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab=!(),<> \t-./1in", max_size=20))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        selector = parse_selector(text)
    except SelectorError as exc:
        assert "\n" not in str(exc)
        return
    assert parse_selector(str(selector)) == selector


@pytest.mark.parametrize("text", [
    "=bad", "app=t1,", ",app", "a,,b", "app in t1", "app in (t1", "app in (t1 t2)", "!app=x", "app=t1=t2",
    "a b", "app >= 1", "app>x", "app<1.5", "app=-x", "app=" + "x" * 64, "-app=x", "Bad_Prefix/app=x",
    "a/b/c=x", "/app=x", "app=(t1)", "app notin", "!", "app in (t1,t2))",
])
def test_malformed_selectors_are_refused(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(text)


LISTED = {"a": {"app": "t1"}, "b": {"app": "t2"}, "c": {}, "d": {"app": "t3", "tier": "x"}}


def no_controller(self: State) -> None:
    raise AssertionError("an in-process CLI test must not start the background controller")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PODLINE_HOME", str(tmp_path))
    monkeypatch.setattr(State, "ensure_controller", no_controller)
    store = Store(tmp_path / "state.db")
    for name, labels in LISTED.items():
        store.apply("Pod", "default", name, {"apiVersion": "v1", "kind": "Pod",
                                             "metadata": {"name": name, "labels": labels}})
    return tmp_path


@pytest.mark.parametrize(("selector", "names"), [
    ("app=t1", ["a"]), ("app==t1", ["a"]), ("app!=t1", ["b", "c", "d"]), ("app", ["a", "b", "d"]),
    ("!app", ["c"]), ("app in (t1,t2)", ["a", "b"]), ("app notin (t1, t2)", ["c", "d"]),
    ("app, tier = x", ["d"]), ("app in (t1),tier", []), ("", ["a", "b", "c", "d"]),
])
def test_get_selects_with_the_grammar(home: Path, selector: str, names: list[str]) -> None:
    result = CliRunner().invoke(cli, ["get", "pods", "-l", selector, "-o", "name"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == [f"pod/{n}" for n in names]


@pytest.mark.parametrize("selector", ["=bad", "app in (t1", "app=t1,", "Bad_Prefix/app"])
def test_get_refuses_a_malformed_selector_with_exit_2(home: Path, selector: str) -> None:
    result = CliRunner().invoke(cli, ["get", "pods", "-l", selector])
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: -l "), result.stderr


def test_get_refuses_a_name_with_a_selector(home: Path) -> None:
    result = CliRunner().invoke(cli, ["get", "pods", "a", "-l", "app=t1"])
    assert result.exit_code == 2 and "selector" in result.stderr
