"""Bad manifests through the real `podline apply`: exit 2, one `error:` line, nothing stored, nothing run.

Each refusal is checked end to end: the exit code, exactly one stderr line naming the source, document,
object and field path, an empty stdout, an untouched `$PODLINE_HOME` (a fresh one is not even created),
an empty `podline get pods -o json`, and no trace of the command a good document in the same input
would have run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_SCRIPT = shutil.which("podline")
PODLINE = [_SCRIPT] if _SCRIPT else [sys.executable, "-c", "from podline.cli.main import main; main()"]


@dataclass
class Env:
    home: Path
    work: Path  # where manifests are written and where a good pod would leave its marker
    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*PODLINE, *args], input=input, text=True, capture_output=True, env=self.env,
                              timeout=timeout, cwd=self.work)

    @property
    def marker(self) -> Path:
        return self.work / "ran"

    def pods(self) -> list[dict]:
        proc = self("get", "pods", "-o", "json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["items"]


@pytest.fixture
def podline(tmp_path: Path) -> Iterator[Env]:
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    env = {**os.environ, "PODLINE_HOME": str(home)}
    runner = Env(home, work, env)
    yield runner
    if (home / "controller.pid").exists():  # only a test that stored something started a controller
        subprocess.run([*PODLINE, "down"], env=env, capture_output=True, timeout=60)


def snapshot(home: Path) -> dict[str, str]:
    """Every file under the home with a hash of its content (empty if the home does not exist)."""
    if not home.exists():
        return {}
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


def good_pod(name: str = "good") -> str:
    """A pod that would create the test's marker file (MARKER is replaced by its path) if it ever ran."""
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n"
            "  containers:\n  - name: c\n    command: [touch, MARKER]\n")


def assert_refused(podline: Env, proc: subprocess.CompletedProcess[str], where: str, before: dict[str, str]) -> None:
    assert proc.returncode == 2, f"exit {proc.returncode}\nstderr: {proc.stderr}"
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {proc.stderr!r}"
    assert lines[0].startswith("error: " + where), f"expected 'error: {where}...', got {lines[0]!r}"
    assert snapshot(podline.home) == before, "the refused apply changed $PODLINE_HOME"
    assert podline.pods() == []
    assert not podline.marker.exists()


BAD_FIELD = good_pod("bad").replace("command:", "comand:")
ABSURD_MEMORY = good_pod("big").replace("  - name: c\n", "  - name: c\n    resources: {requests: {memory: 1e40}}\n")
SHELL_NAME = good_pod("'x; touch ran #'")
ESCAPING_ITEM = good_pod("esc").replace(
    "  containers:", "  volumes:\n  - {name: v, configMap: {name: c, items: [{key: k, path: ../../../etc/x}]}}\n"
                     "  containers:")
JOB_ALWAYS = ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n"
              "      containers: [{name: c, command: [touch, MARKER]}]\n")


# (id, files to write, -f arguments, stdin, expected start of the error line after "error: ")
CASES = [
    pytest.param({}, ["-"], BAD_FIELD, "<stdin>: document 1 (Pod/bad): spec.containers[0].comand: unknown field",
                 id="stdin-unknown-field"),
    pytest.param({}, ["-"], good_pod() + "---\n" + SHELL_NAME,
                 "<stdin>: document 2 (Pod/x; touch ran #): metadata.name: invalid name 'x; touch ran #'",
                 id="stdin-good-then-shell-metacharacter-name"),
    pytest.param({"m.yaml": good_pod() + "---\n" + ABSURD_MEMORY}, ["m.yaml"], None,
                 "m.yaml: document 2 (Pod/big): spec.containers[0].resources.requests[memory]: "
                 "'1e40' is absurdly large",
                 id="file-good-then-absurd-memory"),
    pytest.param({"m.yaml": ESCAPING_ITEM}, ["m.yaml"], None,
                 "m.yaml: document 1 (Pod/esc): spec.volumes[0].configMap.items[0].path: path '../../../etc/x' "
                 "must not contain '..'", id="file-configmap-item-escapes"),
    pytest.param({"d/a-good.yaml": good_pod(), "d/b-bad.yml": JOB_ALWAYS, "d/c-ignored.txt": "not: yaml: ["},
                 ["d"], None, "d/b-bad.yml: document 1 (Job/j): spec.template.spec.restartPolicy: must be OnFailure",
                 id="directory-good-file-then-bad-job"),
    pytest.param({"good.yaml": good_pod(), "dup.yaml": good_pod().replace("echo", "echo again;")},
                 ["good.yaml", "dup.yaml"], None,
                 "dup.yaml: document 1 (Pod/good): metadata.name: duplicate object: also defined in good.yaml: "
                 "document 1 (Pod/good)", id="two-files-duplicate-object"),
    pytest.param({"good.yaml": good_pod()}, ["good.yaml", "-"], "apiVersion: v1\nkind: Pod\nmetadata: {}\n",
                 "<stdin>: document 1 (Pod/<no name>): spec: required field is missing", id="file-then-stdin"),
    pytest.param({"m.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n\tcontainers: []\n"},
                 ["m.yaml"], None, "m.yaml: document 1: malformed YAML: found character '\\t' that cannot start "
                 "any token at line 6, column 1", id="malformed-yaml-line-number"),
    pytest.param({"bomb.yaml": "l0: &l0 [" + ", ".join(["lol"] * 10) + "]\n" + "".join(
        f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 9))}, ["bomb.yaml"], None,
                 "bomb.yaml: document 1: document too large: expands to more than 100000 nodes (alias bomb?)",
                 id="alias-bomb"),
    # Once crashes (traceback, exit 1) or multi-line errors; fixed, kept as regressions.
    pytest.param({}, ["-"], good_pod("q").replace("  - name: c\n", "  - name: c\n    resources: {limits: "
                                                                     "{memory: 1e999999Ei}}\n"),
                 "<stdin>: document 1 (Pod/q): spec.containers[0].resources.limits[memory]: ",
                 id="quantity-overflow"),
    pytest.param({}, ["-"], "a: " + "[" * 3000 + "]" * 3000 + "\n",
                 "<stdin>: document 1: document too large: nesting deeper than 64 levels",
                 id="very-deep-nesting"),
    pytest.param({}, ["-"], good_pod('"a\\nb"'), "<stdin>: document 1 (Pod/a\\nb): metadata.name: ",
                 id="name-with-newline"),
]


@pytest.mark.parametrize(("files", "args", "stdin", "where"), CASES)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
        podline: Env, files: dict[str, str], args: list[str], stdin: str | None, where: str) -> None:
    for name, text in files.items():
        (podline.work / name).parent.mkdir(parents=True, exist_ok=True)
        (podline.work / name).write_text(text.replace("MARKER", str(podline.marker)))
    argv = ["apply"] + [part for arg in args for part in ("-f", arg)]
    proc = podline(*argv, input=(stdin or "").replace("MARKER", str(podline.marker)))
    assert_refused(podline, proc, where, before={})  # a fresh home is not even created


def test_bad_update_leaves_stored_objects_and_home_untouched(podline: Env) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: %s}\n"
    created = podline("apply", "-f", "-", input=cm % "v1")
    assert created.returncode == 0, created.stderr
    stored = podline("get", "configmap", "c", "-o", "json").stdout
    update = cm % "v2" + "---\n" + good_pod() + "---\n" + BAD_FIELD
    (podline.work / "update.yaml").write_text(update.replace("MARKER", str(podline.marker)))
    proc = podline("apply", "-f", "update.yaml")
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines() == [
        "error: update.yaml: document 3 (Pod/bad): spec.containers[0].comand: unknown field"]
    assert podline("get", "configmap", "c", "-o", "json").stdout == stored
    assert podline.pods() == []
    assert not podline.marker.exists()
