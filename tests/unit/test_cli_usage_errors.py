"""Exit codes at the edges of the CLI, in process: 2 for usage or invalid input (an unknown `wait --for`
phase or condition, undecodable stdin, a container that could never start), 1 for a missing object
(`delete -f` as `delete KIND NAME`, unless --ignore-not-found), as kubectl exits."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from click.testing import Result

from podline.api.errors import ManifestError
from podline.api.loader import build_object, load_paths
from podline.store import Store
from tests.unit.inprocess_cli import empty_home, run

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec: {containers: [{name: c, command: [\"true\"]}]}\n"



@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    return empty_home(tmp_path, monkeypatch)


def assert_one_error(result: Result, code: int, *words: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


# --- wait --for --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("ref", "wanted", "accepted"), [
    ("pod/x", "phase=Bogus", "phase=Succeeded"),
    ("pod/x", "condition=Bogus", "condition=Ready"),
    ("pod/x", "condition=Ready=maybe", "condition=Ready"),
    ("job/x", "phase=Pending", "condition=Complete"),
    ("job/x", "condition=Ready", "phase=Succeeded"),
    ("pipeline/x", "condition=Ready", "phase=Succeeded"),
    ("workflow/x", "phase=Complete", "phase=Error"),
    ("configmap/x", "phase=Succeeded", "pod, job, pipeline, workflow"),
])
def test_wait_for_an_unknown_phase_or_condition_exits_2(store: Store, ref: str, wanted: str, accepted: str) -> None:
    assert_one_error(run("wait", ref, f"--for={wanted}", "--timeout=0"), 2, accepted)


def test_wait_without_for_needs_one_except_for_a_pod(store: Store) -> None:
    assert_one_error(run("wait", "job/x", "--timeout=0"), 2, "--for is required", "condition=Complete")
    assert_one_error(run("wait", "pod/x", "--timeout=0"), 1, 'pods "x" not found')


@pytest.mark.parametrize(("kind", "wanted", "parsed"), [
    ("Pod", None, ("condition", "Ready", "True")),
    ("Pod", "phase=succeeded", ("phase", "Succeeded", "True")),
    ("Pod", "condition=ready=false", ("condition", "Ready", "False")),
    ("Job", "phase=Succeeded", ("phase", "Succeeded", "True")),
    ("Job", "condition=complete", ("condition", "Complete", "True")),
    ("Workflow", "condition=Completed", ("condition", "Completed", "True")),
    ("Workflow", "phase=Error", ("phase", "Error", "True")),
])
def test_wait_accepts_what_the_kind_has(kind: str, wanted: str | None, parsed: tuple[str, str, str]) -> None:
    from podline.cli.wait_cmd import parse_for

    assert parse_for(kind, wanted) == parsed


def test_wait_meets_a_phase_and_a_condition_status(store: Store) -> None:
    store.apply("Pod", "default", "done", {"metadata": {"name": "done"}},
                status={"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "False"}]})
    assert run("wait", "pod/done", "--for=phase=succeeded").stdout == "pod/done condition met\n"  # kubectl's words
    assert run("wait", "pod/done", "--for=condition=Ready=False").exit_code == 0
    assert_one_error(run("wait", "pod/done", "--for=condition=Ready"), 1, "can no longer reach condition=Ready")


def test_wait_takes_kubectls_forms_durations_and_delete(store: Store) -> None:
    for name in ("a", "b"):
        store.apply("Pod", "default", name, {"metadata": {"name": name}}, status={"phase": "Succeeded"})
    both = run("wait", "pod", "a", "b", "--for=phase=Succeeded", "--timeout=1m30s")
    assert both.exit_code == 0 and both.stdout == "pod/a condition met\npod/b condition met\n"
    assert run("wait", "pod/a", "pod/b", "--for=phase=Succeeded", "--timeout", "2").exit_code == 0
    assert run("wait", "pod/gone", "--for=delete", "--timeout=0s").stdout == "pod/gone condition met\n"
    timed_out = run("wait", "pod/a", "--for=delete", "--timeout=100ms")
    assert_one_error(timed_out, 1, "timed out waiting for delete on pod/a")
    assert_one_error(run("wait", "pod/a", "--timeout=30x"), 2, "--timeout '30x': expected a duration")
    assert_one_error(run("wait", "a"), 2, "expected KIND/NAME… or KIND NAME…")
    assert_one_error(run("wait", "pod/a", "pod/nope", "--for=phase=Succeeded"), 1, 'pods "nope" not found')


# --- apply -f - with bytes that are not UTF-8 -----------------------------------------------------------

def test_undecodable_stdin_exits_2_like_a_file(store: Store, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe")
    from_file = run("apply", "-f", str(tmp_path / "bad.yaml"))
    assert_one_error(from_file, 2, "cannot read")
    from_stdin = run("apply", "-f", "-", stdin=b"\xff\xfe")
    assert_one_error(from_stdin, 2, "error: <stdin>: cannot read")
    assert from_stdin.stderr.split(": ", 2)[2] == from_file.stderr.split(": ", 2)[2]


def test_stdin_is_read_as_bytes_not_through_surrogates(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real stdin decodes bad bytes to surrogates (surrogateescape); the loader must not see those."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"kind: \xff\n"), errors="surrogateescape"))
    with pytest.raises(ManifestError, match=r"^<stdin>: cannot read: 'utf-8' codec can't decode byte 0xff"):
        load_paths(["-"])


def test_stdin_keeps_reading_text_and_newlines_as_a_file_does(monkeypatch: pytest.MonkeyPatch) -> None:
    crlf = (POD % "crlf").replace("\n", "\r\n").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(crlf)))
    assert [item.obj.metadata.name for item in load_paths(["-"])] == ["crlf"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(POD % "text"))  # a stdin without a byte layer
    assert [item.obj.metadata.name for item in load_paths(["-"])] == ["text"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"#" * (8 * 1024 * 1024 + 1))))
    with pytest.raises(ManifestError, match="larger than 8 MiB"):
        load_paths(["-"])


# --- delete: a missing object is exit 1 however it is named ------------------------------------------------

def test_delete_by_file_of_a_missing_object_exits_1(store: Store, tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD % "nosuch")
    assert_one_error(run("delete", "-f", str(manifest)), 1, 'pods "nosuch" not found')
    assert_one_error(run("delete", "pod", "nosuch"), 1, 'pods "nosuch" not found')
    for args in (["-f", str(manifest)], ["pod", "nosuch"], ["pod/nosuch"]):
        ignored = run("delete", *args, "--ignore-not-found")
        assert ignored.exit_code == 0 and ignored.stdout == ignored.stderr == ""


def test_delete_by_file_reports_every_missing_object(store: Store, tmp_path: Path) -> None:
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(POD % "one" + "---\n" + POD % "two")
    result = run("delete", "-f", str(manifest))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ['error: pods "one" not found', 'error: pods "two" not found']


# --- a container with no image and nothing to run ------------------------------------------------------------

def pod_with(spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


@pytest.mark.parametrize(("manifest", "path"), [
    (pod_with({"containers": [{"name": "c"}]}), "spec.containers[0].image"),
    (pod_with({"containers": [{"name": "c", "image": ""}]}), "spec.containers[0].image"),
    (pod_with({"containers": [{"name": "a", "command": ["true"]}, {"name": "b", "env": []}]}),
     "spec.containers[1].image"),
    (pod_with({"initContainers": [{"name": "i"}], "containers": [{"name": "c", "image": "busybox"}]}),
     "spec.initContainers[0].image"),
    ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
      "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}}},
     "spec.template.spec.containers[0].image"),
])
def test_a_container_that_could_never_start_is_refused(manifest: dict, path: str) -> None:
    with pytest.raises(ManifestError) as caught:
        build_object(manifest, "m.yaml", 1)
    assert caught.value.path == path and "required field is missing" in caught.value.problem


@pytest.mark.parametrize("container", [
    {"name": "c", "command": ["true"]},  # the host runtime runs a command without an image
    {"name": "c", "args": ["true"]},
    {"name": "c", "image": "busybox"},  # the image's ENTRYPOINT/CMD
])
def test_a_container_with_an_image_or_a_command_is_accepted(container: dict) -> None:
    assert build_object(pod_with({"containers": [container]}), "m.yaml", 1).obj.kind == "Pod"


def test_apply_of_a_container_without_image_exits_2(store: Store) -> None:
    result = run("apply", "-f", "-", stdin="apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                                           "spec: {containers: [{name: c}]}\n")
    assert_one_error(result, 2, "document 1 (Pod/p): spec.containers[0].image: required field is missing")
    assert store.list() == []
