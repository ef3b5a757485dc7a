"""configMap, secret and downwardAPI volumes and hostPath types on the local backend, as kubelet has them:
the files volumes are read-only in a bubblewrap container, a volume item naming a missing key keeps the pod
Pending until the key exists, and a hostPath that is not of its `type` fails the pod's mount."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_for
from tests.integration.test_bwrap_pods import bwrap_cli, layout, pod

__all__ = ["bwrap_cli", "layout"]  # fixtures of the bwrap tests, used here

NO_BWRAP = shutil.which("bwrap") is None or subprocess.run(
    ["bwrap", "--ro-bind", "/", "/", "true"], capture_output=True).returncode != 0

OBJECTS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {app.conf: "level=debug"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {password: s3cr3t}
---
"""


@pytest.mark.skipif(NO_BWRAP, reason="bubblewrap is not installed or cannot create namespaces here")
def test_files_volumes_are_read_only_in_the_container(bwrap_cli: Cli, layout: Path) -> None:
    attempts = " ".join(f"echo tamper 2>/dev/null > {target} || echo refused;" for target in (
        "/cfg/app.conf", "/sec/password", "/info/name", "/cfg/new", "/etc/app.conf"))
    bwrap_cli.apply(OBJECTS + pod("reader", f"""  volumes:
  - {{name: cfg, configMap: {{name: cfg}}}}
  - {{name: sec, secret: {{secretName: sec}}}}
  - {{name: info, downwardAPI: {{items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]}}}}
  containers:
  - name: main
    image: "oci:{layout}:sh"
    command: [sh, -c, '{attempts} rm -f /cfg/app.conf 2>/dev/null || echo kept;
                       cat /cfg/app.conf /sec/password /info/name /etc/app.conf']
    volumeMounts:
    - {{name: cfg, mountPath: /cfg, readOnly: false}}
    - {{name: sec, mountPath: /sec}}
    - {{name: info, mountPath: /info}}
    - {{name: cfg, mountPath: /etc/app.conf, subPath: app.conf}}
"""))
    assert bwrap_cli.wait("pod/reader", "phase=Succeeded").returncode == 0, \
        bwrap_cli("describe", "pod", "reader").stdout
    out = bwrap_cli("logs", "reader").stdout
    assert out == "refused\n" * 5 + "kept\nlevel=debugs3cr3treaderlevel=debug", out


def test_an_item_with_a_missing_key_waits_for_it(cli: Cli) -> None:
    cli.apply(OBJECTS + pod("keyed", """  volumes:
  - {name: cfg, configMap: {name: cfg, items: [{key: missing, path: m.txt}]}}
  - {name: opt, secret: {secretName: sec, optional: true, items: [{key: absent, path: a}, {key: password, path: p}]}}
  containers:
  - {name: main, image: busybox, command: [sh, -c, 'cat /cfg/m.txt; ls /opt'],
     volumeMounts: [{name: cfg, mountPath: /cfg}, {name: opt, mountPath: /opt}]}
"""))
    wait_for(lambda: "non-existent config key: missing" in cli("describe", "pod", "keyed").stdout)
    status = cli.json("pod", "keyed")["status"]
    assert status["phase"] == "Pending", status
    cli.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {missing: arrived}\n")
    assert cli.wait("pod/keyed", "phase=Succeeded").returncode == 0, cli("describe", "pod", "keyed").stdout
    assert cli("logs", "keyed").stdout == "arrivedp\n"  # the optional secret's absent key is left out


def test_host_path_types_socket_and_devices_are_checked(cli: Cli, tmp_path: Path) -> None:
    regular, sock_path = tmp_path / "not-a-socket", tmp_path / "s.sock"
    regular.write_text("x")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(sock_path))
        for name, path, wanted in (("sock", sock_path, "Socket"), ("fake", regular, "Socket"),
                                   ("chr", "/dev/null", "CharDevice"), ("blk", "/dev/null", "BlockDevice")):
            cli.apply(pod(name, f"""  volumes: [{{name: h, hostPath: {{path: {path}, type: {wanted}}}}}]
  containers: [{{name: main, image: busybox, command: ["true"], volumeMounts: [{{name: h, mountPath: /h}}]}}]
"""))
        assert cli.wait("pod/sock", "phase=Succeeded").returncode == 0
        assert cli.wait("pod/chr", "phase=Succeeded").returncode == 0
        for name, what in (("fake", f"{regular} is not a socket file"), ("blk", "/dev/null is not a block device")):
            assert cli.wait(f"pod/{name}", "phase=Failed").returncode == 0
            status = cli.json("pod", name)["status"]
            assert status["reason"] == "FailedMount" and status["message"] == f"hostPath type check failed: {what}"
