"""`podline image load | ls | rm` and pods that run a loaded image by its plain name, in real bwrap containers
on the local backend (the images are built offline: a docker-archive and an OCI layout of busybox)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.imagebuild import busybox_image, busybox_layer, docker_archive, image_config

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None or subprocess.run(
    ["bwrap", "--ro-bind", "/", "/", "true"], capture_output=True).returncode != 0,
    reason="bubblewrap is not installed or cannot create namespaces here (apt-get install bubblewrap)")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store-images")
    docker_archive(root / "tools.tar", [busybox_layer()], image_config(cmd=["sh"], env=["PATH=/bin", "FROM=docker"]),
                   repo_tag="lab/tools:1.36")
    busybox_image(root / "layout", tag="v2", env=["PATH=/bin", "FROM=oci"])
    return root


def pod(name: str, image: str) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers: [{{name: main, image: "{image}", command: [sh, -c, 'echo "$FROM image"']}}]
"""


def test_loaded_images_run_by_their_plain_names_and_go_with_rm(cli: Cli, images: Path) -> None:
    cli("config", "set-context", "local", "--runtime", "bwrap")
    assert cli("image", "load", str(images / "tools.tar")).stdout == "image/lab/tools:1.36 loaded\n"
    assert cli("image", "load", str(images / "layout"), "--name", "analysis:2").stdout == \
        "image/analysis:2 loaded\n"
    listed = [line.split()[:2] for line in cli("image", "ls").stdout.splitlines()[1:]]
    assert listed == [["analysis:2", "oci-archive"], ["lab/tools:1.36", "docker-archive"]]

    cli.apply(pod("fromdocker", "lab/tools:1.36") + "---\n" + pod("fromoci", "analysis:2"))
    for name, origin in (("fromdocker", "docker"), ("fromoci", "oci")):
        assert cli.wait(f"pod/{name}", "phase=Succeeded").returncode == 0, cli("describe", "pod", name).stdout
        assert cli("logs", name).stdout == f"{origin} image\n"
        assert "@sha256:" in cli.json("pod", name)["status"]["containerStatuses"][0]["imageID"]

    store = cli.home / "shared" / "images" / "store" / "archives"
    assert len(list(store.glob("*.tar"))) == 2
    assert cli("image", "rm", "analysis:2").stdout == 'image "analysis:2" removed\n'
    assert [line.split()[0] for line in cli("image", "ls").stdout.splitlines()[1:]] == ["lab/tools:1.36"]
    assert len(list(store.glob("*.tar"))) == 1, "the archive goes with its last name"
    missing = cli("image", "rm", "analysis:2", check=False)
    assert missing.returncode == 1 and "'analysis:2' not found in the image store" in missing.stderr


@pytest.mark.parametrize(("args", "problem"), [
    (["/nonexistent/image.tar"], "/nonexistent/image.tar: no such file or directory"),
    (["NOTE"], "not a readable image archive"),
    (["TOOLS", "--name", "registry.example.org/x:1"], "give a plain NAME[:TAG]"),
    (["LAYOUT"], "the image carries no name: give one with --name NAME:TAG"),
])
def test_bad_loads_are_exit_2_and_store_nothing(cli: Cli, images: Path, tmp_path: Path, args: list[str],
                                                problem: str) -> None:
    (tmp_path / "note.txt").write_text("not an image\n")
    paths = {"NOTE": str(tmp_path / "note.txt"), "TOOLS": str(images / "tools.tar"), "LAYOUT": str(images / "layout")}
    done = cli("image", "load", *[paths.get(a, a) for a in args], check=False)
    assert done.returncode == 2 and problem in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert cli("image", "ls").stdout.splitlines()[1:] == []
    assert not list((cli.home / "shared" / "images" / "store").glob("archives/*.tar"))
