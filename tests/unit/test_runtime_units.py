"""Small helpers of runtime, controller and CLI rendering."""

from __future__ import annotations

import json
import os
from pathlib import Path

from podline.cli.render import pod_status_word
from podline.plan.ranges import compress as compress_indexes
from podline.runtime.container import exit_code
from podline.runtime.files import parse_rfc3339, rfc3339, tree_size
from podline.runtime.host import PathMapper
from podline.runtime.launch import command_line
from podline.store import Obj


def test_path_mapper_rewrites_only_at_path_boundaries() -> None:
    mapper = PathMapper([("/data", "/h/d"), ("/data/sub", "/h/s")])
    assert mapper.map("echo hi > /data/msg") == "echo hi > /h/d/msg"
    assert mapper.map("/data") == "/h/d"
    assert mapper.map("/database") == "/database"
    assert mapper.map("/data/sub/x") == "/h/s/x"
    assert mapper.map("x=/data:/data/sub") == "x=/h/d:/h/s"
    assert mapper.map("/var/data") == "/var/data"
    assert mapper.map("'/data'") == "'/h/d'"


def test_container_argv_without_image_entrypoint() -> None:
    assert command_line({"command": ["a"], "args": ["b"]}, None) == ["a", "b"]
    assert command_line({"command": [], "args": ["b", "c"]}, None) == ["b", "c"]


def test_exit_codes_of_signals() -> None:
    assert exit_code(-9) == 137 and exit_code(-15) == 143 and exit_code(3) == 3


def test_compress_indexes() -> None:
    assert compress_indexes([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert compress_indexes([]) == ""
    assert compress_indexes([3, 3, 1]) == "1,3"


def test_rfc3339_round_trip() -> None:
    assert abs(parse_rfc3339(rfc3339(1_700_000_000.25)) - 1_700_000_000.25) < 1e-6
    assert parse_rfc3339("2024-01-01T00:00:00Z") == 1704067200.0


def _pod(status: dict, inits: int = 0) -> Obj:
    manifest = {"spec": {"containers": [{"name": "c"}], "initContainers": [{"name": f"i{n}"} for n in range(inits)]}}
    return Obj("u", "Pod", "default", "p", json.dumps(manifest), 1, status, {}, None, False, 0.0, None, "local")


def test_status_words_like_kubectl() -> None:
    assert pod_status_word(_pod({})) == "Pending"
    waiting_init = {"phase": "Pending", "initContainerStatuses": [
        {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}, {"state": {"running": {}}}]}
    assert pod_status_word(_pod(waiting_init, 2)) == "Init:1/2"
    crash = {"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    assert pod_status_word(_pod(crash)) == "CrashLoopBackOff"
    done = {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"reason": "Completed"}}}]}
    assert pod_status_word(_pod(done)) == "Completed"
    assert pod_status_word(_pod({"phase": "Failed", "reason": "DeadlineExceeded"})) == "DeadlineExceeded"
    pulling = {"phase": "Pending", "initContainerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
    assert pod_status_word(_pod(pulling, 1)) == "Init:ImagePullBackOff"
    suspended = _pod({"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]})
    suspended.internal["backend"] = {"slurmState": "SUSPENDED"}  # scontrol suspend (helper-82: it said Running)
    assert pod_status_word(suspended) == "Suspended"


def test_workspace_usage_counts_a_hard_linked_file_once(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(os.urandom(300_000))
    alone = tree_size(tmp_path)
    for i in range(4):
        os.link(tmp_path / "big", tmp_path / f"l{i}")
    (tmp_path / "sub").mkdir()
    os.link(tmp_path / "big", tmp_path / "sub" / "l")
    assert alone >= 300_000 and tree_size(tmp_path) == alone
    (tmp_path / "other").write_bytes(os.urandom(100_000))
    assert tree_size(tmp_path) > alone
