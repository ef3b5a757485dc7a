"""The `apptainer` (or `singularity`) container runtime: what HPC centres allow.

Two ways in:
- Images Apptainer understands itself (`docker://…`, `*.sif`, `library://`, `oras://`, `shub://`) pass
  through untouched, so Apptainer's own cache and SIF conversion apply. Kubernetes' command/args rule
  maps onto Apptainer's verbs: no command → `run` (the runscript is ENTRYPOINT + (args or CMD), exactly
  Kubernetes' rule), a command → `exec command args`.
- Everything else (registry references without `docker://`, OCI layouts, archives) is prepared by
  podline's image cache and handed over as a sandbox directory; podline applies the rule itself and
  uses `exec`.

Semantics match the bwrap runtime: `--containall` (own PID/IPC, no host $HOME or /tmp; Apptainer's
init shim stays, so the application is not PID 1 and a SIGTERM without a handler still ends it), `--cleanenv`
(only the image's and the manifest's environment), `--no-eval` (values reach the process verbatim,
never through a shell: HPK's users saw env values with special characters break), volumes as `--bind`,
the pod's shared /dev/shm bound in. Environment values travel as `APPTAINERENV_*` variables rather than
on the command line: no quoting, no commas splitting them, nothing in `ps`.

Apptainer cannot be installed on these machines; the argv is pinned by unit tests (see README).
"""

from __future__ import annotations

import shutil

from podline.runtime.launch import Launch, Mount, Request, StartError, command_line, container_environment

PASS_THROUGH = ("docker://", "library://", "oras://", "shub://")
BINARIES = ("apptainer", "singularity")


def passes_through(image: str) -> bool:
    return image.startswith(PASS_THROUGH) or image.endswith(".sif")


def binary() -> tuple[str, str]:
    """The installed binary and its environment prefix."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found, name.upper() + "ENV_"
    raise StartError("runtime apptainer: neither apptainer nor singularity is installed")


def bind_spec(mount: Mount) -> str:
    for path in (str(mount.source), mount.target):
        if ":" in path or "," in path:
            raise StartError(f"runtime apptainer cannot bind {path!r}: ':' and ',' separate bind specifications")
    return f"{mount.source}:{mount.target}:{'ro' if mount.read_only else 'rw'}"


def launch(request: Request, found: tuple[str, str] | None = None) -> Launch:
    exe, prefix = found or binary()
    container = request.container
    image = container["image"]
    if passes_through(image):
        verb, target = ("exec", image) if container["command"] else ("run", image)
        argv = list(container["command"]) + list(container["args"])
    elif request.image is not None:
        verb, target = "exec", str(request.image.rootfs)
        argv = command_line(container, request.image.config)
    else:
        raise StartError(f"runtime apptainer: image {image!r} was not prepared")
    args = [exe, verb, "--containall", "--cleanenv", "--no-eval", "--hostname", request.pod["name"][:63]]
    workdir = container.get("workingDir") or (request.image.config.working_dir if request.image else "")
    if workdir:
        args += ["--pwd", workdir]
    if request.shm is not None:
        args += ["--bind", bind_spec(Mount("/dev/shm", request.shm))]
    for mount in sorted(request.mounts, key=lambda m: m.target.count("/")):
        args += ["--bind", bind_spec(mount)]
    env = {k: v for k, v in request.host_env.items() if k in ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "LANG")}
    contained = container_environment(request)
    if passes_through(image) and "PATH" not in container["env"]:
        contained.pop("PATH")  # the image's own PATH applies; podline does not know it
    env.update({prefix + key: value for key, value in contained.items()})
    return Launch(args + [target, *argv], env, request.rundir)
