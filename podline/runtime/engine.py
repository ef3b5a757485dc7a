"""The container runtime one pod attempt (or pipeline shard) uses, with its images prepared up front.

The context chooses the runtime (`host`, `bwrap`, `apptainer`); the plan carries its name and where the
node-local image cache is. Every image a pod needs is prepared (pulled, unpacked, or found in the cache)
before any of its containers starts, so a missing image is one clear error and nothing has run. An error
a retry can mend (the registry unreachable or answering 5xx/429, the node's cache disk) is retried with a
doubling back-off, as kubelet does in ImagePullBackOff: by default until it works or the caller stops
(a registry restarting is not a reason to fail a job, nor to count against its backoffLimit);
PODLINE_IMAGE_PULL_RETRIES bounds the retries. Anything else (no such tag, unauthorized) fails at once.
Preparation time is reported as its own phase (`status.timings.image`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from podline.images.errors import ImageError
from podline.images.model import PreparedImage
from podline.runtime import apptainer, bwrap, host, orphans
from podline.runtime.launch import Launch, Mount, Request, StartError, close_fds, spawn, volume_mounts

RUNTIMES: dict[str, Callable[[Request], Launch]] = {"host": host.launch, "bwrap": bwrap.launch,
                                                      "apptainer": apptainer.launch}
PULL_RETRIES = int(os.environ.get("PODLINE_IMAGE_PULL_RETRIES", "-1"))  # < 0: until it works or the pod stops
PULL_BACKOFF = float(os.environ.get("PODLINE_IMAGE_PULL_BACKOFF_SECONDS", "1"))
PULL_BACKOFF_MAX = float(os.environ.get("PODLINE_IMAGE_PULL_BACKOFF_MAX_SECONDS", "300"))  # kubelet's cap
QUICK_RETRIES = 3 if PULL_RETRIES < 0 else min(3, PULL_RETRIES)  # an image needed while other work runs (a step
# updated mid-run) cannot wait long
BackOff = Callable[[str, str], None]  # (container, message) before each wait: the caller shows ImagePullBackOff


class ImagePullFailed(Exception):
    def __init__(self, container: str, error: ImageError) -> None:
        super().__init__(str(error))
        self.container, self.reason = container, error.reason


def default_cache() -> Path:
    return Path(os.environ.get("TMPDIR") or "/tmp") / f"podline-images-{os.getuid()}"


class Engine:
    """Starts the containers of one pod attempt with the context's runtime."""

    def __init__(self, plan: Mapping[str, Any], pod: Mapping[str, Any], volume_paths: Mapping[str, Path],
                 rundir: Path, shm: Path, shm_owner: tuple[Path, str, str] | None = None) -> None:
        """`shm`: where the pod's shared /dev/shm would live; the host runtime has no /dev of its own.
        `shm_owner` (holder, shared directory, owner): `shm` lies in `holder`, which names its owner as the
        RAM a pipeline shard's runner leaves does (`runtime.orphans`), outside the containers' sight, so a
        runner killed on a Slurm node leaves nothing there for good; None when the caller releases `shm`
        with RAM of its own (a pod's RAM volumes)."""
        self.name: str = plan.get("runtime") or "host"
        self.launcher = RUNTIMES[self.name]
        settings = plan.get("images") or {}
        self.cache = Path(settings["cache"]) if settings.get("cache") else default_cache()
        self.auth_file = Path(settings["authFile"]) if settings.get("authFile") else None
        self.insecure: list[str] = list(settings.get("insecure", []))
        self.store = Path(settings["store"]) if settings.get("store") else None  # `podline image load`
        self.pod = dict(pod)
        self.volume_paths, self.rundir = volume_paths, rundir
        self.shm = shm if self.name != "host" else None
        self.shm_owner = shm_owner
        self.images: dict[str, PreparedImage] = {}
        self.prepare_seconds = 0.0

    def make_shm(self) -> None:
        if self.shm is None:
            return
        if self.shm_owner is not None:
            holder, shared, owner = self.shm_owner
            if shared and owner:
                orphans.claim(holder, shared, owner)
        self.shm.mkdir(parents=True, exist_ok=True)
        self.shm.chmod(0o1777)  # as /dev/shm is (mkdir's mode goes through the umask)

    def remove_shm(self) -> None:
        if self.shm is not None:
            shutil.rmtree(self.shm_owner[0] if self.shm_owner is not None else self.shm, ignore_errors=True)

    def _needs_preparing(self, image: str) -> bool:
        if self.name == "host":
            return False
        return not (self.name == "apptainer" and apptainer.passes_through(image))

    def prepare(self, containers: Iterable[Mapping[str, Any]], stopping: threading.Event,
                backing_off: BackOff | None = None, retries: int = PULL_RETRIES) -> None:
        """Prepare every image the containers name (an image asked `Always` by one is checked once).
        `backing_off` hears of each wait before a retry; `retries` < 0 retries until `stopping` is set."""
        wanted: dict[str, tuple[str, str]] = {}  # image -> (policy, first container naming it)
        for c in containers:
            if not self._needs_preparing(c["image"]) or c["image"] in self.images:
                continue
            policy = c.get("imagePullPolicy") or "IfNotPresent"
            before = wanted.get(c["image"])
            if before is None or policy == "Always":
                wanted[c["image"]] = (policy, before[1] if before else c["name"])
        began = time.monotonic()
        try:
            for image, (policy, container) in wanted.items():
                self.images[image] = self._prepare_one(image, policy, container, stopping, backing_off, retries)
        finally:
            self.prepare_seconds += time.monotonic() - began

    def _prepare_one(self, image: str, policy: str, container: str, stopping: threading.Event,
                     backing_off: BackOff | None, retries: int) -> PreparedImage:
        from podline.images import prepare  # the HTTP client and unpacker load only when an image is needed

        delay, attempt = PULL_BACKOFF, 0
        while True:
            try:
                return prepare(image, policy, self.cache, auth_file=self.auth_file, insecure=self.insecure,
                               store=self.store)
            except ImageError as exc:
                if not exc.transient or attempt == retries or stopping.is_set():
                    raise ImagePullFailed(container, exc) from None
                if backing_off is not None:
                    backing_off(container, f"Back-off pulling image (retry {attempt + 1} in {delay:g}s): {exc}")
                if stopping.wait(delay):
                    raise ImagePullFailed(container, exc) from None
                delay, attempt = min(delay * 2, PULL_BACKOFF_MAX), attempt + 1

    def report(self) -> list[dict[str, Any]]:
        """Per image: digest, whether this attempt fetched it (False: the node's cache had it), seconds."""
        return [{"image": ref, "digest": p.digest, "pulled": p.pulled, "seconds": round(p.seconds, 3)}
                for ref, p in self.images.items()]

    def image_id(self, spec: Mapping[str, Any]) -> str:
        """As kubelet reports it: the image's name without tag, at the digest that ran."""
        from podline.images import parse_reference

        prepared = self.images.get(spec["image"])
        if prepared is None or not prepared.digest:
            return ""
        ref = parse_reference(spec["image"])
        name = ref.name if ref.transport == "docker" else f"{ref.transport}:{ref.path}"
        return f"{name}@{prepared.digest}"

    def spawn(self, spec: dict[str, Any], log: IO[bytes], stdout: int | None = None) -> subprocess.Popen[bytes]:
        """Start the container; any host-side failure on the way is a StartError, never a dead worker."""
        mounts: tuple[Mount, ...] = ()
        try:
            mounts = volume_mounts(spec, self.volume_paths)
            request = Request(spec, self.pod, mounts, self.rundir, self.images.get(spec["image"]), self.shm)
            return spawn(self.launcher(request), log, stdout)
        except OSError as exc:
            raise StartError(f"cannot prepare the container: {exc}") from None
        finally:
            close_fds(mounts)

    def signal(self, process: subprocess.Popen[bytes], signum: int) -> None:
        """Signal a container: its process group; under bwrap a catchable signal goes to the contained
        processes only (bwrap itself would die and take them down without their grace period)."""
        if self.name == "bwrap" and signum != signal.SIGKILL:
            bwrap.signal_contained(process.pid, signum)
        else:
            os.killpg(process.pid, signum)
