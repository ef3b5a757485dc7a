"""terminationMessagePolicy FallbackToLogsOnError (helper-79: both termination-message fields were dropped
without a word): a failed container's message is the end of its log, as the kubelet gives it."""

from __future__ import annotations

from tests.conftest import Cli


def test_a_failed_container_with_fallback_to_logs_has_its_logs_end_as_message(cli: Cli) -> None:
    cli.apply("""
apiVersion: v1
kind: Pod
metadata: {name: tells}
spec:
  restartPolicy: Never
  containers:
  - name: fails
    command: [sh, -c, "for i in $(seq 1 100); do echo line $i; done; echo 'cannot open /data/x' >&2; exit 4"]
    terminationMessagePolicy: FallbackToLogsOnError
  - name: plain
    command: [sh, -c, "echo nothing to see; exit 5"]
""")
    assert cli.wait("pod/tells", "phase=Failed").returncode == 0
    statuses = {c["name"]: c["state"]["terminated"] for c in cli.json("pod", "tells")["status"]["containerStatuses"]}
    message = statuses["fails"]["message"]
    assert message.endswith("line 100\ncannot open /data/x") and len(message.splitlines()) == 80, message
    assert "message" not in statuses["plain"]  # policy File: no file read back, no message
