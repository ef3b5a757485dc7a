"""The runtimes' pure parts: Kubernetes' command/args table, the environment, and the argv each runtime
builds (bwrap's over a small fake rootfs; Apptainer's without Apptainer installed, as it cannot be here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from podline.images.model import ImageConfig, PreparedImage
from podline.runtime import apptainer, bwrap
from podline.runtime.launch import Mount, Request, StartError, command_line, container_environment

POD = {"name": "p", "namespace": "default", "uid": "u1"}
IMAGE = ImageConfig(entrypoint=("/bin/entry", "-x"), cmd=("default-arg",), env=("PATH=/opt/bin:/bin", "A=image",
                                                                                  "B=image"), working_dir="/srv")


def container(command: list[str] | None = None, args: list[str] | None = None, env: dict[str, str] | None = None,
              image: str = "reg/x:1", working_dir: str | None = None, mounts: list | None = None) -> dict:
    return {"name": "c", "image": image, "command": command or [], "args": args or [], "env": env or {},
            "workingDir": working_dir, "mounts": mounts or []}


@pytest.mark.parametrize("command, args, expected", [
    ([], [], ["/bin/entry", "-x", "default-arg"]),          # image ENTRYPOINT + CMD
    (["/bin/sh"], [], ["/bin/sh"]),                          # command replaces both
    ([], ["mine"], ["/bin/entry", "-x", "mine"]),            # args replace CMD only
    (["/bin/sh"], ["-c", "x"], ["/bin/sh", "-c", "x"]),      # both given: image ignored
])
def test_kubernetes_command_args_table(command: list[str], args: list[str], expected: list[str]) -> None:
    assert command_line(container(command, args), IMAGE) == expected


def test_nothing_to_run_is_a_start_error() -> None:
    with pytest.raises(StartError, match="no command specified"):
        command_line(container(), ImageConfig())


def test_environment_order_image_then_slurm_then_manifest(tmp_path: Path) -> None:
    prepared = PreparedImage("reg/x:1", "sha256:" + "0" * 64, tmp_path, IMAGE, False, 0.0)
    request = Request(container(env={"B": "manifest"}), POD, (), tmp_path, prepared,
                      host_env={"SLURM_JOB_ID": "7", "SLURMD_NODENAME": "n1", "A": "host-not-passed", "SECRET": "no"})
    env = container_environment(request)
    assert env == {"PATH": "/opt/bin:/bin", "A": "image", "B": "manifest", "HOSTNAME": "p", "SLURM_JOB_ID": "7",
                   "SLURMD_NODENAME": "n1"}


# --- bwrap -----------------------------------------------------------------------------------------------
@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    for d in ("bin", "etc/ssl", "srv", "run", "var", "usr/lib"):
        (root / d).mkdir(parents=True)
    (root / "bin/entry").write_text("#!/bin/sh\n")
    (root / "bin/entry").chmod(0o755)
    (root / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\n")
    os.symlink("/run", root / "var/run")
    os.symlink("usr/lib", root / "lib")
    return root


def bwrap_argv(rootfs: Path, tmp_path: Path, spec: dict, mounts: tuple[Mount, ...] = (), shm: Path | None = None
               ) -> list[str]:
    prepared = PreparedImage("reg/x:1", "sha256:" + "1" * 64, rootfs, IMAGE, False, 0.0)
    launch = bwrap.launch(Request(spec, POD, mounts, tmp_path, prepared, shm, host_env={}))
    assert launch.argv[0].endswith("bwrap")
    return launch.argv


def pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_bwrap_binds_the_image_read_only_and_mounts_volumes(rootfs: Path, tmp_path: Path) -> None:
    data = tmp_path / "vol"
    data.mkdir()
    argv = bwrap_argv(rootfs, tmp_path, container(), (Mount("/data", data), Mount("/cfg", data, True)),
                      shm=tmp_path / "shm")
    ro = pairs(argv, "--ro-bind")
    assert (str(rootfs / "bin"), "/bin") in ro and (str(rootfs / "usr"), "/usr") in ro
    assert ("usr/lib", "/lib") in pairs(argv, "--symlink")  # top-level symlinks stay symlinks
    assert (str(data), "/data") in pairs(argv, "--bind") and (str(data), "/cfg") in ro
    assert (str(tmp_path / "shm"), "/dev/shm") in pairs(argv, "--bind")
    assert "--unshare-pid" in argv and argv[argv.index("--hostname") + 1] == "p"
    assert "--unshare-net" not in argv  # HPC jobs need the host's interconnect
    assert argv[argv.index("--chdir") + 1] == "/srv"  # image WorkingDir
    assert argv[argv.index("--") + 1:] == ["/bin/entry", "-x", "default-arg"]
    assert not any(a.startswith(str(rootfs)) and a.endswith(("/proc", "/dev", "/tmp")) for a in argv)


def test_bwrap_explodes_a_read_only_image_dir_to_make_room_for_a_mount(rootfs: Path, tmp_path: Path) -> None:
    argv = bwrap_argv(rootfs, tmp_path, container(), (Mount("/etc/ssl/private", tmp_path),))
    assert ("--dir", "/etc") == tuple(argv[argv.index("/etc") - 1:argv.index("/etc") + 1])
    ro = pairs(argv, "--ro-bind")
    assert (str(rootfs / "etc/passwd"), "/etc/passwd") in ro   # the rest of /etc is still the image's
    assert (str(rootfs / "etc"), "/etc") not in ro
    assert (str(tmp_path), "/etc/ssl/private") in pairs(argv, "--bind")


def test_bwrap_resolves_image_symlinks_inside_the_rootfs(rootfs: Path, tmp_path: Path) -> None:
    argv = bwrap_argv(rootfs, tmp_path, container(), (Mount("/var/run/secrets", tmp_path),))
    assert (str(tmp_path), "/run/secrets") in pairs(argv, "--bind")
    assert bwrap.resolve_in_root(rootfs, "/var/run/../x") == "/x"
    os.symlink("../../../../../../etc", rootfs / "srv/escape")
    assert bwrap.resolve_in_root(rootfs, "/srv/escape/shadow") == "/etc/shadow"  # clamped at the image root


def test_bwrap_creates_a_missing_working_dir_and_refuses_a_missing_executable(rootfs: Path, tmp_path: Path) -> None:
    argv = bwrap_argv(rootfs, tmp_path, container(["/bin/entry"], working_dir="/work/here"))
    assert ("--dir", "/work/here") in list(zip(argv, argv[1:], strict=False))
    with pytest.raises(StartError, match='"nosuch": executable file not found in \\$PATH'):
        bwrap_argv(rootfs, tmp_path, container(["nosuch"]))
    with pytest.raises(StartError, match="/bin/gone"):
        bwrap_argv(rootfs, tmp_path, container(["/bin/gone"]))


def test_bwrap_finds_executables_on_the_image_path_and_in_volumes(rootfs: Path, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "run.sh").write_text("#!/bin/sh\n")
    (tools / "run.sh").chmod(0o755)
    assert bwrap_argv(rootfs, tmp_path, container(["entry"]))[-1] == "entry"
    assert bwrap_argv(rootfs, tmp_path, container(["/opt/t/run.sh"]), (Mount("/opt/t", tools),))[-1] == "/opt/t/run.sh"


# --- apptainer -----------------------------------------------------------------------------------------
FOUND = ("/usr/bin/apptainer", "APPTAINERENV_")


def app(spec: dict, image: PreparedImage | None = None, mounts: tuple[Mount, ...] = (), shm: Path | None = None,
        found: tuple[str, str] = FOUND) -> tuple[list[str], dict[str, str]]:
    launch = apptainer.launch(Request(spec, POD, mounts, Path("/run/x"), image, shm, host_env={"PATH": "/usr/bin"}),
                              found)
    return launch.argv, launch.env


def test_apptainer_passes_docker_and_sif_images_through_with_kubernetes_verbs() -> None:
    argv, _ = app(container(image="docker://alpine:3"))
    assert argv[:2] == ["/usr/bin/apptainer", "run"] and argv[-1] == "docker://alpine:3"  # ENTRYPOINT + CMD
    argv, _ = app(container(args=["a b"], image="/images/tool.sif"))
    assert argv[1] == "run" and argv[-2:] == ["/images/tool.sif", "a b"]  # ENTRYPOINT + args (runscript)
    argv, _ = app(container(["python3"], ["-V"], image="docker://python:3"))
    assert argv[1] == "exec" and argv[-3:] == ["docker://python:3", "python3", "-V"]
    for flag in ("--containall", "--cleanenv", "--no-eval"):
        assert flag in argv


def test_apptainer_runs_a_prepared_image_as_a_sandbox_with_podlines_command_line(tmp_path: Path) -> None:
    prepared = PreparedImage("127.0.0.1:5000/x:1", "sha256:" + "2" * 64, tmp_path / "rootfs", IMAGE, False, 0.0)
    mounts = (Mount("/data", Path("/h/d")), Mount("/cfg", Path("/h/c"), True))
    argv, env = app(container(args=["mine"]), prepared, mounts, shm=Path("/dev/shm/podline-u1/_shm"))
    assert argv[1] == "exec" and argv[-4:] == [str(tmp_path / "rootfs"), "/bin/entry", "-x", "mine"]
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert binds == ["/dev/shm/podline-u1/_shm:/dev/shm:rw", "/h/d:/data:rw", "/h/c:/cfg:ro"]
    assert argv[argv.index("--pwd") + 1] == "/srv"
    assert env["APPTAINERENV_A"] == "image" and env["APPTAINERENV_PATH"] == "/opt/bin:/bin"


def test_apptainer_env_travels_verbatim_in_the_environment_not_the_argv() -> None:
    nasty = "a,b=c;$(rm -rf /) `x` 'q' \"d\"\n"
    argv, env = app(container(["sh"], env={"NASTY": nasty}, image="docker://alpine:3"))
    assert env["APPTAINERENV_NASTY"] == nasty and not any(nasty in a for a in argv)
    assert "APPTAINERENV_PATH" not in env  # the image's own PATH applies
    _, env = app(container(["sh"], env={"X": "1"}, image="docker://alpine:3"), found=("/bin/singularity",
                                                                                       "SINGULARITYENV_"))
    assert env["SINGULARITYENV_X"] == "1"


def test_apptainer_refuses_bind_paths_it_would_split() -> None:
    with pytest.raises(StartError, match="separate bind specifications"):
        app(container(["sh"], image="docker://alpine:3"), mounts=(Mount("/a:b", Path("/h")),))
    with pytest.raises(StartError, match="was not prepared"):
        app(container(["sh"], image="127.0.0.1:5000/x:1"))


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("127.0.0.1:5000/x", "Always"), ("docker://alpine", "Always"),
    ("busybox:1.36", "IfNotPresent"), ("127.0.0.1:5000/x:1", "IfNotPresent"), ("x@sha256:" + "0" * 64, "IfNotPresent"),
    ("oci:/layouts/a:b", "IfNotPresent"), ("/images/t.sif", "IfNotPresent"), ("dir:/", "IfNotPresent"),
])
def test_default_pull_policy_is_kubernetes(image: str, policy: str) -> None:
    from podline.plan.pod import default_pull_policy

    assert default_pull_policy(image) == policy


def test_open_inside_follows_no_symlink_a_container_could_have_left(tmp_path: Path) -> None:
    from podline.runtime.launch import open_inside

    volume = tmp_path / "vol"
    (volume / "a").mkdir(parents=True)
    (volume / "a" / "file").write_text("x")
    os.symlink(tmp_path, volume / "link")
    os.symlink("/etc/passwd", volume / "a" / "passwd")
    for relative in ("link", "link/below", "a/passwd", "a/../..", "a/file/x"):
        with pytest.raises(StartError):
            os.close(open_inside(volume, relative, create=True))
    assert not (tmp_path / "below").exists()  # nothing was created through the link
    fd = open_inside(volume, "a/file", create=False)
    assert os.readlink(f"/proc/self/fd/{fd}") == str(volume / "a" / "file")
    os.close(fd)
    fd = open_inside(volume, "new/deeper", create=True)
    assert (volume / "new" / "deeper").is_dir()
    os.close(fd)
    with pytest.raises(StartError, match="does not exist"):
        open_inside(volume, "missing", create=False)
