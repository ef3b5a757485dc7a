"""Downward API values: Go's quoting of label/annotation files, the node's fields resolved by the runner where
the pod runs, and each task of a job array's one plan template seeing its own pod's metadata."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.controller.arrays import member_name
from podline.plan.pod import format_map, go_quote, plan_pod
from podline.runtime.expand import container_env, file_bytes, host_ip, node_field, own_pod
from podline.runtime.files import write_json_atomic

INDEX_KEY = "batch.kubernetes.io/job-completion-index"


# --- an oracle: Go's strconv.Quote over the UTF-8 bytes, following Go's source ---------------------------
def _go_decode_rune(data: bytes) -> tuple[int, int]:
    """unicode/utf8.DecodeRune: (rune, width); (0xFFFD, 1) for an invalid or short sequence."""
    first = data[0]
    if first < 0x80:
        return first, 1
    size = 2 if 0xC2 <= first <= 0xDF else 3 if 0xE0 <= first <= 0xEF else 4 if 0xF0 <= first <= 0xF4 else 0
    if size == 0 or len(data) < size:
        return 0xFFFD, 1
    low, high = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}.get(
        first, (0x80, 0xBF))
    if not low <= data[1] <= high or any(not 0x80 <= b <= 0xBF for b in data[2:size]):
        return 0xFFFD, 1
    rune = first & (0x7F >> size)
    for b in data[1:size]:
        rune = rune << 6 | (b & 0x3F)
    return rune, size


def _go_is_print(rune: int) -> bool:
    """strconv.IsPrint: Latin-1 by its fast path, the rest by unicode.IsPrint's categories (L, M, N, P, S)."""
    if rune <= 0xFF:
        return 0x20 <= rune <= 0x7E or (0xA1 <= rune <= 0xFF and rune != 0xAD)
    return unicodedata.category(chr(rune))[0] in "LMNPS"


def _go_escaped_rune(rune: int) -> str:
    """strconv.appendEscapedRune with quote '"' and ASCIIonly, graphicOnly false."""
    if rune in (ord('"'), ord("\\")):
        return "\\" + chr(rune)
    if _go_is_print(rune):
        return chr(rune)
    named = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if rune in named:
        return named[rune]
    if rune < 0x20 or rune == 0x7F:
        return "\\x" + _hex(rune, 8)
    if 0xD800 <= rune <= 0xDFFF or rune > 0x10FFFF:
        rune = 0xFFFD
    return "\\u" + _hex(rune, 16) if rune < 0x10000 else "\\U" + _hex(rune, 32)


def _hex(value: int, bits: int) -> str:
    """Go's `lowerhex[r>>uint(s)&0xF]` for s from bits-4 down to 0."""
    return "".join("0123456789abcdef"[value >> shift & 0xF] for shift in range(bits - 4, -1, -4))


def go_strconv_quote(data: bytes) -> str:
    out, i = ['"'], 0
    while i < len(data):
        rune, width = _go_decode_rune(data[i:])
        if width == 1 and rune == 0xFFFD:
            out.append("\\x" + _hex(data[i], 8))  # an invalid byte, as it is
        else:
            out.append(_go_escaped_rune(rune))
        i += width
    return "".join(out + ['"'])


HOSTILE = st.lists(st.sampled_from(list('"\\\n\r\t\a\b\f\v\x00\x1b\x7f\x80\x9f \xa0\xad\xa1\xff=') +
                                   ["é", "e\u0301", "\u200b", "\u2028", "\u3000", "\ufeff", "\ufffd",
                                    "\U0001f600", "\U000e0001", "\U0010ffff", "\ue000", "a", "Z", "9"])).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), HOSTILE))
def test_quoting_is_go_strconv_quote(text: str) -> None:
    assert go_quote(text) == go_strconv_quote(text.encode())


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), HOSTILE))
def test_quoted_value_is_one_line_that_reads_back(text: str) -> None:
    quoted = go_quote(text)
    assert "\n" not in quoted and "\r" not in quoted
    assert ast.literal_eval(quoted) == text  # Go's escapes all mean the same in a Python literal


def test_quoting_examples_as_go_prints_them() -> None:
    assert go_quote('"Fran & Freddie\'s Diner\t☺"') == '"\\"Fran & Freddie\'s Diner\\t☺\\""'  # Go's doc
    assert go_quote("a\\b\nc") == '"a\\\\b\\nc"'
    assert go_quote("\x00\x1b\x7f\xa0\xad\u200b\U0001f600\U000e0001") == \
        '"\\x00\\x1b\\x7f\\u00a0\\u00ad\\u200b\U0001f600\\U000e0001"'
    assert go_quote("\ud800") == '"\ufffd"'  # a lone surrogate (from JSON input) as Go's decoders read it


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text("abz09./-", min_size=1, max_size=12), st.one_of(st.text(), HOSTILE), max_size=6))
def test_labels_file_is_one_sorted_line_per_key(items: dict[str, str]) -> None:
    lines = format_map(items).split("\n") if items else []
    assert [line.split("=", 1)[0] for line in lines] == sorted(items)
    assert {line.split("=", 1)[0]: ast.literal_eval(line.split("=", 1)[1]) for line in lines} == items
    assert format_map({"b": 'say "hi"', "a": "x\ny"}) == 'a="x\\ny"\nb="say \\"hi\\""'


# --- plans ------------------------------------------------------------------------------------------------
def _pod(env: list[dict[str, Any]], items: list[dict[str, Any]] | None = None,
         labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    volumes = [{"name": "info", "downwardAPI": {"items": items}}] if items else []
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "ix-abcde", "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"restartPolicy": "Never", "volumes": volumes,
                     "containers": [{"name": "c", "image": "x", "command": ["sh", "-c", "true"], "env": env}]}}


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _member(index: int) -> dict[str, Any]:
    return {"name": f"ix-{index}-q{index}x", "namespace": "default",
            "labels": {"app": "a", "job-name": "ix", INDEX_KEY: str(index)},
            "annotations": {INDEX_KEY: str(index), "note": 'say "hi"\nbye'}}


ENV = [_field("ME", "metadata.name"), _field("IDX", f"metadata.labels['{INDEX_KEY}']"),
       _field("APP", "metadata.labels['app']"), _field("NODE", "spec.nodeName"), _field("HIP", "status.hostIP"),
       _field("PIP", "status.podIP"), {"name": "TAG", "value": "$(ME)/$(IDX)"}]
ITEMS = [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
         {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
         {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]


def test_each_array_task_sees_its_own_pods_metadata_in_env_and_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURMD_NODENAME", "pl-n9")
    manifest = _pod(ENV, ITEMS, labels={"app": "a", "job-name": "ix"}, annotations={"note": 'say "hi"\nbye'})
    plan = plan_pod(manifest, "array-id", lambda *a: None, index_env="JOB_COMPLETION_INDEX",
                    members={0: _member(0), 1: _member(1)})
    files = plan["volumes"][0]["files"]
    for index in (0, 1):
        first = {"JOB_COMPLETION_INDEX": str(index)}
        env = container_env(plan["containers"][0]["env"], first)
        name = f"ix-{index}-q{index}x"
        assert (env["ME"], env["IDX"], env["APP"], env["TAG"]) == (name, str(index), "a", f"{name}/{index}")
        assert (env["NODE"], env["HIP"], env["PIP"]) == ("pl-n9", host_ip(), host_ip())
        got = {f["path"]: file_bytes(f, first).decode() for f in files}
        assert got == {"name": name, "labels": f'app="a"\n{INDEX_KEY}="{index}"\njob-name="ix"',
                       "annotations": f'{INDEX_KEY}="{index}"\nnote="say \\"hi\\"\\nbye"'}
        assert own_pod(plan["pod"], first)["name"] == name  # its runtime's hostname and HOSTNAME
    app = next(e for e in plan["containers"][0]["env"] if e["name"] == "APP")
    assert "byIndex" not in app  # the same for every index: one literal value


def test_a_plan_without_members_keeps_literal_values_and_leaves_the_node_to_the_runner() -> None:
    plan = plan_pod(_pod(ENV, ITEMS, annotations={"b": "2", "a": "q\"uote"}), "uid", lambda *a: None)
    env = {e["name"]: e for e in plan["containers"][0]["env"]}
    assert env["ME"] == {"name": "ME", "value": "ix-abcde", "expand": False}
    assert own_pod(plan["pod"], {}) == {"name": "ix-abcde", "namespace": "default", "uid": "uid"}
    assert env["NODE"]["fieldPath"] == "spec.nodeName" and env["HIP"]["fieldPath"] == "status.hostIP"
    annotations = next(f for f in plan["volumes"][0]["files"] if f["path"] == "annotations")
    assert file_bytes(annotations, {}) == b'a="q\\"uote"\nb="2"'


def test_node_fields_are_this_nodes() -> None:
    assert node_field("spec.nodeName") == (os.environ.get("SLURMD_NODENAME") or os.uname().nodename)
    parts = host_ip().split(".")
    assert len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)
    assert node_field("status.podIP") == node_field("status.hostIP") == host_ip()


def test_member_names_are_a_function_of_array_and_index() -> None:
    assert member_name("ix", "a1", 3) == member_name("ix", "a1", 3)
    assert member_name("ix", "a1", 3) != member_name("ix", "a2", 3)
    name = member_name("ix", "a1", 3)
    assert name.startswith("ix-3-") and len(name) == len("ix-3-") + 5


# --- the runner: values resolved where and when the pod runs ---------------------------------------------
def _run(base: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "podline.runtime.pod", *args], env={**os.environ, **env}, check=True,
                   timeout=60, capture_output=True)


def test_the_runner_resolves_node_fields_on_its_node(tmp_path: Path) -> None:
    """The plan is built with no node in sight; the runner (here on "pl-n7") gives the pod its own node."""
    manifest = _pod(ENV[3:6])
    manifest["spec"]["containers"][0]["command"] = ["sh", "-c", "echo $NODE $HIP $PIP"]
    write_json_atomic(tmp_path / "plan.json", plan_pod(manifest, "uid", lambda *a: None))
    _run(tmp_path, {"SLURMD_NODENAME": "pl-n7"}, str(tmp_path))
    assert (tmp_path / "logs" / "c.log").read_text() == f"pl-n7 {host_ip()} {host_ip()}\n"


def test_array_tasks_of_one_plan_template_see_their_own_pod(tmp_path: Path) -> None:
    manifest = _pod(ENV[:2], labels={"app": "a", "job-name": "ix"})
    manifest["spec"]["containers"][0]["command"] = ["sh", "-c", "echo $ME $IDX $JOB_COMPLETION_INDEX"]
    plan = plan_pod(manifest, "array-id", lambda *a: None, index_env="JOB_COMPLETION_INDEX",
                    members={0: _member(0), 1: _member(1)})
    write_json_atomic(tmp_path / "plan.json", plan)
    for index in (0, 1):
        _run(tmp_path, {"SLURM_ARRAY_TASK_ID": str(index)}, "--array-base", str(tmp_path))
        assert (tmp_path / str(index) / "logs" / "c.log").read_text() == f"ix-{index}-q{index}x {index} {index}\n"
    assert json.loads((tmp_path / "1" / "status.json").read_text())["status"]["phase"] == "Succeeded"


def test_an_array_plan_names_its_tasks_by_rule_when_nothing_else_differs() -> None:
    """Without metadata fieldRefs the plan of a 1,000-task array stays as small as one pod's (P1 times it)."""
    manifest = _pod([{"name": "X", "value": "1"}])
    small = plan_pod(manifest, "array-id", lambda *a: None, index_env="JOB_COMPLETION_INDEX",
                     index_names=("ix", "array-id"))
    assert small["pod"]["namedBy"] == {"job": "ix", "array": "array-id", "env": "JOB_COMPLETION_INDEX"}
    for index in (0, 999):
        assert own_pod(small["pod"], {"JOB_COMPLETION_INDEX": str(index)})["name"] == member_name("ix", "array-id",
                                                                                                   index)
    assert own_pod(small["pod"], {})["name"] == "ix-abcde"  # not an array task: the template's own
    listed = plan_pod(_pod(ENV, ITEMS), "array-id", lambda *a: None, index_env="JOB_COMPLETION_INDEX",
                      members={0: _member(0)}, index_names=("ix", "array-id"))
    assert "namedBy" not in listed["pod"] and own_pod(listed["pod"], {"JOB_COMPLETION_INDEX": "0"})["name"] == \
        "ix-0-q0x"
