"""What Argo's executor does around a workflow step's main container, done by the pod runner instead.

Argo injects a wait/emissary process into every pod to put input artifacts and the script source in
place and, after the main container exits, to read output parameters from files, capture stdout as the
`result`, and save output artifacts. podline's pod runner already owns the container's life, so it does
the same work from the host side, with no helper inside the image:

  before   `files` (the script source) and input artifacts are written into the pod's volumes at the
           host directory behind the container path (the workflow controller gives every such path a
           covering emptyDir, so this works for bwrap, apptainer and the host runtime alike)
  after    output parameters and artifacts are read back through the same mapping; artifacts are copied
           to their place on the context's shared directory (`to`), which is how later steps (on any node)
           receive them.

The plan's `argo` section (written by the workflow controller, never by a user):
  {"container": NAME, "result": bool, "files": [{"path", "content", "mode"}],
   "inputArtifacts": [{"name", "path", "from" | "raw" | "remote" {source, s3?, credentials?}, "optional"}],
   "parameters": [{"name", "path", "default"?}], "artifacts": [{"name", "path", "to", "optional"}]}
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from podline.runtime.host import PathMapper
from podline.runtime.launch import under

MAX_VALUE = 256 * 1024  # an output parameter or result larger than this fails the step (Argo keeps them in status)


class ArgoIOError(Exception):
    """A declared input could not be placed or an output could not be read: the step errors."""


def _mapped(path: str, container: Mapping[str, Any], volume_paths: Mapping[str, Path]) -> tuple[Path, Path] | None:
    """(the volume's host directory, the host path) for container path `path`: below the volume mounted
    deepest above it; None when no volume is."""
    best: tuple[int, Path, Path] | None = None
    for mount in container["mounts"]:
        root = mount["mountPath"].rstrip("/") or "/"
        if not under(path, [root]):
            continue
        volume = volume_paths[mount["volume"]]
        source = volume / mount["subPath"] if mount.get("subPath") else volume
        if best is None or len(root) > best[0]:
            rest = posixpath.relpath(path, root)
            if rest == ".." or rest.startswith("../"):
                continue
            # checked against the volume itself: a subPath that is a link must not move the root it is held to
            best = (len(root), volume, source if rest == "." else source / rest)
    return None if best is None else (best[1], best[2])


def _target(path: str, container: Mapping[str, Any], volume_paths: Mapping[str, Path]) -> Path:
    """The host path for `path`, refused if it leads out of its volume: the container may have planted a
    symbolic link there, and the runner, which reads and writes on the host, must not follow it out."""
    found = _mapped(path, container, volume_paths)
    if found is None:
        raise ArgoIOError(f"{path} is not inside any volume of container {container['name']}")
    root, host = found
    real_root, real = os.path.realpath(root), os.path.realpath(host)
    if not under(real, [real_root]):
        raise ArgoIOError(f"{path} leads out of its volume (through a symbolic link)")
    return host


def _replace_link(target: Path) -> None:
    """A symbolic link (or a FIFO, a socket…) where the runner is about to write a file is removed, never
    written through or blocked on."""
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        target.unlink()


def prepare(io: Mapping[str, Any], container: Mapping[str, Any], volume_paths: Mapping[str, Path],
            runtime: str, dataset_cache: Path | None = None) -> None:
    """Put the script source and the input artifacts in place before the container starts. Under the host
    runtime a script's own paths are mapped like its command line (the source is its command)."""
    mapper = PathMapper([(m["mountPath"], str(_target(m["mountPath"], container, volume_paths)))
                         for m in container["mounts"]]) if runtime == "host" else None
    for item in io.get("files", []):
        target = _target(item["path"], container, volume_paths)
        target.parent.mkdir(parents=True, exist_ok=True)
        content = mapper.map(item["content"]) if mapper else item["content"]
        _replace_link(target)
        target.write_text(content)
        target.chmod(item.get("mode", 0o644))
    for art in io.get("inputArtifacts", []):
        if any(posixpath.normpath(art["path"]) == (m["mountPath"].rstrip("/") or "/") for m in container["mounts"]):
            raise ArgoIOError(f"input artifact {art['name']}: {art['path']} is where volume "
                              f"{_volume_at(art['path'], container)} is mounted: an artifact cannot replace a volume")
        target = _target(art["path"], container, volume_paths)
        target.parent.mkdir(parents=True, exist_ok=True)
        _replace_link(target)
        if "raw" in art:
            target.write_text(art["raw"])
        elif "remote" in art:
            if not _fetch_remote(art, target, dataset_cache or target.parent / ".podline-datasets"):
                continue
        else:
            source = Path(art["from"])
            if not source.exists():
                if art.get("optional"):
                    continue
                raise ArgoIOError(f"input artifact {art['name']}: {source} does not exist (did its step save it?)")
            aside = _aside(target)
            _copy(source, aside)
            _move_into_place(aside, target, art)
        if art.get("mode") is not None:
            target.chmod(art["mode"])


def _volume_at(path: str, container: Mapping[str, Any]) -> str:
    return next(m["volume"] for m in container["mounts"]
                if posixpath.normpath(path) == (m["mountPath"].rstrip("/") or "/"))


def _fetch_remote(art: Mapping[str, Any], target: Path, dataset_cache: Path) -> bool:
    """An input artifact from an HTTP server or S3 store, staged as a Dataset is (through the node's cache of
    datasets, so a later step or workflow on this node reads it from there) beside the target, then moved into
    place: one file becomes the target; several (an S3 prefix, an index page) a directory. False: an optional
    artifact that could not be fetched."""
    from podline.runtime.staging import StagingError, stage_dataset  # fsspec and friends: only when needed

    remote = art["remote"]
    aside = _aside(target)
    spec = {"source": remote["source"], "s3": remote.get("s3"), "credentials": remote.get("credentials")}
    try:
        stage_dataset(spec, aside, 0, 1, dataset_cache)
    except StagingError as exc:
        shutil.rmtree(aside, ignore_errors=True)
        if art.get("optional"):
            return False
        raise ArgoIOError(f"input artifact {art['name']}: {exc}") from None
    entries = list(aside.iterdir())
    name = unquote(remote["source"].rstrip("/").rsplit("/", 1)[-1])
    one_file = len(entries) == 1 and entries[0].name == name and entries[0].is_file() and \
        not remote["source"].endswith("/")
    try:  # moved, not copied: the aside is on the target's volume
        _move_into_place(entries[0] if one_file else aside, target, art)
    finally:
        _remove(aside)
    return True


def _aside(target: Path) -> Path:
    """Where an input artifact is put together before it is moved to `target` (same directory, same volume)."""
    aside = target.parent / f".{target.name}.podline-staging"
    _remove(aside)
    return aside


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _move_into_place(ready: Path, target: Path, art: Mapping[str, Any]) -> None:
    """Argo's executor loads an input artifact beside its path and renames it there: a file or an empty
    directory at the path is replaced, but a directory with files in it (a user's volume mounted there, say)
    is never removed; the step errors instead."""
    try:
        os.rename(ready, target)
    except OSError as exc:
        _remove(ready)
        raise ArgoIOError(f"input artifact {art['name']}: cannot be put at {art['path']}: "
                          f"{exc.strerror or exc} (nothing there was removed)") from None


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target)


def _read_value(path: Path, what: str) -> str:
    """An output parameter's file, less one trailing newline (as Argo reads it); larger than MAX_VALUE fails."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)  # a FIFO must not hold the runner
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArgoIOError(f"{what}: not a regular file")
        data = f.read(MAX_VALUE + 1)
    if len(data) > MAX_VALUE:
        raise ArgoIOError(f"{what} is larger than {MAX_VALUE // 1024} KiB")
    return data.decode("utf-8", errors="replace").removesuffix("\n")


def _read_result(path: Path) -> str:
    """stdout as the step's result, less one trailing newline, then its last MAX_VALUE bytes (a chatty step does
    not fail for it), in Argo's order: the newline goes first, so a full result keeps MAX_VALUE bytes."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - MAX_VALUE - 1))
        data = f.read(MAX_VALUE + 1).removesuffix(b"\n")[-MAX_VALUE:]
    return data.decode("utf-8", errors="replace")


def collect(io: Mapping[str, Any], container: Mapping[str, Any], volume_paths: Mapping[str, Path],
            stdout: Path | None, exit_code: int | None, stdout_lost: str | None = None) -> dict[str, Any]:
    """The step's outputs in Argo's shape ({parameters, artifacts, result, exitCode}). A missing output
    (without a default, not optional), or a result whose copy of stdout is incomplete (`stdout_lost` says
    why), is reported under `error`; the rest is still collected."""
    outputs: dict[str, Any] = {}
    errors: list[str] = []
    if exit_code is not None:
        outputs["exitCode"] = str(exit_code)
    if io.get("result") and stdout is not None:
        outputs["result"] = _read_result(stdout) if stdout.exists() else ""
        if stdout_lost:
            errors.append(f"result: {stdout_lost}")
    parameters = []
    for param in io.get("parameters", []):
        try:
            value = _read_value(_target(param["path"], container, volume_paths), f"output parameter {param['name']}")
        except (OSError, ArgoIOError) as exc:
            if "default" in param:
                value = param["default"]
            else:
                errors.append(f"output parameter {param['name']}: cannot read {param['path']}: "
                              f"{getattr(exc, 'strerror', None) or exc}")
                continue
        parameters.append({"name": param["name"], "value": value})
    if parameters:
        outputs["parameters"] = parameters
    artifacts = []
    for art in io.get("artifacts", []):
        try:
            source = _target(art["path"], container, volume_paths)
            if not source.exists():
                if not art.get("optional"):
                    errors.append(f"output artifact {art['name']}: {art['path']} does not exist")
                continue
            to = Path(art["to"])
            to.parent.mkdir(parents=True, exist_ok=True)
            staging = to.with_name(f".{to.name}.tmp-{os.getpid()}")
            try:
                _copy(source, staging)
                if to.is_dir() and not to.is_symlink():
                    shutil.rmtree(to)
                os.replace(staging, to)
            finally:
                if staging.is_dir() and not staging.is_symlink():
                    shutil.rmtree(staging, ignore_errors=True)
                elif staging.exists() or staging.is_symlink():
                    staging.unlink()
            artifacts.append({"name": art["name"], "path": art["path"], "location": str(to)})
        except (OSError, ArgoIOError) as exc:
            errors.append(f"output artifact {art['name']}: {str(exc)[:300]}")
    if artifacts:
        outputs["artifacts"] = artifacts
    if errors:
        outputs["error"] = "; ".join(errors)[:2000]
    return outputs
