"""Which links an HTTP listing takes as below its source when the source is the server root (its path "/"),
or a base path that is not in normal form: the base itself and its parents are no file, and are skipped
rather than failing the listing."""

from __future__ import annotations

import pytest

from podline.runtime.remote import _below


@pytest.mark.parametrize(("base", "link"), [
    ("http://h/", "http://h/"),  # nginx's `../` on the root page: urljoin clamps it to the root
    ("http://h", "http://h/"),
    ("http://h/", "http://h"),
    ("http://h/data/", "http://h/data/"),
    ("http://h/data/", "http://h/data"),
    ("http://h/data/", "http://h/"),
    ("http://h/data/", "http://h/database/x"),
    ("http://h/data/a/../", "http://h/"),
])
def test_the_base_and_what_is_above_it_are_skipped(base: str, link: str) -> None:
    assert _below(base, link) is None


@pytest.mark.parametrize(("base", "link", "rel"), [
    ("http://h/", "http://h/a.txt", "a.txt"),
    ("http://h/", "http://h/sub/", "sub"),
    ("http://h/", "http://h/sub/b%20c.txt", "sub/b c.txt"),
    ("http://h/data/a/../", "http://h/data/x", "x"),  # the base normalised as the link is
])
def test_links_strictly_below_the_base_keep_their_path(base: str, link: str, rel: str) -> None:
    assert _below(base, link) == rel

