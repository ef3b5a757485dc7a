"""The `bwrap` container runtime: bubblewrap over an unpacked image rootfs, rootless.

What the container sees:
  /                  a fresh tmpfs (bubblewrap's new root) holding the image's top-level entries,
                     each bound read-only from the shared image cache (the cache must never change)
  /proc, /dev        its own; its own PID namespace and hostname (the pod name)
  /dev/shm           the pod's shared shm directory (all containers of a pod share it)
  /tmp               a private tmpfs, unless a volume is mounted there
  /sys               the host's, read-only (hwloc/MPI inside allocations read it)
  /etc/hosts, /etc/resolv.conf   the host's, read-only: the network is the host's, as with Apptainer
  volumes            bound at their mountPath (read-only when the mount says so)

A mount point under a read-only image directory cannot be created there, so that directory is rebuilt
on the tmpfs ("exploded"): an empty directory whose image children are bound one by one, leaving room
for the mount point. The image root is like a `readOnlyRootFilesystem` pod: writes outside volumes and
/tmp fail with EROFS (Apptainer's default, too). The image's USER is not applied: rootless containers
run as the calling user. Paths through symlinks inside the image (e.g. /var/run -> /run) are resolved
inside the rootfs, never on the host.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path

from podline.runtime.launch import Launch, Mount, Request, StartError, command_line, container_environment, under

HOST_FILES = ("/etc/hosts", "/etc/resolv.conf")
OWN_TOP = ("proc", "dev", "tmp", "sys")
MAX_LINKS = 40


def binary() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise StartError("runtime bwrap: the bwrap binary is not installed (Debian package bubblewrap)")
    return found


def resolve_in_root(rootfs: Path, path: str) -> str:
    """`path` inside the container with the image's symlinks followed, never leaving the rootfs."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        host = rootfs.joinpath(*done, part)
        if host.is_symlink():
            links += 1
            if links > MAX_LINKS:
                raise StartError(f"{path}: too many levels of symbolic links in the image")
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return "/" + "/".join(done)


def _ancestors(path: str) -> list[str]:
    out = []
    while path != "/":
        path = posixpath.dirname(path)
        out.append(path)
    return out


def rootfs_args(rootfs: Path, targets: list[str], wanted_dirs: list[str]) -> list[str]:
    """Bind the image read-only around `targets` (mount points) and create `wanted_dirs` if missing."""
    exploded = {a for t in targets + wanted_dirs for a in _ancestors(t)}
    exploded |= {posixpath.dirname(f) for f in HOST_FILES}
    skip = set(targets) | set(HOST_FILES)
    args: list[str] = []

    def walk(directory: str) -> None:
        host_dir = rootfs / directory.lstrip("/")
        try:
            entries = sorted(os.scandir(host_dir), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        for entry in entries:
            inside = posixpath.join(directory, entry.name)
            if (directory == "/" and entry.name in OWN_TOP) or inside in skip:
                continue
            if entry.is_symlink():
                args.extend(["--symlink", os.readlink(entry.path), inside])
            elif inside in exploded and entry.is_dir():
                args.extend(["--dir", inside])
                walk(inside)
            else:
                args.extend(["--ro-bind", entry.path, inside])
        for inside in sorted(exploded):
            if posixpath.dirname(inside) == directory and inside != "/" and not (rootfs / inside.lstrip("/")).exists():
                args.extend(["--dir", inside])
                walk(inside)

    walk("/")
    for wanted in wanted_dirs:
        if not (rootfs / wanted.lstrip("/")).exists() and wanted not in targets and not under(wanted, targets):
            args.extend(["--dir", wanted])
    return args


def _mount_args(mounts: list[Mount], shm: Path | None) -> list[str]:
    args = ["--proc", "/proc", "--dev", "/dev", "--ro-bind", "/sys", "/sys"]
    if not any(m.target == "/tmp" for m in mounts):
        args.extend(["--tmpfs", "/tmp"])
    if shm is not None:
        args.extend(["--bind", str(shm), "/dev/shm"])
    for host_file in HOST_FILES:
        if os.path.exists(host_file):
            args.extend(["--ro-bind", host_file, host_file])
    for mount in sorted(mounts, key=lambda m: m.target.count("/")):
        args.extend(["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target])
    return args


def _find_executable(argv0: str, env: dict[str, str], rootfs: Path, mounts: list[Mount]) -> None:
    """Fail before starting, like a container runtime does, when argv[0] cannot be executed."""
    candidates = [argv0] if "/" in argv0 else [posixpath.join(d or ".", argv0)
                                                for d in env.get("PATH", "").split(":")]
    for candidate in candidates:
        if not candidate.startswith("/"):
            return  # relative to the working directory: leave it to the kernel
        resolved = resolve_in_root(rootfs, candidate)
        mount = next((m for m in sorted(mounts, key=lambda m: -len(m.target)) if under(resolved, [m.target])), None)
        host = (mount.source / posixpath.relpath(resolved, mount.target) if mount
                else rootfs / resolved.lstrip("/"))
        if host.is_file() and os.access(host, os.X_OK):
            return
    if "/" in argv0:
        raise StartError(f'exec: "{argv0}": stat {argv0}: no such file or directory (or not executable)')
    raise StartError(f'exec: "{argv0}": executable file not found in $PATH')


def launch(request: Request) -> Launch:
    if request.image is None:
        raise StartError("runtime bwrap needs an image (none was prepared)")
    rootfs = request.image.rootfs
    container = request.container
    argv = command_line(container, request.image.config)
    env = container_environment(request)
    mounts = [Mount(resolve_in_root(rootfs, m.target), m.source, m.read_only) for m in request.mounts]
    workdir = container.get("workingDir") or request.image.config.working_dir or "/"
    workdir = resolve_in_root(rootfs, workdir)
    for mount in mounts:
        if under(workdir, [mount.target]):  # Kubernetes creates a missing workingDir; inside a volume, so do we
            (mount.source / posixpath.relpath(workdir, mount.target)).mkdir(parents=True, exist_ok=True)
    _find_executable(argv[0], env, rootfs, mounts)
    targets = [m.target for m in mounts]
    args = [binary(), "--unshare-pid", "--unshare-uts", "--hostname", request.pod["name"][:63], "--die-with-parent"]
    args += rootfs_args(rootfs, targets, [workdir] if workdir != "/" else [])
    args += _mount_args(mounts, request.shm)
    args += ["--chdir", workdir, "--", *argv]
    return Launch(args, env, request.rundir)
