"""`$PODLINE_HOME/config.yaml`: named contexts (backend, runtime, Slurm placement), kubeconfig-style."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from podline.api.base import Model, check_dns_label
from podline.api.errors import ManifestError, format_path

TIME_LIMIT = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^UNLIMITED$|^INFINITE$", re.ASCII)


def slurm_seconds(value: str | None) -> int | None:
    """Seconds in a Slurm time ("30" minutes, "30:00" min:sec, "1:00:00", "2-0", "2-00:30", "2-00:00:00"), as
    sbatch --time and squeue %L write it; None for unlimited, unset or unreadable."""
    text = (value or "").strip()
    if not TIME_LIMIT.fullmatch(text) or text in ("UNLIMITED", "INFINITE"):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:  # minutes[:seconds]
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds
REGISTRY_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$", re.ASCII)
SLURM_NAME = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")


NOT_IN_SHARED_DIR = "\n\r%\\"


class Context(Model):
    backend: Literal["local", "slurm"] = "local"
    runtime: Literal["host", "bwrap", "apptainer"] = "host"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    shared_dir: str | None = None
    scratch_dir: str | None = None
    time_limit: str | None = None
    image_cache: str | None = None
    registry_auth_file: str | None = None
    insecure_registries: list[str] = Field(default_factory=list)

    @field_validator("runtime", mode="before")
    @classmethod
    def _singularity(cls, value: object) -> object:
        """`singularity` is the same runtime (SingularityCE's binary is used when apptainer is not installed)."""
        return "apptainer" if value == "singularity" else value

    @field_validator("partition", "account", "qos")
    @classmethod
    def _slurm_name(cls, value: str | None) -> str | None:
        if value is not None and not SLURM_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid Slurm name")
        return value

    @field_validator("shared_dir", "scratch_dir", "image_cache", "registry_auth_file")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "\0" in value):
            raise ValueError(f"{value!r} must be an absolute path")
        return value

    @field_validator("shared_dir")
    @classmethod
    def _sbatch_safe(cls, value: str | None) -> str | None:
        """The shared directory ends up in #SBATCH lines, where `--output` is a Slurm filename pattern."""
        bad = sorted({c for c in value or "" if c in NOT_IN_SHARED_DIR})
        if bad:
            raise ValueError(f"{value!r} must not contain {' or '.join(map(repr, bad))} (Slurm would read it as "
                             "the end of a line or part of a filename pattern; %% is no escape there)")
        return value

    @field_validator("insecure_registries")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not REGISTRY_HOST.fullmatch(host):
                raise ValueError(f"{host!r} is not a registry host[:port]")
        return value

    @field_validator("time_limit")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and not TIME_LIMIT.fullmatch(value):
            raise ValueError(f"{value!r} is not a Slurm time limit (e.g. 30, 1:00:00, 2-00:00:00)")
        return value


class Config(Model):
    current_context: str = "local"
    contexts: dict[str, Context] = Field(default_factory=lambda: {"local": Context()})

    @field_validator("contexts")
    @classmethod
    def _names(cls, value: dict[str, Context]) -> dict[str, Context]:
        for name in value:
            check_dns_label(name, "context name")
        return value


def config_path(home: Path) -> Path:
    return home / "config.yaml"


def shared_dir(home: Path, ctx: Context | None) -> Path:
    """A context's shared directory (seen by every node): its own, else `$PODLINE_HOME/shared`."""
    return Path(ctx.shared_dir) if ctx is not None and ctx.shared_dir else home / "shared"


def image_store(home: Path, ctx: Context | None) -> Path:
    """Where `podline image load` keeps images for a context (see podline.images.store)."""
    return shared_dir(home, ctx) / "images" / "store"


def load_config(home: Path) -> Config:
    path = config_path(home)
    if not path.exists():
        return Config()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        config = Config.model_validate(data)
    except yaml.YAMLError as exc:
        raise ManifestError(str(path), f"malformed YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ManifestError(str(path), first["msg"].removeprefix("Value error, "), format_path(first["loc"])) from None
    config.contexts.setdefault("local", Context())
    return config


def save_config(home: Path, config: Config) -> None:
    tmp = config_path(home).with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config.model_dump(by_alias=True, exclude_none=True), sort_keys=False))
    tmp.replace(config_path(home))
