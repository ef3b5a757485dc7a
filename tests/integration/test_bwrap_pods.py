"""Pods and pipelines in real bubblewrap containers on the local backend, images from offline OCI layouts.

The image is Debian's busybox-static in an OCI layout built by `tests.imagebuild`; the context's runtime
is `bwrap`, so every container sees the image as `/`, its own PID namespace, and only what is mounted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from podline.runtime.expand import host_ip
from tests.conftest import Cli, gone, kill_session, wait_for
from tests.imagebuild import Layer, busybox_image

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None or subprocess.run(
    ["bwrap", "--ro-bind", "/", "/", "true"], capture_output=True).returncode != 0,
    reason="bubblewrap is not installed or cannot create namespaces here (apt-get install bubblewrap)")

EXTRA_APPLETS = ("hostname", "ps", "grep", "kill", "stat", "cut", "head", "ln", "mount")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images") / "layout"
    extra = Layer()
    for applet in EXTRA_APPLETS:
        extra.symlink(f"bin/{applet}", "/bin/busybox")
    busybox_image(root, tag="sh", extra=[extra])
    busybox_image(root, tag="entry", entrypoint=["echo", "E"], cmd=["C"], working_dir="/srv/app",
                  env=["PATH=/bin", "FROM_IMAGE=yes", "OVERRIDE=image"], extra=[extra])
    busybox_image(root, tag="home", env=["PATH=/bin", "HOME=/from-image"], extra=[extra])
    return root


@pytest.fixture
def bwrap_cli(cli: Cli) -> Cli:
    cli.env["PODLINE_IMAGE_PULL_BACKOFF_SECONDS"] = "0.05"
    cli.env["PODLINE_IMAGE_PULL_RETRIES"] = "3"  # an unreachable registry fails the pod soon (default: it waits)
    cli("config", "set-context", "local", "--runtime", "bwrap")
    return cli


def pod(name: str, body: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n{body}"


def test_entrypoint_cmd_and_args_follow_kubernetes(bwrap_cli: Cli, layout: Path) -> None:
    image = f"oci:{layout}:entry"
    bwrap_cli.apply(pod("table", f"""
  containers:
  - {{name: both-from-image, image: "{image}"}}
  - {{name: args-only, image: "{image}", args: [A1, A2]}}
  - {{name: command-only, image: "{image}", command: [echo, K]}}
  - {{name: command-args, image: "{image}", command: [echo], args: [K, A]}}
  - {{name: env-and-dir, image: "{image}", command: [sh, -c, 'echo $FROM_IMAGE $OVERRIDE $(pwd)'],
     env: [{{name: OVERRIDE, value: manifest}}]}}
"""))
    assert bwrap_cli.wait("pod/table", "phase=Succeeded").returncode == 0
    logs = {c: bwrap_cli("logs", "table", "-c", c).stdout for c in
            ("both-from-image", "args-only", "command-only", "command-args", "env-and-dir")}
    assert logs == {"both-from-image": "E C\n", "args-only": "E A1 A2\n", "command-only": "K\n",
                    "command-args": "K A\n", "env-and-dir": "yes manifest /srv/app\n"}
    statuses = bwrap_cli.json("pod", "table")["status"]["containerStatuses"]
    assert all(s["imageID"].startswith(f"oci:{layout}@sha256:") for s in statuses)


def test_two_containers_share_an_emptydir_and_dev_shm(bwrap_cli: Cli, layout: Path) -> None:
    image = f"oci:{layout}:sh"
    bwrap_cli.apply(pod("share", f"""
  volumes: [{{name: data, emptyDir: {{}}}}]
  containers:
  - name: writer
    image: "{image}"
    command: [sh, -c, 'echo via-shm > /dev/shm/token; echo via-volume > /data/file;
                       while [ ! -e /data/done ]; do sleep 0.05; done; echo writer saw done']
    volumeMounts: [{{name: data, mountPath: /data}}]
  - name: reader
    image: "{image}"
    command: [sh, -c, 'while [ ! -e /dev/shm/token ] || [ ! -e /data/file ]; do sleep 0.05; done;
                       cat /dev/shm/token /data/file; touch /data/done']
    volumeMounts: [{{name: data, mountPath: /data}}]
"""))
    assert bwrap_cli.wait("pod/share", "phase=Succeeded").returncode == 0
    assert bwrap_cli("logs", "share", "-c", "reader").stdout == "via-shm\nvia-volume\n"
    assert bwrap_cli("logs", "share", "-c", "writer").stdout == "writer saw done\n"


def test_a_container_sees_only_its_image_and_its_mounts(bwrap_cli: Cli, layout: Path, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("do not read")
    bwrap_cli.apply(pod("jail", f"""
  containers:
  - name: main
    image: "oci:{layout}:sh"
    command: [sh, -c, 'ls /; cat {secret} 2>/dev/null || echo no-secret; ls /work /root 2>&1 | head -2 >/dev/null;
                       test -e {tmp_path} && echo host-tmp-visible; echo $$$$ pid; hostname;
                       ps -o pid= | wc -l; touch /bin/x 2>/dev/null || echo read-only-image;
                       touch /tmp/ok && echo tmp-writable']
"""))
    assert bwrap_cli.wait("pod/jail", "phase=Succeeded").returncode == 0
    out = bwrap_cli("logs", "jail").stdout.splitlines()
    assert out[:out.index("no-secret")] == ["bin", "dev", "etc", "proc", "sys", "tmp"]
    assert "host-tmp-visible" not in out
    rest = out[out.index("no-secret") + 1:]
    assert rest[0] == "2 pid"  # own PID namespace: bwrap's init is 1, the shell 2
    assert rest[1] == "jail"
    assert rest[3:] == ["read-only-image", "tmp-writable"]


def test_exit_codes_signals_and_a_missing_executable(bwrap_cli: Cli, layout: Path) -> None:
    image = f"oci:{layout}:sh"
    bwrap_cli.apply(pod("codes", f"""
  containers:
  - {{name: three, image: "{image}", command: [sh, -c, "exit 3"]}}
  - {{name: killed, image: "{image}", command: [sh, -c, "kill -9 $$$$"]}}
  - {{name: missing, image: "{image}", command: [no-such-tool]}}
"""))
    assert bwrap_cli.wait("pod/codes", "phase=Failed").returncode == 0
    states = {c["name"]: c["state"]["terminated"] for c in
              bwrap_cli.json("pod", "codes")["status"]["containerStatuses"]}
    assert states["three"]["exitCode"] == 3 and states["killed"]["exitCode"] == 137
    assert states["missing"]["exitCode"] == 128 and states["missing"]["reason"] == "StartError"
    assert 'executable file not found in $PATH' in states["missing"]["message"]


def test_a_missing_image_fails_the_pod_before_anything_runs(bwrap_cli: Cli, layout: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    bwrap_cli.apply(pod("noimage", f"""
  volumes: [{{name: out, hostPath: {{path: {tmp_path}}}}}]
  initContainers:
  - {{name: first, image: "oci:{layout}:sh", command: [touch, /out/ran],
     volumeMounts: [{{name: out, mountPath: /out}}]}}
  containers:
  - {{name: main, image: "oci:{layout}:no-such-tag", command: ["true"]}}
"""))
    assert bwrap_cli.wait("pod/noimage", "phase=Failed").returncode == 0
    status = bwrap_cli.json("pod", "noimage")["status"]
    assert status["reason"] == "ErrImagePull" and "no-such-tag" in status["message"]
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    assert not marker.exists()  # the init container, whose image was fine, never ran


def test_pipeline_steps_run_in_containers_over_the_workspace(bwrap_cli: Cli, layout: Path) -> None:
    image = f"oci:{layout}:sh"
    bwrap_cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: boxed}}
spec:
  steps:
  - {{name: make, image: "{image}", command: [sh, -c, 'echo $PODLINE_WORKSPACE > data; hostname >> data']}}
  - {{name: use, image: "{image}", dependsOn: [make], command: [sh, -c, 'cat /workspace/data; pwd; ls /']}}
""")
    assert bwrap_cli.wait("pipeline/boxed", "phase=Succeeded").returncode == 0
    out = bwrap_cli("logs", "pipeline/boxed", "-c", "use").stdout.splitlines()
    assert out[:3] == ["/workspace", "boxed-0", "/workspace"]
    assert "workspace" in out[3:] and "home" not in out[3:]
    status = bwrap_cli.json("pipeline", "boxed")["status"]
    assert status["phase"] == "Succeeded"


def test_deleting_a_pipeline_whose_runner_was_killed_leaves_no_ram(bwrap_cli: Cli, layout: Path) -> None:
    """The containers' /dev/shm of a shard lives beside its workspace in RAM; a runner SIGKILLed (a node's
    OOM killer, the controller's hard stop) cannot remove either."""
    image = f"oci:{layout}:sh"
    bwrap_cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: killed}}
spec:
  workspace: {{medium: Memory}}
  steps:
  - {{name: hold, image: "{image}", command: [sh, -c, 'echo x > /dev/shm/x; echo y > y; sleep 300']}}
""")
    uid = bwrap_cli.json("pipeline", "killed")["metadata"]["uid"]
    shm = Path(bwrap_cli.env["PODLINE_SHM_DIR"])
    wait_for(lambda: list(shm.glob(f"podline-{uid}-0.shm/**/x")))
    started = wait_for(lambda: list(bwrap_cli.home.glob("pods/default/killed/*/0/started")))[0]
    runner = json.loads(started.read_text())["pid"]
    kill_session(runner)
    wait_for(lambda: gone(runner))
    bwrap_cli("delete", "pipeline", "killed")
    assert sorted(p.name for p in shm.glob(f"podline-{uid}*")) == []


def test_pods_pull_from_a_real_registry_by_tag_and_digest_then_run_from_the_cache(
        bwrap_cli: Cli, layout: Path, tmp_path: Path) -> None:
    from tests.integration.test_registry import Registry, push

    registry = Registry(tmp_path / "registry")
    try:
        repo = f"{registry.addr}/podline/busybox"
        push(layout, "entry", f"{repo}:1")
        bwrap_cli.apply(pod("by-tag", f"  containers:\n  - {{name: main, image: '{repo}:1'}}\n"))
        assert bwrap_cli.wait("pod/by-tag", "phase=Succeeded").returncode == 0
        status = bwrap_cli.json("pod", "by-tag")["status"]
        digest = status["images"][0]["digest"]
        assert status["images"][0]["pulled"] is True and status["timings"]["image"] > 0
        assert status["containerStatuses"][0]["imageID"] == f"{repo}@{digest}"
        assert bwrap_cli("logs", "by-tag").stdout == "E C\n"
        bwrap_cli.apply(pod("by-digest", f"  containers:\n  - {{name: main, image: '{repo}@{digest}', args: [D]}}\n"))
        assert bwrap_cli.wait("pod/by-digest", "phase=Succeeded").returncode == 0
        assert bwrap_cli.json("pod", "by-digest")["status"]["images"][0]["pulled"] is False  # same digest: cached
    finally:
        registry.stop()
    # The registry is gone: IfNotPresent runs from the node's cache; Always must ask the registry, and fails.
    bwrap_cli.apply(pod("cached", f"  containers:\n  - {{name: main, image: '{repo}:1', args: [again]}}\n"))
    assert bwrap_cli.wait("pod/cached", "phase=Succeeded").returncode == 0
    assert bwrap_cli("logs", "cached").stdout == "E again\n"
    bwrap_cli.apply(pod("always", f"  containers:\n  - {{name: main, image: '{repo}:1', imagePullPolicy: Always}}\n"))
    assert bwrap_cli.wait("pod/always", "phase=Failed").returncode == 0
    status = bwrap_cli.json("pod", "always")["status"]
    assert status["reason"] == "ErrImagePull" and "unreachable" in status["message"]
    assert "startedAt" not in str(status["containerStatuses"])


def test_a_pod_waits_in_image_pull_back_off_while_its_registry_is_down_then_runs(
        bwrap_cli: Cli, layout: Path, tmp_path: Path) -> None:
    """As kubelet: an unreachable registry keeps the pod Pending (ImagePullBackOff, a BackOff event per retry),
    not Failed, so a registry restarting costs a Job none of its backoffLimit; the pull is retried until it works."""
    from tests.integration.test_registry import Registry, push

    bwrap_cli.env.update(PODLINE_IMAGE_PULL_RETRIES="-1", PODLINE_IMAGE_PULL_BACKOFF_MAX_SECONDS="0.3")
    registry = Registry(tmp_path / "registry")
    repo = f"{registry.addr}/podline/busybox"
    push(layout, "entry", f"{repo}:1")
    registry.stop()
    bwrap_cli.apply(pod("patient", f"  containers:\n  - {{name: main, image: '{repo}:1', args: [back]}}\n"))
    bwrap_cli.apply(f"""
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {{name: patient}}
spec:
  steps: [{{name: only, image: '{repo}:1', args: [step]}}]
""")

    def backing_off() -> dict | None:
        status = bwrap_cli.json("pod", "patient")["status"]
        waiting = status.get("containerStatuses", [{}])[0].get("state", {}).get("waiting", {})
        return status if waiting.get("reason") == "ImagePullBackOff" else None
    status = wait_for(backing_off, timeout=30, interval=0.2)
    assert status["phase"] == "Pending" and "reason" not in status
    assert "registry unreachable" in status["containerStatuses"][0]["state"]["waiting"]["message"]
    assert "ImagePullBackOff" in bwrap_cli("get", "pods").stdout.splitlines()[1].split()
    step = wait_for(lambda: (s := bwrap_cli.json("pipeline", "patient")["status"].get("steps", [{}])[0]).get(
        "reason") == "ImagePullBackOff" and s, timeout=30, interval=0.2)
    assert step["phase"] == "Pending" and "registry unreachable" in step["message"]
    registry = Registry(tmp_path / "registry", port=registry.port)  # back, with its images
    try:
        assert bwrap_cli.wait("pod/patient", "phase=Succeeded").returncode == 0
        assert bwrap_cli.wait("pipeline/patient", "phase=Succeeded").returncode == 0
    finally:
        registry.stop()
    assert bwrap_cli("logs", "patient").stdout == "E back\n"
    assert bwrap_cli("logs", "pipeline/patient", "-c", "only").stdout == "E step\n"
    assert "reason" not in bwrap_cli.json("pipeline", "patient")["status"]["steps"][0]
    events = bwrap_cli("describe", "pod", "patient").stdout
    assert "BackOff" in events and "Back-off pulling image" in events


def test_an_image_pull_back_off_ends_at_the_pods_deadline(bwrap_cli: Cli) -> None:
    bwrap_cli.env.update(PODLINE_IMAGE_PULL_RETRIES="-1", PODLINE_IMAGE_PULL_BACKOFF_MAX_SECONDS="60")
    bwrap_cli.apply(pod("late", "  activeDeadlineSeconds: 2\n  containers: [{name: main, image: '127.0.0.1:1/x:1'}]\n"))
    assert bwrap_cli.wait("pod/late", "phase=Failed", timeout=30).returncode == 0
    status = bwrap_cli.json("pod", "late")["status"]
    assert status["reason"] == "DeadlineExceeded"
    assert "startedAt" not in str(status["containerStatuses"])


def test_no_capabilities_and_a_read_only_root_even_when_run_as_root(bwrap_cli: Cli, layout: Path) -> None:
    bwrap_cli.apply(pod("caps", f"""
  containers:
  - name: main
    image: "oci:{layout}:sh"
    command: [sh, -c, 'grep CapEff /proc/self/status; mount -o remount,rw /bin 2>/dev/null || echo no-remount;
                       touch /new 2>/dev/null || echo root-ro; touch /etc/new 2>/dev/null || echo etc-ro']
"""))
    assert bwrap_cli.wait("pod/caps", "phase=Succeeded").returncode == 0
    assert bwrap_cli("logs", "caps").stdout.split() == ["CapEff:", "0" * 16, "no-remount", "root-ro", "etc-ro"]


def test_a_subpath_through_a_symlink_left_in_a_volume_is_refused(bwrap_cli: Cli, layout: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    image = f"oci:{layout}:sh"
    bwrap_cli.apply(pod("escape", f"""
  volumes: [{{name: data, emptyDir: {{}}}}]
  initContainers:
  - {{name: plant, image: "{image}", command: [ln, -s, {victim}, /data/x],
     volumeMounts: [{{name: data, mountPath: /data}}]}}
  containers:
  - name: main
    image: "{image}"
    command: [sh, -c, 'echo pwned > /mnt/file']
    volumeMounts: [{{name: data, mountPath: /mnt, subPath: x}}]
"""))
    assert bwrap_cli.wait("pod/escape", "phase=Failed").returncode == 0
    term = bwrap_cli.json("pod", "escape")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "StartError" and "symbolic link" in term["message"]
    assert list(victim.iterdir()) == []


def test_a_config_file_mounted_with_subpath_and_reserved_mount_paths(bwrap_cli: Cli, layout: Path) -> None:
    image = f"oci:{layout}:sh"
    bwrap_cli.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data: {{app.conf: "level=debug"}}
---
apiVersion: v1
kind: Pod
metadata: {{name: files}}
spec:
  restartPolicy: Never
  volumes: [{{name: cfg, configMap: {{name: cfg}}}}, {{name: scratch, emptyDir: {{}}}}]
  containers:
  - name: main
    image: "{image}"
    command: [sh, -c, 'cat /etc/app.conf; ls /etc/app.conf']
    volumeMounts: [{{name: cfg, mountPath: /etc/app.conf, subPath: app.conf}}]
  - name: proc
    image: "{image}"
    command: ["true"]
    volumeMounts: [{{name: scratch, mountPath: /proc}}]
""")
    assert bwrap_cli.wait("pod/files", "phase=Failed").returncode == 0
    assert bwrap_cli("logs", "files", "-c", "main").stdout == "level=debug/etc/app.conf\n"
    statuses = bwrap_cli.json("pod", "files")["status"]["containerStatuses"]
    states = {c["name"]: c["state"]["terminated"] for c in statuses}
    assert states["main"]["exitCode"] == 0
    assert states["proc"]["reason"] == "StartError" and "reserved" in states["proc"]["message"]


def test_stopping_gives_the_contained_process_its_grace_period(bwrap_cli: Cli, layout: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    bwrap_cli.apply(pod("grace", f"""
  activeDeadlineSeconds: 2
  terminationGracePeriodSeconds: 10
  volumes: [{{name: out, hostPath: {{path: {out}}}}}]
  containers:
  - name: main
    image: "oci:{layout}:sh"
    command: [sh, -c, 'trap "echo cleaning >> /out/log; sleep 0.5; echo cleaned >> /out/log; exit 3" TERM;
                       echo started >> /out/log; while true; do sleep 0.1; done']
    volumeMounts: [{{name: out, mountPath: /out}}]
"""))
    assert bwrap_cli.wait("pod/grace", "phase=Failed", timeout=30).returncode == 0
    assert (out / "log").read_text() == "started\ncleaning\ncleaned\n"
    term = bwrap_cli.json("pod", "grace")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3  # the application's own status, through bwrap


def test_a_read_only_claim_is_read_only_in_the_container(bwrap_cli: Cli, layout: Path) -> None:
    claim = bwrap_cli.home / "shared" / "volumes" / "default" / "results"
    claim.mkdir(parents=True)
    (claim / "file").write_text("kept\n")
    bwrap_cli.apply(pod("ro-claim", f"""  volumes:
  - {{name: data, persistentVolumeClaim: {{claimName: results, readOnly: true}}}}
  containers:
  - name: main
    image: "oci:{layout}:sh"
    command: [sh, -c, 'cat /data/file; touch /data/other 2>&1 || echo refused']
    volumeMounts: [{{name: data, mountPath: /data}}]
"""))
    assert bwrap_cli.wait("pod/ro-claim", "phase=Succeeded").returncode == 0
    out = bwrap_cli("logs", "ro-claim").stdout
    assert out.startswith("kept\n") and out.rstrip().endswith("refused") and not (claim / "other").exists()


def test_home_is_set_as_runc_sets_it(bwrap_cli: Cli, layout: Path) -> None:
    """Docker, containerd and Kubernetes give a container HOME: the image's or the manifest's if set, else its
    user's home in the image's /etc/passwd (root here), else "/"."""
    bwrap_cli.apply(pod("homes", f"""
  containers:
  - {{name: from-passwd, image: "oci:{layout}:sh", command: [sh, -c, 'echo $HOME']}}
  - {{name: from-manifest, image: "oci:{layout}:sh", command: [sh, -c, 'echo $HOME'],
     env: [{{name: HOME, value: /work}}]}}
  - {{name: from-image, image: "oci:{layout}:home", command: [sh, -c, 'echo $HOME']}}
"""))
    assert bwrap_cli.wait("pod/homes", "phase=Succeeded").returncode == 0
    logs = {c: bwrap_cli("logs", "homes", "-c", c).stdout for c in ("from-passwd", "from-manifest", "from-image")}
    assert logs == {"from-passwd": "/root\n", "from-manifest": "/work\n", "from-image": "/from-image\n"}


def test_a_contained_process_over_the_memory_limit_is_oom_killed(bwrap_cli: Cli, layout: Path) -> None:
    """The runner counts the processes inside bwrap's PID namespace (no cgroup limits them here)."""
    bwrap_cli.apply(pod("hog", f"""
  containers:
  - name: main
    image: "oci:{layout}:sh"
    command: [sh, -c, 'busybox dd if=/dev/zero of=/dev/null bs=200M count=1000; echo survived']
    resources: {{limits: {{memory: 64Mi}}}}
"""))
    assert bwrap_cli.wait("pod/hog", "phase=Failed", timeout=30).returncode == 0
    state = bwrap_cli.json("pod", "hog")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (state["reason"], state["exitCode"]) == ("OOMKilled", 137), state
    assert "survived" not in bwrap_cli("logs", "hog").stdout


def test_a_container_resolves_its_own_hostname(bwrap_cli: Cli, layout: Path) -> None:
    """As the kubelet's /etc/hosts has it (helper-79: `hostname -i` said "Unknown host"; MPI launchers and
    torch.distributed look their own name up)."""
    bwrap_cli.apply(pod("named", f"""
  containers:
  - {{name: main, image: "oci:{layout}:sh", command: [sh, -c, 'hostname; grep -c localhost /etc/hosts; hostname -i']}}
"""))
    assert bwrap_cli.wait("pod/named", "phase=Succeeded").returncode == 0
    name, localhost, address = bwrap_cli("logs", "named").stdout.split()
    assert name == "named" and int(localhost) >= 1 and address == host_ip(), (name, localhost, address)
