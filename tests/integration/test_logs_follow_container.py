"""`logs -f -c C` follows container C, not the pod: it returns once C has ended for good (as kubectl's does),
with all of C's output, while the pod's other containers still run."""

from __future__ import annotations

import time

from tests.conftest import Cli, wait_for

POD = """apiVersion: v1
kind: Pod
metadata: {name: staged}
spec:
  restartPolicy: Always
  initContainers:
  - {name: init, image: busybox, command: [sh, -c, "echo preparing; sleep 0.5; echo prepared"]}
  containers:
  - {name: main, image: busybox, command: [sh, -c, "echo serving; sleep 30"]}
"""


def test_following_a_finished_init_container_returns_with_its_output(cli: Cli) -> None:
    cli.apply(POD)
    began = time.monotonic()
    out = cli("logs", "staged", "-f", "-c", "init", timeout=25)
    assert out.stdout.splitlines() == ["preparing", "prepared"]
    assert time.monotonic() - began < 20, "returned when the init container ended, not with the pod"
    assert cli.json("pod", "staged")["status"]["phase"] == "Running", "the main container still runs"
    wait_for(lambda: cli("logs", "staged", "-c", "main").stdout == "serving\n")
    cli("delete", "pod", "staged", check=False)
