"""copy_hashing of big files: several readers in flight, written and hashed in order, whatever the size, and
stopping, failing or ending early without a thread or a wrong byte left behind. Chunks are made small here
(4 KiB) so that many chunks, windows and reader turns happen on a few hundred KiB."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.runtime import copying

CHUNK = 4096


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copying, "DIRECT_CHUNK", CHUNK)
    monkeypatch.setattr(copying, "OVERLAP_MIN", CHUNK)
    monkeypatch.setattr(copying, "SMALL", 0)  # no file is read in one go


def _copy(src: Path, dst: Path, **kwargs: object) -> str:
    buffer = copying.direct_buffer()
    try:
        return copying.copy_hashing(src, [(dst, False)], buffer=buffer, keep_stat=False, **kwargs)  # type: ignore[arg-type]
    finally:
        buffer.close()


@settings(max_examples=40, deadline=None)
@given(size=st.one_of(st.integers(CHUNK, 3 * copying.WINDOW * CHUNK),
                      st.sampled_from([CHUNK, CHUNK + 1, 2 * CHUNK - 1, copying.WINDOW * CHUNK,
                                       copying.WINDOW * CHUNK + 1, 40 * CHUNK])))
def test_a_big_file_arrives_whole_and_in_order_with_its_hash(tmp_path_factory: pytest.TempPathFactory,
                                                             size: int) -> None:
    tmp = tmp_path_factory.mktemp("copy")
    data = os.urandom(size)
    (tmp / "src").write_bytes(data)
    before = threading.active_count()
    assert _copy(tmp / "src", tmp / "dst") == xxhash.xxh3_128_hexdigest(data)
    assert (tmp / "dst").read_bytes() == data
    assert threading.active_count() == before, "every reader thread ended"


def test_a_limit_copies_only_the_first_bytes(tmp_path: Path) -> None:
    data = os.urandom(10 * CHUNK + 123)
    (tmp_path / "src").write_bytes(data)
    limit = 7 * CHUNK + 5
    assert _copy(tmp_path / "src", tmp_path / "dst", limit=limit) == xxhash.xxh3_128_hexdigest(data[:limit])
    assert (tmp_path / "dst").read_bytes() == data[:limit]


def test_a_file_shorter_than_asked_ends_the_copy_at_its_end(tmp_path: Path) -> None:
    """`limit` past the end stands for a file truncated while it was copied: what was there is copied, and
    the hash says so (the caller compares it with the one expected)."""
    data = os.urandom(5 * CHUNK + 77)
    (tmp_path / "src").write_bytes(data)
    assert _copy(tmp_path / "src", tmp_path / "dst", limit=12 * CHUNK) == xxhash.xxh3_128_hexdigest(data)
    assert (tmp_path / "dst").read_bytes() == data


def test_a_stopped_copy_raises_and_leaves_no_reader_behind(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(os.urandom(50 * CHUNK))
    stop = threading.Event()
    stop.set()
    before = threading.active_count()
    with pytest.raises(copying.Stopped):
        _copy(tmp_path / "src", tmp_path / "dst", stop=stop)
    assert threading.active_count() == before


def test_a_read_error_in_a_reader_reaches_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").write_bytes(os.urandom(30 * CHUNK))
    real = os.preadv

    def failing(fd: int, buffers: list, offset: int) -> int:
        if offset == 17 * CHUNK:
            raise OSError(5, "Input/output error")
        return real(fd, buffers, offset)

    monkeypatch.setattr(copying.os, "preadv", failing)
    before = threading.active_count()
    with pytest.raises(OSError, match="Input/output error"):
        _copy(tmp_path / "src", tmp_path / "dst")
    assert threading.active_count() == before
