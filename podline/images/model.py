"""What a prepared image is: its rootfs on disk plus the parts of the image config a runtime applies.

Kept apart from the pulling and unpacking code so runtimes can import these types without pulling in
the HTTP client or the unpacker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ImageConfig:
    """The OCI/Docker image config's `config` object, reduced to what a container runtime applies."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "KEY=VALUE" strings, as in the image config
    working_dir: str = ""
    user: str = ""

    @classmethod
    def from_image_config(cls, raw: bytes | dict[str, Any] | None) -> ImageConfig:
        """Read an image config blob (the JSON whose digest the manifest's `config` names)."""
        if not raw:
            return cls()
        doc = json.loads(raw) if isinstance(raw, bytes | str) else raw
        cfg = (doc.get("config") or doc.get("Config") or {}) if isinstance(doc, dict) else {}
        if not isinstance(cfg, dict):
            return cls()

        def strings(key: str) -> tuple[str, ...]:
            value = cfg.get(key)
            if isinstance(value, str):  # tolerated: some tools write a bare string
                return (value,)
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        return cls(
            entrypoint=strings("Entrypoint"),
            cmd=strings("Cmd"),
            env=strings("Env"),
            working_dir=str(cfg.get("WorkingDir") or ""),
            user=str(cfg.get("User") or ""),
        )


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to run: an unpacked rootfs in the node-local cache (or a rootfs directory in place)."""

    reference: str  # as given
    digest: str  # "sha256:<hex>" manifest digest ("" for a plain rootfs directory)
    rootfs: Path  # unpacked root filesystem; containers must treat it as read-only
    config: ImageConfig
    pulled: bool  # True when this call fetched/unpacked; False on a cache hit
    seconds: float  # time spent preparing (pull + unpack, or lookup)
