"""Nothing a pod started outlives it on the host runtime, as in Kubernetes (where a container's processes end
with it): a background child ends with its container, one that left the session (`setsid`) with the pod, and
deleting a running pod stops both."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli, gone, wait_for


def pod(name: str, script: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox
    command: [sh, -c, {script!r}]
"""


def pid_in(path: Path) -> int:
    return int(wait_for(lambda: path.exists() and path.read_text().strip(), timeout=30))


def test_background_and_setsid_children_end_with_the_pod(cli: Cli, tmp_path: Path) -> None:
    bg, escaped = tmp_path / "bg", tmp_path / "escaped"
    cli.apply(pod("leaves", f"sleep 391 & echo $! > {bg}; setsid sleep 392 & echo $! > {escaped}; echo bye"))
    assert cli.wait("pod/leaves", "phase=Succeeded", timeout=60).returncode == 0
    for path in (bg, escaped):
        pid = pid_in(path)
        wait_for(lambda pid=pid: gone(pid), timeout=10)


def test_deleting_a_running_pod_stops_what_escaped_its_session(cli: Cli, tmp_path: Path) -> None:
    escaped, main = tmp_path / "escaped", tmp_path / "main"
    cli.apply(pod("runs", f"setsid sleep 393 & echo $! > {escaped}; echo $$$$ > {main}; exec sleep 300"))
    pids = [pid_in(escaped), pid_in(main)]
    cli("delete", "pod", "runs")
    for pid in pids:
        wait_for(lambda pid=pid: gone(pid), timeout=20)
