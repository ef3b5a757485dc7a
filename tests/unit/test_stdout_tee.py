"""The copy of a container's stdout kept apart for an Argo step's `result`: a copy that cannot be written
(here /dev/full, a real ENOSPC) fails the step's outputs with the reason instead of passing a truncated
result on. The engine is a stand-in that starts `sh -c`; the tee and the collection are podline's own."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import IO, Any

from podline.runtime import argo_io
from podline.runtime.container import ContainerWorker


class Shell:
    pod = {"name": "p", "namespace": "default", "uid": "u-1"}

    def spawn(self, spec: dict[str, Any], log: IO[bytes], stdout: int | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["sh", "-c", spec["script"]], stdout=stdout, stderr=log)

    def image_id(self, spec: dict[str, Any]) -> str:
        return ""


def run(tmp_path: Path, copy: Path, script: str) -> ContainerWorker:
    (tmp_path / "logs").mkdir(exist_ok=True)
    worker = ContainerWorker({"name": "main", "image": "busybox", "script": script}, Shell(),  # type: ignore[arg-type]
                             "Never", False, tmp_path, threading.Event(), lambda: None)
    worker.stdout_copy = copy
    worker.run()
    return worker


def test_a_full_disk_under_the_stdout_copy_fails_the_result_with_the_reason(tmp_path: Path) -> None:
    worker = run(tmp_path, Path("/dev/full"), "echo 42")
    assert worker.last_exit == 0 and worker.stdout_lost == "stdout could not be kept: No space left on device"
    outputs = argo_io.collect({"result": True}, worker.spec, {}, tmp_path / "absent", worker.last_exit,
                              worker.stdout_lost)
    assert outputs["error"] == "result: stdout could not be kept: No space left on device"


def test_a_kept_copy_is_the_result_and_no_error(tmp_path: Path) -> None:
    worker = run(tmp_path, tmp_path / "main.stdout", "echo 42; echo noise >&2")
    assert worker.stdout_lost is None
    outputs = argo_io.collect({"result": True}, worker.spec, {}, worker.stdout_copy, worker.last_exit,
                              worker.stdout_lost)
    assert outputs == {"exitCode": "0", "result": "42"}
