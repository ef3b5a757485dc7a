"""Bad input through the real CLI: exit 2, one `error:` line naming document and field, no state change."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli

GOOD = "apiVersion: v1\nkind: Pod\nmetadata: {name: good}\nspec:\n  containers: [{name: c, command: [touch, /tmp/x]}]\n"
BAD_FIELD = GOOD.replace("good", "bad").replace("command:", "comand:")
BAD_NAME = GOOD.replace("name: good", "name: 'x; rm -rf ~'")


def assert_refused(proc, path: str, document: int) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert f"document {document}" in lines[0] and f": {path}: " in lines[0], lines[0]


@pytest.mark.parametrize(("text", "path", "document"), [
    (GOOD + "---\n" + BAD_FIELD, "spec.containers[0].comand", 2),
    (BAD_NAME, "metadata.name", 1),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, resources: {requests: "
     "{memory: 1e40}}}]}\n", "spec.containers[0].resources.requests[memory]", 1),
])
def test_stdin_bad_input_exits_2_and_stores_nothing(cli: Cli, text: str, path: str, document: int) -> None:
    assert_refused(cli("apply", "-f", "-", input=text, check=False), path, document)
    assert cli.json("pods")["items"] == []
    assert not (cli.home / "controller.pid").exists()  # nothing was started either


def test_bad_file_in_directory_stops_the_whole_apply(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a-good.yaml").write_text(GOOD)
    (tmp_path / "b-bad.yaml").write_text(BAD_FIELD)
    proc = cli("apply", "-f", str(tmp_path), check=False)
    assert_refused(proc, "spec.containers[0].comand", 1)
    assert "b-bad.yaml" in proc.stderr
    assert cli.json("pods")["items"] == []


def test_bad_update_leaves_stored_object_untouched(cli: Cli, tmp_path: Path) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: %s}\n"
    cli.apply(cm % "v1")
    bad = tmp_path / "bad.yaml"
    bad.write_text(cm % "v2" + "---\n" + cm.replace("name: c", "name: C") % "x")
    assert_refused(cli("apply", "-f", str(bad), check=False), "metadata.name", 2)
    assert cli.json("configmap", "c")["data"] == {"k": "v1"}


def test_yaml_bomb_and_malformed_yaml(cli: Cli, tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    (tmp_path / "bomb.yaml").write_text(bomb)
    proc = cli("apply", "-f", str(tmp_path / "bomb.yaml"), check=False, timeout=20)
    assert proc.returncode == 2 and "alias bomb" in proc.stderr and len(proc.stderr.splitlines()) == 1
    proc = cli("apply", "-f", "-", input="kind: Pod\nmetadata: {name: [\n", check=False)
    assert proc.returncode == 2 and "malformed YAML" in proc.stderr and "line" in proc.stderr
    assert cli("apply", "-f", str(tmp_path / "missing.yaml"), check=False).returncode == 2
