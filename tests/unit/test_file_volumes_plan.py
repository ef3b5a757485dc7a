"""configMap, secret and downwardAPI volumes in a pod's plan: always mounted read-only (with the host runtime,
which cannot mount, their files lose the write bits), and an item naming a key the object lacks keeps the
pod from starting unless the volume is optional."""

from __future__ import annotations

from typing import Any

import pytest

from podline.api.core import ConfigMap, Secret
from podline.plan.pod import PlanWaiting, plan_pod

CM = ConfigMap.model_validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
                               "data": {"a": "1"}})
SEC = Secret.model_validate({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
                             "stringData": {"password": "p"}})


def lookup(kind: str, _namespace: str, name: str) -> ConfigMap | Secret | None:
    return {("ConfigMap", "cm"): CM, ("Secret", "sec"): SEC}.get((kind, name))


def pod(volumes: list[dict[str, Any]], read_only: bool = False) -> dict[str, Any]:
    mounts = [{"name": v["name"], "mountPath": f"/{v['name']}", "readOnly": read_only} for v in volumes]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"volumes": volumes, "containers": [{"name": "main", "image": "busybox", "command": ["true"],
                                                         "volumeMounts": mounts}]}}


FILES = [{"name": "cfg", "configMap": {"name": "cm"}}, {"name": "sec", "secret": {"secretName": "sec"}},
         {"name": "info", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
         {"name": "scratch", "emptyDir": {}}]


@pytest.mark.parametrize("runtime", ["host", "bwrap"])
def test_files_volumes_are_mounted_read_only_by_every_container(runtime: str) -> None:
    plan = plan_pod(pod(FILES), "uid", lookup, runtime=runtime)
    mounts = {m["volume"]: m["readOnly"] for m in plan["containers"][0]["mounts"]}
    assert mounts == {"cfg": True, "sec": True, "info": True, "scratch": False}
    modes = {v["name"]: [f["mode"] for f in v["files"]] for v in plan["volumes"] if v["type"] == "files"}
    # the modes stay as SPEC and Kubernetes show them (Secret files 0600); the host runtime, which has no mount
    # namespace, cannot make the volume read-only (its runner is often root, for whom modes change nothing)
    assert modes == {"cfg": [0o644], "sec": [0o600], "info": [0o644]}


@pytest.mark.parametrize(("volume", "message"), [
    ({"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "missing", "path": "m.txt"}]}},
     "configmap references non-existent config key: missing"),
    ({"name": "sec", "secret": {"secretName": "sec", "items": [{"key": "password", "path": "p"},
                                                                 {"key": "missing", "path": "m"}]}},
     "secret references non-existent secret key: missing")])
def test_an_item_with_a_missing_key_keeps_the_pod_from_starting(volume: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanWaiting) as waiting:
        plan_pod(pod([volume]), "uid", lookup)
    assert waiting.value.reason == "CreateContainerConfigError" and waiting.value.message == message


def test_an_optional_volume_leaves_out_missing_keys_and_objects() -> None:
    volumes = [{"name": "cfg", "configMap": {"name": "cm", "optional": True,
                                             "items": [{"key": "a", "path": "a.txt"}, {"key": "gone", "path": "g"}]}},
               {"name": "none", "secret": {"secretName": "nowhere", "optional": True,
                                           "items": [{"key": "k", "path": "k"}]}}]
    plan = plan_pod(pod(volumes), "uid", lookup, runtime="bwrap")
    assert [[f["path"] for f in v["files"]] for v in plan["volumes"]] == [["a.txt"], []]
