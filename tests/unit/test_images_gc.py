"""The image cache's garbage collection (the kubelet's rule): least recently used entries go while the disk is
over the high mark, never one in use. "In use" is real here: another process that prepared the image and
still runs holds it (a shared flock), as a pod runner does for its containers' lifetime."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from podline.images import cache as cache_module
from podline.images import prepare
from podline.images.cache import ImageCache
from tests import imagebuild as ib

ROOT = Path(__file__).resolve().parents[2]
TAGS = ("a", "b", "c")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "layout"
    for i, tag in enumerate(TAGS):
        ib.add_image(path, [ib.busybox_layer(), ib.padded_layer(1, seed=i, name=f"pad{tag}")], tag=tag)
    return path


def fill(layout: Path, cache: Path) -> dict[str, str]:
    """Prepare every image, then let go of them (this test process is not running any)."""
    digests = {tag: prepare(f"oci:{layout}:{tag}", "IfNotPresent", cache).digest for tag in TAGS}
    for digest in digests.values():
        ImageCache(cache).release(digest)
    return digests


def used_at(cache: Path, digest: str, when: float) -> None:
    os.utime(ImageCache(cache).entry(digest) / cache_module.USED_MARK, (when, when))


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from podline.images import prepare
    prepare(sys.argv[1], "IfNotPresent", Path(sys.argv[2]))
    print("holding", flush=True)
    time.sleep(120)
""")


def test_unused_entries_go_and_one_a_running_process_holds_stays(layout: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    digests = fill(layout, cache)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, f"oci:{layout}:b", str(cache)], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        removed = ImageCache(cache).collect(high=0, low=0)
        assert sorted(removed) == sorted([digests["a"], digests["c"]])
        assert [p.name for p in (cache / "sha256").iterdir()] == [digests["b"].split(":")[1]]
        assert [p.name for p in (cache / "tmp").rglob("*")] == ["gc"], "collected entries leave nothing behind"
    finally:
        holder.kill()
        holder.wait()
    assert ImageCache(cache).collect(high=0, low=0) == [digests["b"]], "once its process is gone, it goes too"
    again = prepare(f"oci:{layout}:a", "IfNotPresent", cache)  # and a collected image is simply pulled again
    assert again.pulled and (again.rootfs / "bin/busybox").is_file()


def test_least_recently_used_go_first_and_only_down_to_the_low_mark(layout: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    digests = fill(layout, cache)
    for age, tag in enumerate(("c", "a", "b")):  # b used last, c first
        used_at(cache, digests[tag], 1_700_000_000 + age)

    def usage(_: Path) -> tuple[int, int]:  # 100 units of disk, 30 per entry left, 10 of other use
        return 10 + 30 * len(list((cache / "sha256").iterdir())), 100

    assert ImageCache(cache).collect(usage, high=100, low=50) == [], "not over the high mark: nothing goes"
    assert ImageCache(cache).collect(usage, high=90, low=50) == [digests["c"], digests["a"]]  # 100 -> 70 -> 40


def test_a_pull_over_the_high_mark_collects_but_keeps_what_this_process_runs(layout: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    digests = fill(layout, cache)
    kept = prepare(f"oci:{layout}:a", "IfNotPresent", cache)  # held again: this process "runs" it
    ImageCache(cache).collect(high=0, low=0)  # only a remains
    monkeypatch.setattr(cache_module, "GC_HIGH", 0.0)
    monkeypatch.setattr(cache_module, "GC_LOW", 0.0)
    pulled = prepare(f"oci:{layout}:b", "IfNotPresent", cache)  # a pull: collection runs after it
    assert pulled.pulled and {p.name for p in (cache / "sha256").iterdir()} == {
        digests["a"].split(":")[1], digests["b"].split(":")[1]}, "both are held by this process"
    assert kept.rootfs.is_dir() and pulled.rootfs.is_dir()


def test_hold_of_an_entry_collected_meanwhile_says_so(layout: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    digests = fill(layout, cache)
    ImageCache(cache).collect(high=0, low=0)
    assert ImageCache(cache).hold(digests["a"]) is False


def test_a_builder_is_never_stuck_behind_a_holder_of_its_own_process(layout: Path, tmp_path: Path) -> None:
    """Threads of one runner: one took the image into use while another waited to build it. The build lock and
    the use lock are separate files (one file deadlocked here: flock conflicts across open files of one process)."""
    import threading

    image = prepare(f"oci:{layout}:a", "IfNotPresent", tmp_path / "cache")  # held by this process now
    done = threading.Event()

    def build_lock() -> None:
        with ImageCache(tmp_path / "cache").lock(image.digest):
            done.set()

    threading.Thread(target=build_lock, daemon=True).start()
    assert done.wait(10), "the build lock waited for this process's own hold"
