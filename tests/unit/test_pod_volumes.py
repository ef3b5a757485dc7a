"""A pod's volumes on its node: each job-array task has its own RAM-backed directory, which names its owner so
that a killed runner's leftovers are removed by the next runner once the pod is deleted; hostPath `type` is
checked as kubelet checks it (sockets and devices too)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from podline.runtime import orphans
from podline.runtime.volumes import VolumeError, Volumes, host_path, memory_key, run_root

MEMORY = [{"name": "ram", "type": "emptyDir", "medium": "Memory", "sizeLimit": None}]


@pytest.fixture
def shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "shm"
    monkeypatch.setenv("PODLINE_SHM_DIR", str(path))
    return path


def rundir(root: Path, *parts: str) -> Path:
    path = root.joinpath("pods", "default", *parts)
    path.mkdir(parents=True)
    return path


def test_array_tasks_of_one_plan_have_their_own_ram_and_free_only_theirs(tmp_path: Path, shm: Path) -> None:
    base = tmp_path / "shared" / "pods" / "default" / "ix" / "array-id"
    tasks = []
    for index in (0, 1):
        (base / str(index)).mkdir(parents=True)
        volumes = Volumes(MEMORY, base / str(index), "array-id", {"JOB_COMPLETION_INDEX": str(index)}, log=print)
        volumes.prepare()
        (volumes.paths["ram"] / f"mine-{index}").write_text("x")
        tasks.append(volumes)
    assert [t.memory_root.name for t in tasks] == ["podline-array-id-0", "podline-array-id-1"]
    assert [sorted(p.name for p in t.paths["ram"].iterdir()) for t in tasks] == [["mine-0"], ["mine-1"]]
    tasks[0].release_memory()
    assert (tasks[1].paths["ram"] / "mine-1").exists() and not tasks[0].memory_root.exists()
    assert memory_key("uid") == "podline-uid"  # a pod of its own: as the local backend's cleanup names it


def test_a_killed_runners_ram_goes_with_the_next_runner_once_its_pod_is_deleted(tmp_path: Path, shm: Path) -> None:
    shared = tmp_path / "shared"
    killed, live, task = rundir(shared, "a", "uid-a"), rundir(shared, "b", "uid-b"), rundir(shared, "ix", "arr", "3")
    left = Volumes(MEMORY, killed, "uid-a")
    left.prepare()  # ... and never released: its runner was killed
    assert (left.memory_root / orphans.OWNER).read_text() == f"{shared}\n{killed}\n"
    array_task = Volumes(MEMORY, task, "arr", {"JOB_COMPLETION_INDEX": "3"})
    array_task.prepare()
    assert (array_task.memory_root / orphans.OWNER).read_text() == f"{shared}\n{task}\n"
    Volumes(MEMORY, live, "uid-b").prepare()
    assert left.memory_root.exists(), "its pod still exists: its run directory is there"
    killed.rmdir()  # the pod was deleted
    logged: list[str] = []
    Volumes(MEMORY, live, "uid-b", log=logged.append).prepare()
    assert not left.memory_root.exists() and array_task.memory_root.exists()
    assert logged == [f"removed {left.memory_root}: its owner {killed} was deleted"]


def test_nothing_is_claimed_outside_a_backends_layout_nor_removed_without_the_shared_directory(
        tmp_path: Path, shm: Path) -> None:
    assert run_root(tmp_path / "x" / "pods" / "ns" / "name" / "uid", array_task=False) == tmp_path / "x"
    assert run_root(tmp_path / "x" / "pods" / "ns" / "job" / "arr" / "0", array_task=True) == tmp_path / "x"
    assert run_root(tmp_path / "runs" / "ns" / "name" / "uid", array_task=False) is None
    unmounted = shm / "podline-elsewhere"
    orphans.claim(unmounted, str(tmp_path / "not-mounted"), str(tmp_path / "not-mounted" / "run"))
    stray = tmp_path / "runs" / "one"
    stray.mkdir(parents=True)
    Volumes([], stray, "uid").prepare()
    assert not (shm / "podline-uid").exists()  # no owner to name, and no RAM volume to make
    Volumes([], rundir(tmp_path / "shared", "p", "uid-p"), "uid-p").prepare()
    assert unmounted.exists()


def test_a_volume_that_cannot_be_made_gives_the_ram_back(tmp_path: Path, shm: Path) -> None:
    run = rundir(tmp_path / "shared", "p", "uid")
    volumes = Volumes([*MEMORY, {"name": "h", "type": "hostPath", "path": str(tmp_path / "none"),
                                 "hostPathType": "Directory"}], run, "uid")
    with pytest.raises(VolumeError, match="is not a directory"):
        volumes.prepare()
    assert not volumes.memory_root.exists()


def test_host_path_types_are_checked_as_kubelet_does(tmp_path: Path) -> None:
    regular, directory = tmp_path / "file", tmp_path / "dir"
    regular.write_text("x")
    directory.mkdir()
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(sock_path))
        assert host_path(sock_path, "Socket") == sock_path
    assert host_path(Path(os.devnull), "CharDevice") == Path(os.devnull)
    refused = {(regular, "Socket"): "is not a socket file", (regular, "CharDevice"): "is not a character device",
               (Path(os.devnull), "BlockDevice"): "is not a block device", (regular, "Directory"): "is not a directory",
               (directory, "File"): "is not a file", (directory, "FileOrCreate"): "is not a file",
               (regular, "DirectoryOrCreate"): "File exists|is not a directory",
               (tmp_path / "none", "Socket"): "none is not a socket file"}
    for (path, wanted), message in refused.items():
        with pytest.raises((VolumeError, OSError), match=message):
            host_path(path, wanted)
    assert host_path(tmp_path / "new" / "f", "FileOrCreate").is_file()
    assert host_path(tmp_path / "anything", "") == tmp_path / "anything"  # no type: no check
