"""The `bwrap` container runtime: bubblewrap over an unpacked image rootfs, rootless.

What the container sees:
  /                  a fresh tmpfs (bubblewrap's new root) holding the image's top-level entries,
                     each bound read-only from the shared image cache (the cache must never change)
  /proc, /dev        its own; its own PID namespace and hostname (the pod name)
  /dev/shm           the pod's shared shm directory (all containers of a pod share it)
  /tmp               a private tmpfs, unless a volume is mounted there
  /sys               the host's, read-only (hwloc/MPI inside allocations read it)
  /etc/hosts, /etc/resolv.conf   the host's, read-only: the network is the host's, as with Apptainer (hosts
                                 with the pod's own name added, as the kubelet writes it)
  volumes            bound at their mountPath (read-only when the mount says so)

A mount point under a read-only image directory cannot be created there, so that directory is rebuilt
on the tmpfs ("exploded"): an empty directory whose image children are bound one by one, leaving room
for the mount point. The root is then remounted read-only, so the container is like a
`readOnlyRootFilesystem` pod: writes outside volumes and /tmp fail with EROFS (Apptainer's default,
too). The image's USER is not applied: rootless containers run as the calling user, and every
capability is dropped (run as root, bwrap would otherwise keep them, and a container could remount the
shared image cache writable). Paths through symlinks inside the image (e.g. /var/run -> /run) are
resolved inside the rootfs, never on the host; inside volumes, which containers can change, podline
follows no symlink at all (subPath, mount points, working directory) and binds subPaths by descriptor.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path

from podline.runtime.expand import host_ip
from podline.runtime.launch import (
    Launch,
    Mount,
    Request,
    StartError,
    command_line,
    container_environment,
    open_inside,
    under,
    with_image_home,
)

HOST_FILES = ("/etc/hosts", "/etc/resolv.conf")
OWN_TOP = ("proc", "dev", "tmp", "sys")
RESERVED = ("/", "/proc", "/dev", "/sys")
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


def _hosts_file(rundir: Path | None, hostname: str) -> str:
    """/etc/hosts as the kubelet writes it for a pod: the node's entries and the pod's own name at its IP (pods
    use the node's network), so that `hostname -i`, MPI launchers and torch.distributed resolve it (helper-79:
    the host's file left the pod's name unknown). Written once per run directory; the host's without one."""
    if rundir is None:
        return "/etc/hosts"
    try:
        base = Path("/etc/hosts").read_text()
    except OSError:
        base = "127.0.0.1\tlocalhost\n"
    text = f"{base.rstrip()}\n# podline: the pod's own name, as the kubelet adds it\n{host_ip()}\t{hostname}\n"
    path = rundir / "etc-hosts"
    if not path.exists() or path.read_text() != text:
        aside = rundir / f".etc-hosts.{os.getpid()}"
        aside.write_text(text)
        os.replace(aside, path)
    return str(path)


def _mount_args(mounts: list[Mount], shm: Path | None, hosts: str) -> tuple[list[str], tuple[int, ...]]:
    args = ["--proc", "/proc", "--dev", "/dev", "--ro-bind", "/sys", "/sys"]
    if not any(m.target == "/tmp" for m in mounts):
        args.extend(["--tmpfs", "/tmp"])
    if shm is not None:
        args.extend(["--bind", str(shm), "/dev/shm"])
    for host_file in HOST_FILES:
        source = hosts if host_file == "/etc/hosts" else host_file
        if os.path.exists(source):
            args.extend(["--ro-bind", source, host_file])
    fds = []
    for mount in sorted(mounts, key=lambda m: m.target.count("/")):
        if mount.fd is not None:  # inside a volume a container could change: bind what was checked, not a path
            args.extend(["--ro-bind-fd" if mount.read_only else "--bind-fd", str(mount.fd), mount.target])
            fds.append(mount.fd)
        else:
            args.extend(["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target])
    return args, tuple(fds)


def _containing(path: str, mounts: list[Mount], but: Mount | None = None) -> Mount | None:
    """The innermost mount whose target holds `path` (other than `but`)."""
    holders = [m for m in mounts if m is not but and under(path, [m.target])]
    return max(holders, key=lambda m: len(m.target), default=None)


def _make_inside(mount: Mount, path: str) -> None:
    """Create `path` (a mount point or the working directory) inside a volume, following no symlink."""
    relative = posixpath.relpath(path, mount.target)
    if relative != ".":
        os.close(open_inside(mount.fd if mount.fd is not None else mount.source, relative, create=True))


def _find_executable(argv0: str, env: dict[str, str], rootfs: Path, mounts: list[Mount]) -> None:
    """Fail before starting, like a container runtime does, when argv[0] is not in the image. What lies in a
    volume is left to the kernel (the host must not follow links a container made)."""
    candidates = [argv0] if "/" in argv0 else [posixpath.join(d or ".", argv0)
                                                for d in env.get("PATH", "").split(":")]
    for candidate in candidates:
        if not candidate.startswith("/"):
            return  # relative to the working directory: leave it to the kernel
        resolved = resolve_in_root(rootfs, candidate)
        if _containing(resolved, mounts) is not None:
            return
        host = rootfs / resolved.lstrip("/")
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
    env = with_image_home(container_environment(request), rootfs)  # HOME as runc sets it
    mounts = [Mount(resolve_in_root(rootfs, m.target), m.source, m.read_only, m.fd) for m in request.mounts]
    for mount in mounts:
        if mount.target in RESERVED:
            raise StartError(f"mountPath {mount.target} is reserved: the container runtime provides it")
        parent = _containing(mount.target, mounts, but=mount)
        if parent is not None:  # a mount point inside another volume is made there, safely, before bwrap runs
            _make_inside(parent, mount.target)
    workdir = resolve_in_root(rootfs, container.get("workingDir") or request.image.config.working_dir or "/")
    holder = _containing(workdir, mounts)
    if holder is not None:  # Kubernetes creates a missing workingDir; inside a volume, so do we
        _make_inside(holder, workdir)
    _find_executable(argv[0], env, rootfs, mounts)
    targets = [m.target for m in mounts]
    args = [binary(), "--unshare-pid", "--unshare-uts", "--hostname", request.pod["name"][:63], "--die-with-parent",
            "--cap-drop", "ALL"]
    args += rootfs_args(rootfs, targets, [workdir] if workdir != "/" else [])
    mount_args, fds = _mount_args(mounts, request.shm, _hosts_file(request.rundir, request.pod["name"][:63]))
    args += mount_args
    args += ["--remount-ro", "/", "--chdir", workdir, "--", *argv]
    return Launch(args, env, request.rundir, fds)


def signal_contained(pgid: int, signum: int) -> None:
    """Send `signum` to the container's processes in its group, but not to bwrap's own two processes.

    A SIGTERM to the outer bwrap kills it at once, and with it (--die-with-parent) the whole sandbox by
    SIGKILL: the application would get no grace period. Its processes share bwrap's process group, so
    they are found there; bwrap then exits with the application's own status.
    """
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat_line = handle.read()
        except OSError:
            continue
        comm = stat_line[stat_line.index(b"(") + 1:stat_line.rindex(b")")]
        fields = stat_line[stat_line.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and comm != b"bwrap":
            try:
                os.kill(int(entry.name), signum)
            except ProcessLookupError:
                pass
