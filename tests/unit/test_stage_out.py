"""Stage-out publishes outputs without following what the steps left (links) and without deleting what the
destination held; checkpoints "every N steps" count steps side by side; `/` is no destination."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from podline.api.errors import ManifestError
from podline.api.loader import load_text
from podline.runtime.publish import UnsafeOutput, inside, publish
from podline.runtime.workspace import Workspace


def never() -> None:
    """The attempt was not given up."""


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "host-secret.txt"
    path.write_text("HOST SECRET\n")
    return path


def test_an_output_that_is_a_link_is_published_as_the_link_not_what_it_points_to(tmp_path: Path,
                                                                                  secret: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "out").symlink_to(secret)
    dest = tmp_path / "dest" / "out"
    publish(inside(ws, "out"), dest, never)
    assert dest.is_symlink() and os.readlink(dest) == str(secret)
    assert not any(p.is_file() and not p.is_symlink() for p in (tmp_path / "dest").rglob("*"))


def test_links_inside_an_output_directory_stay_links_and_special_files_are_left_out(tmp_path: Path,
                                                                                     secret: Path) -> None:
    out = tmp_path / "ws" / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "data").write_text("mine")
    (out / "leak").symlink_to(secret)
    (out / "hostdir").symlink_to(tmp_path)
    os.mkfifo(out / "pipe")  # a copy would block on it forever
    dest = tmp_path / "results"
    assert publish(out, dest, never) == 4
    assert (dest / "sub" / "data").read_text() == "mine"
    assert (dest / "leak").is_symlink() and (dest / "hostdir").is_symlink() and not (dest / "pipe").exists()


def test_a_link_on_the_way_out_of_the_workspace_is_refused(tmp_path: Path, secret: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "away").symlink_to(tmp_path)
    with pytest.raises(UnsafeOutput, match="leads out of the workspace"):
        inside(ws, f"away/{secret.name}")
    (ws / "here").mkdir()
    (ws / "alias").symlink_to(ws / "here")
    assert inside(ws, "alias/x") == ws / "alias" / "x"  # a link that stays inside is fine
    os.mkfifo(ws / "pipe")
    with pytest.raises(UnsafeOutput, match="not a regular file"):
        publish(ws / "pipe", tmp_path / "dest", never)


def test_a_destination_holding_files_is_merged_into_never_emptied(tmp_path: Path) -> None:
    out = tmp_path / "ws" / "out"
    (out / "run42").mkdir(parents=True)
    (out / "run42" / "hist.json").write_text("new")
    (out / "README").write_text("new readme")
    dest = tmp_path / "results"
    (dest / "run41").mkdir(parents=True)
    (dest / "run41" / "hist.json").write_text("old run")
    (dest / "README").write_text("old readme")
    publish(out, dest, never)
    assert (dest / "run41" / "hist.json").read_text() == "old run"  # not ours to delete
    assert (dest / "run42" / "hist.json").read_text() == "new" and (dest / "README").read_text() == "new readme"
    assert not [p for p in dest.rglob("*podline-tmp*")]


def test_a_new_or_empty_destination_receives_the_output_whole(tmp_path: Path) -> None:
    out = tmp_path / "ws" / "out"
    out.mkdir(parents=True)
    (out / "a").write_text("a")
    for dest in (tmp_path / "new" / "deep", tmp_path / "empty"):
        if dest.name == "empty":
            dest.mkdir()
        publish(out, dest, never)
        assert (dest / "a").read_text() == "a"


def test_an_empty_destination_directory_is_kept_with_its_mode(tmp_path: Path) -> None:
    """The user's directory (mode 2770 here; a mount point or one in a parent the user cannot write to, on
    Lustre) is filled, never replaced by a new one."""
    out = tmp_path / "ws" / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "a").write_text("a")
    dest = tmp_path / "results" / "run42"
    dest.mkdir(parents=True)
    os.chmod(dest, 0o2770)
    inode = dest.stat().st_ino
    os.chmod(dest.parent, 0o555)  # only run42/ is writable (root ignores this; the inode check does not)
    try:
        publish(out, dest, never)
    finally:
        os.chmod(dest.parent, 0o755)
    assert (dest / "sub" / "a").read_text() == "a"
    assert (dest.stat().st_ino, dest.stat().st_mode & 0o7777) == (inode, 0o2770)


def test_a_given_up_attempt_makes_nothing_visible(tmp_path: Path) -> None:
    out = tmp_path / "ws" / "out"
    out.mkdir(parents=True)
    (out / "a").write_text("a")

    def given_up() -> None:
        raise RuntimeError("given up")

    with pytest.raises(RuntimeError):
        publish(out, tmp_path / "dest", given_up)
    assert not (tmp_path / "dest").exists() and not list(tmp_path.glob(".dest.podline-tmp*"))


def test_every_n_steps_counts_steps_that_settle_together(tmp_path: Path) -> None:
    """a; b, c after a; d, e after b and c: checkpoints come after 1, 3 and 5 steps; with "every 2" L2 is due
    at 3 and 5 (counting `done % 2 == 0` it never was)."""
    plan = {"pod": {"uid": "u1"}, "dirs": {"scratch": str(tmp_path / "scratch"), "shared": str(tmp_path / "sh")},
            "workspace": {"medium": "Disk", "sizeLimit": None}, "checkpoint": {"nodeLocalEvery": 2, "sharedEvery": 2}}
    ws = Workspace(plan, 0, [].append, background_l2=False)
    ws.restore()
    saved = []
    for done in (["a"], ["a", "b", "c"], ["a", "b", "c", "d", "e"]):
        (ws.path / done[-1]).write_text(done[-1])
        ws.checkpoint(done, False)
        saved.append((ws.saved.get("L2", {}).get("seq"), ws.saved.get("L3", {}).get("seq")))
    assert saved == [(None, None), (2, 2), (3, 3)]


def test_the_root_is_no_destination() -> None:
    text = ("apiVersion: podline.io/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n"
            "  outputs: [{path: out, destination: /}]\n  steps: [{name: a, image: x, command: [sh]}]\n")
    with pytest.raises(ManifestError, match=r"spec.outputs\[0\].destination: must name a directory below '/'"):
        load_text(text, "bad.yaml")
