"""`describe pod`'s container block reads as kubectl's: ids, command and args one per line, resources,
where each environment variable comes from, and the mounts."""

from __future__ import annotations

import pytest

from podline.cli.describe import _container_block


def test_a_container_block_lists_ids_argv_resources_environment_and_mounts(capsys: pytest.CaptureFixture[str]) -> None:
    spec = {"name": "main", "image": "reg/x:1", "command": ["sh", "-c"], "args": ["echo 'a  b'\nexit 3"],
            "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "500m"}},
            "env": [{"name": "A", "value": "1"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "p", "optional": True}}}],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "X_"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True},
                             {"name": "work", "mountPath": "/w", "subPath": "sub"}]}
    status = {"name": "main", "containerID": "podline://u/main", "imageID": "reg/x@sha256:ab",
              "state": {"waiting": {"reason": "ImagePullBackOff"}}, "ready": False, "restartCount": 0}
    _container_block("Containers", [spec], [status])
    out = capsys.readouterr().out.splitlines()
    assert out[:12] == [
        "Containers:", "  main:",
        "    Container ID:       podline://u/main",
        "    Image:              reg/x:1",
        "    Image ID:           reg/x@sha256:ab",
        "    Command:", "      sh", "      -c",
        "    Args:", "      echo 'a  b'", "      exit 3",
        "    State:              Waiting"]
    assert out[out.index("    Limits:"):] == [
        "    Limits:", "      memory:             128Mi",
        "    Requests:", "      cpu:                500m",
        "    Environment:",
        "      A:  1",
        "      POD:   (v1:metadata.name)",
        "      CPUS:   (limits.cpu)",
        "      K:  <set to the key 'k' of config map 'cm'>  Optional: false",
        "      S:  <set to the key 'p' in secret 's'>  Optional: true",
        "    Environment Variables from:",
        "      settings  ConfigMap with prefix 'X_'  Optional: false",
        "    Mounts:",
        "      /data from data (ro)",
        '      /w from work (rw,path="sub")']


def test_a_bare_container_says_none_where_kubectl_does(capsys: pytest.CaptureFixture[str]) -> None:
    _container_block("Containers", [{"name": "c", "image": "busybox"}], [])
    out = capsys.readouterr().out
    assert "    Command:            <image default>" in out and "    Image ID:           <none>" in out
    assert "    Environment:        <none>" in out and "    Mounts:             <none>" in out
