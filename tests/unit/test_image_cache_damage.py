"""A damaged image cache entry is made again, not trusted (helper-79: an empty config.json lost the image's
ENTRYPOINT without a word; a truncated one crashed the runner; the cache does not fsync, so a power loss can
leave either)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from podline.images.prepare import _sound_config

CONFIG = json.dumps({"config": {"Entrypoint": ["echo", "E"], "Cmd": ["C"]}}).encode()


def entry(tmp_path: Path, config: bytes, named: bytes = CONFIG) -> Path:
    tmp_path.joinpath("config.json").write_bytes(config)
    manifest = {"schemaVersion": 2, "config": {"digest": "sha256:" + hashlib.sha256(named).hexdigest()}}
    tmp_path.joinpath("manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_a_sound_entry_gives_its_config(tmp_path: Path) -> None:
    config = _sound_config(entry(tmp_path, CONFIG))
    assert config is not None and config.entrypoint == ("echo", "E") and config.cmd == ("C",)


@pytest.mark.parametrize("config", [b"", CONFIG[:20], b"[]", CONFIG.replace(b"E", b"X")],
                         ids=["empty", "truncated", "not-an-object", "other-bytes"])
def test_a_damaged_config_is_no_config(tmp_path: Path, config: bytes) -> None:
    assert _sound_config(entry(tmp_path, config)) is None


def test_a_missing_manifest_is_damage_too(tmp_path: Path) -> None:
    tmp_path.joinpath("config.json").write_bytes(CONFIG)
    assert _sound_config(tmp_path) is None
