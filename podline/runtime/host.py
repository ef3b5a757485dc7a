"""The `host` container runtime: run the command directly on this machine; the image is only recorded.

There is no mount namespace, so volume paths are *mapped* instead of mounted: every occurrence of a
volumeMount's `mountPath` at a path boundary in command, args, env values and workingDir is rewritten to
the host directory behind the volume (longest mountPath first). The container also gets
`PODLINE_MOUNT_<VOLUME>` (upper-case, `-` → `_`) naming that directory. Paths a program builds at run time
from other pieces are not rewritten; use a real runtime (bwrap, apptainer) when that matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from podline.runtime.launch import Launch, Request, StartError, command_line, env_key, slurm_env, under

HOST_ENV_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR")


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


def base_env(request: Request) -> dict[str, str]:
    """What a host process inherits: basics, and inside an allocation Slurm's own variables."""
    env = {k: v for k, v in request.host_env.items() if k in HOST_ENV_PASSTHROUGH}
    env.update(slurm_env(request.host_env))
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOSTNAME"] = request.pod["name"]
    return env


def launch(request: Request) -> Launch:
    """Without an image there is no ENTRYPOINT/CMD: the command is `command + args`, or `args` alone."""
    container = request.container
    if not container["command"] and not container["args"]:
        raise StartError("no command given and the host runtime has no image ENTRYPOINT to fall back on")
    table = [(m.target, str(m.source)) for m in request.mounts]
    mapper = PathMapper(list(table))
    argv = [mapper.map(a) for a in command_line(container, None)]
    env = base_env(request)
    for spec, mount in zip(container["mounts"], request.mounts, strict=True):  # volume_mounts keeps the order
        env[env_key(spec["volume"])] = str(mount.source)
    env.update({k: mapper.map(v) for k, v in container["env"].items()})
    if container.get("workingDir"):
        cwd = Path(mapper.map(container["workingDir"]))
        if under(str(cwd), [host for _, host in table]):
            cwd.mkdir(parents=True, exist_ok=True)
    else:
        cwd = request.rundir / "cwd"
        cwd.mkdir(exist_ok=True)
    return Launch(argv, env, cwd)

