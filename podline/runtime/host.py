"""The `host` container runtime: run the command directly on this machine; the image is only recorded.

There is no mount namespace, so volume paths are *mapped* instead of mounted: every occurrence of a
volumeMount's `mountPath` at a path boundary in command, args, env values and workingDir is rewritten to
the host directory behind the volume (longest mountPath first). The container also gets
`PODLINE_MOUNT_<VOLUME>` (upper-case, `-` → `_`) naming that directory. Paths a program builds at run time
from other pieces are not rewritten; use a real runtime (bwrap, apptainer) when that matters.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HOST_ENV_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR")


class StartError(Exception):
    """The container could not be started (kubelet reports StartError, exit code 128)."""


@dataclass
class PathMapper:
    mounts: list[tuple[str, str]]  # (mountPath, host path)

    def __post_init__(self) -> None:
        self.mounts.sort(key=lambda m: len(m[0]), reverse=True)
        if self.mounts:
            alternatives = "|".join(re.escape(m[0].rstrip("/") or "/") for m in self.mounts)
            self._pattern: re.Pattern[str] | None = re.compile(
                rf"(?<![\w.\-/])({alternatives})(?=$|[/\s'\";:,=)}}\]])")
            self._lookup = {m[0].rstrip("/") or "/": m[1] for m in self.mounts}
        else:
            self._pattern = None

    def map(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._lookup[m.group(1)], text)


def container_argv(container: dict[str, Any]) -> list[str]:
    """Without an image there is no ENTRYPOINT/CMD: the command is `command + args`, or `args` alone."""
    argv = list(container["command"]) + list(container["args"])
    if not argv:
        raise StartError("no command given and the host runtime has no image ENTRYPOINT to fall back on")
    return argv


def mount_table(container: dict[str, Any], volume_paths: dict[str, Path]) -> list[tuple[str, str]]:
    table = []
    for mount in container["mounts"]:
        host = volume_paths[mount["volume"]]
        if mount.get("subPath"):
            host = host / mount["subPath"]
            host.mkdir(parents=True, exist_ok=True)
        table.append((mount["mountPath"], str(host)))
    return table


def base_env(pod: dict[str, Any]) -> dict[str, str]:
    """What a container inherits from its host: basics, and inside an allocation Slurm's own variables."""
    env = {k: v for k, v in os.environ.items() if k in HOST_ENV_PASSTHROUGH or k.startswith("SLURM_")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOSTNAME"] = pod["name"]
    return env


def spawn(container: dict[str, Any], pod: dict[str, Any], volume_paths: dict[str, Path], rundir: Path,
          log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start one container process in its own process group (so it can be signalled as a whole)."""
    table = mount_table(container, volume_paths)
    mapper = PathMapper(table)
    argv = [mapper.map(a) for a in container_argv(container)]
    env = base_env(pod)
    for mount in container["mounts"]:
        key = "PODLINE_MOUNT_" + re.sub(r"[^A-Za-z0-9]", "_", mount["volume"]).upper()
        env[key] = str(volume_paths[mount["volume"]])
    env.update({k: mapper.map(v) for k, v in container["env"].items()})
    if container.get("workingDir"):
        cwd = Path(mapper.map(container["workingDir"]))
        if any(str(cwd).startswith(host) for _, host in table):
            cwd.mkdir(parents=True, exist_ok=True)
    else:
        cwd = rundir / "cwd"
        cwd.mkdir(exist_ok=True)
    try:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, process_group=0, close_fds=True)
    except OSError as exc:
        raise StartError(f"{argv[0]}: {exc.strerror or exc}") from None
