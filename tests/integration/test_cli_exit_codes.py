"""Exit codes through the real `podline` process (a real stdin, a running controller): undecodable stdin and
an unknown `wait --for` are usage errors (2); `delete -f` deletes what exists and exits 1 for what does not,
as kubectl does; `-l` selects with kubectl's grammar. The in-process cases are in tests/unit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import Cli

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, labels: {app: %s}}\n"


def test_undecodable_stdin_exits_2_without_a_traceback(cli: Cli) -> None:
    proc = subprocess.run([sys.executable, "-m", "podline.cli", "apply", "-f", "-"], input=b"\xff\xfe",
                          capture_output=True, env=cli.env, timeout=60)
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode().splitlines() == [
        "error: <stdin>: cannot read: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"]


def test_unknown_wait_phase_exits_2(cli: Cli) -> None:
    proc = cli("wait", "pod/x", "--for=phase=Bogus", "--timeout=1", check=False)
    assert proc.returncode == 2 and "phase=Succeeded" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_selectors_and_delete_of_present_and_missing_objects(cli: Cli, tmp_path: Path) -> None:
    cli.apply(CM % ("one", "t1") + "---\n" + CM % ("two", "t2"))
    assert cli("get", "cm", "-l", "app!=t1", "-o", "name").stdout.split() == ["configmap/two"]
    assert cli("get", "cm", "-l", "app in (t1, t2),app notin (t2)", "-o", "name").stdout.split() == ["configmap/one"]
    assert cli("get", "cm", "-l", "=bad", check=False).returncode == 2
    manifest = tmp_path / "cms.yaml"
    manifest.write_text(CM % ("one", "t1") + "---\n" + CM % ("gone", "t1"))
    proc = cli("delete", "-f", str(manifest), check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == ['configmap "one" deleted']
    assert proc.stderr.splitlines() == ['error: configmaps "gone" not found']
    assert cli("get", "cm", "-o", "name").stdout.split() == ["configmap/two"]
    assert cli("delete", "-f", str(manifest), "--ignore-not-found").returncode == 0
