"""What every container runtime shares, and the one place a container process is started.

A runtime (`host`, `bwrap`, `apptainer`) is a pure function from a `Request` (the resolved container,
its mounts, its prepared image) to a `Launch`: the exact argv, environment and working directory of the
host process. Keeping that pure lets the argv be pinned by unit tests even where the runtime binary is
not installed (Apptainer here). Starting the process is common to all: its own process group, so the
pod runner can signal the container and everything it started as one.

Kubernetes' rule for command/args over the image's ENTRYPOINT/CMD lives here too, so every runtime
applies it the same way (HPK users lost ENTRYPOINT semantics under Singularity; ours keep them).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from podline.images.model import ImageConfig, PreparedImage
from podline.runtime.attempt_marks import inherited

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StartError(Exception):
    """The container could not be started (kubelet reports StartError, exit code 128)."""


@dataclass(frozen=True)
class Mount:
    target: str        # path inside the container
    source: Path       # directory (or file) on the host
    read_only: bool = False
    fd: int | None = None  # an O_PATH descriptor of `source` when it lies inside a volume a container can change


@dataclass(frozen=True)
class Request:
    container: dict[str, Any]          # resolved: env final, $(VAR) expanded
    pod: dict[str, Any]                # name, namespace, uid
    mounts: tuple[Mount, ...]
    rundir: Path
    image: PreparedImage | None = None
    shm: Path | None = None            # the pod's shared /dev/shm, when the runtime isolates /dev
    host_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    fds: tuple[int, ...] = ()  # descriptors the argv names (bwrap's --bind-fd), inherited by the process


def command_line(container: Mapping[str, Any], config: ImageConfig | None) -> list[str]:
    """Kubernetes' table: command replaces ENTRYPOINT and drops CMD; args alone replace CMD."""
    command, args = list(container["command"]), list(container["args"])
    entrypoint = list(config.entrypoint) if config else []
    cmd = list(config.cmd) if config else []
    if command:
        argv = command + args
    elif args:
        argv = entrypoint + args
    else:
        argv = entrypoint + cmd
    if not argv:
        raise StartError("no command specified: the container has no command/args and its image no "
                         "ENTRYPOINT/CMD")
    return argv


def image_env(config: ImageConfig | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.env if config else ():
        key, _, value = item.partition("=")
        if key:
            env[key] = value
    return env


def slurm_env(host_env: Mapping[str, str]) -> dict[str, str]:
    """Inside an allocation a container still sees Slurm's own variables (MPI launchers need them), and the
    node's name as slurmd gives it (SLURMD_NODENAME: job scripts use it)."""
    return {k: v for k, v in host_env.items() if k.startswith(("SLURM_", "SLURMD_"))}


def container_environment(request: Request) -> dict[str, str]:
    """What a contained process starts with: image ENV, then HOSTNAME and Slurm's, then the manifest's."""
    env = image_env(request.image.config if request.image else None)
    env.setdefault("PATH", DEFAULT_PATH)
    env["HOSTNAME"] = request.pod["name"]
    env.update(slurm_env(request.host_env))
    env.update(request.container["env"])
    env.update(inherited(request.host_env))  # the attempt's mark, also past a clean environment (apptainer)
    return env


PASSWD_LIMIT = 1 << 20  # an image's /etc/passwd beyond this is not read (HOME falls back to "/")
MAX_LINKS = 40


def with_image_home(env: dict[str, str], rootfs: Path, uid: int | None = None) -> dict[str, str]:
    """`env` with HOME set as runc/crun set it when neither the image's ENV nor the manifest did.

    Docker, containerd and Kubernetes give every container a HOME: the home directory of its user (uid)
    in the image's /etc/passwd, else "/". Programs that write ~/.cache or read ~/.config break without it.
    Only runtimes that run the image's rootfs themselves (bwrap) want this; Apptainer sets HOME its own way.
    """
    if "HOME" not in env:
        env["HOME"] = image_home(rootfs, os.getuid() if uid is None else uid)
    return env


def image_home(rootfs: Path, uid: int) -> str:
    """The home directory of `uid` in the image's etc/passwd, or "/" when there is none."""
    data = read_in_root(rootfs, "/etc/passwd", PASSWD_LIMIT)
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[2] == str(uid):
            return fields[5] or "/"
    return "/"


def read_in_root(rootfs: Path, path: str, limit: int) -> bytes | None:
    """A regular file of the image read whole (at most `limit` bytes), or None if it is missing or odd.

    Symlinks inside the image are resolved against the image's root (as inside the container): each
    component is opened relative to its directory with O_NOFOLLOW and a link's target is re-walked from
    the rootfs, so no link can lead the host out of the rootfs.
    """
    fds = [os.open(rootfs, os.O_PATH | os.O_DIRECTORY)]
    try:
        parts = [p for p in path.split("/") if p]
        links = 0
        while parts:
            part = parts.pop(0)
            if part in (".", ".."):
                if part == ".." and len(fds) > 1:
                    os.close(fds.pop())
                continue
            try:
                target = os.readlink(part, dir_fd=fds[-1])
            except FileNotFoundError:
                return None
            except OSError:  # not a link (EINVAL), or not a directory on the way
                target = None
            if target is not None:
                links += 1
                if links > MAX_LINKS:
                    return None
                if target.startswith("/"):
                    while len(fds) > 1:
                        os.close(fds.pop())
                parts = [p for p in target.split("/") if p] + parts
                continue
            if parts:
                try:
                    fds.append(os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY, dir_fd=fds[-1]))
                except OSError:
                    return None
                continue
            try:
                fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=fds[-1])
            except OSError:
                return None
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    return None
                return handle.read(limit)
        return None
    finally:
        for fd in fds:
            os.close(fd)


def open_inside(start: Path | int, relative: str, create: bool) -> int:
    """An O_PATH descriptor of `relative` below `start`, never following a symbolic link on the way.

    Volumes are writable by containers: a container may leave `sub -> /etc` behind for a later
    `subPath: sub` (Kubernetes' CVE-2017-1002101). Each component is opened relative to the previous one
    with O_NOFOLLOW; missing directories are created when `create`. The caller closes the descriptor.
    """
    fd = os.open(start, os.O_PATH | os.O_DIRECTORY) if not isinstance(start, int) else os.dup(start)
    try:
        parts = [p for p in relative.split("/") if p not in ("", ".")]
        for i, part in enumerate(parts):
            if part == "..":
                raise StartError(f"{relative}: '..' is not allowed")
            last = i == len(parts) - 1
            try:
                nxt = os.open(part, os.O_PATH | os.O_NOFOLLOW | (0 if last else os.O_DIRECTORY), dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise StartError(f"{relative}: {part} does not exist") from None
                os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY, dir_fd=fd)
            except NotADirectoryError:
                raise StartError(f"{relative}: {part} is a symbolic link or not a directory inside the volume; "
                                 "refusing to follow it") from None
            os.close(fd)
            fd = nxt
            mode = os.fstat(fd).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise StartError(f"{relative}: {part} is a symbolic link or special file inside the volume; "
                                 "refusing to follow it")
        return fd
    except BaseException:
        os.close(fd)
        raise


def volume_mounts(container: Mapping[str, Any], volume_paths: Mapping[str, Path]) -> tuple[Mount, ...]:
    """The container's volumeMounts as host sources; a subPath is opened safely inside its volume (and
    created as a directory when missing) and handed over as a descriptor. The caller closes the fds."""
    mounts: list[Mount] = []
    try:
        for mount in container["mounts"]:
            source = volume_paths[mount["volume"]]
            fd = None
            if mount.get("subPath"):
                fd = open_inside(source, mount["subPath"], create=True)
                source = source / mount["subPath"]
            mounts.append(Mount(mount["mountPath"], source, bool(mount.get("readOnly")), fd))
    except BaseException:
        close_fds(mounts)
        raise
    return tuple(mounts)


def close_fds(mounts: Iterable[Mount]) -> None:
    for mount in mounts:
        if mount.fd is not None:
            os.close(mount.fd)


def env_key(volume: str) -> str:
    return "PODLINE_MOUNT_" + re.sub(r"[^A-Za-z0-9]", "_", volume).upper()


def under(path: str, roots: Iterable[str]) -> bool:
    """Is `path` one of `roots` or inside one of them (component-wise, not by string prefix)?"""
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def spawn(launch: Launch, log: IO[bytes], stdout: int | None = None) -> subprocess.Popen[bytes]:
    """Start one container process in its own process group (so it can be signalled as a whole); stdout
    goes to the log too, unless `stdout` (subprocess.PIPE) asks for it apart. It carries the runner's attempt
    mark, whatever the runtime and the manifest say (`runtime.attempt_marks`)."""
    try:
        env = {**launch.env, **inherited(os.environ)}
        return subprocess.Popen(launch.argv, env=env, cwd=launch.cwd, stdin=subprocess.DEVNULL,
                                stdout=log if stdout is None else stdout,
                                stderr=log if stdout is not None else subprocess.STDOUT, process_group=0,
                                close_fds=True, pass_fds=launch.fds)
    except OSError as exc:
        if launch.cwd is not None and not os.path.isdir(launch.cwd):  # Popen says so as if argv[0] were missing
            raise StartError(f"workingDir {launch.cwd}: no such directory") from None
        raise StartError(f"{launch.argv[0]}: {exc.strerror or exc}") from None
