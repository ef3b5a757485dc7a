"""A persistentVolumeClaim in a pod's plan: a directory named after the claim on the context's shared
directory, created on first use; a read-only claim makes every mount of it read-only."""

from __future__ import annotations

import pytest

from podline.plan.pod import PlanWaiting, plan_pod

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team"},
       "spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "results", "readOnly": True}},
                            {"name": "scratch", "persistentVolumeClaim": {"claimName": "scratch"}}],
                "containers": [{"name": "main", "image": "busybox", "command": ["true"],
                                "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                                 {"name": "scratch", "mountPath": "/scratch"}]}]}}


def nothing(*_: object) -> None:
    return None


def test_a_claim_is_a_directory_on_the_shared_directory() -> None:
    plan = plan_pod(POD, "uid", nothing, dirs={"shared": "/lustre/me/podline", "scratch": None})
    volumes = {v["name"]: v for v in plan["volumes"]}
    assert volumes["data"]["path"] == "/lustre/me/podline/volumes/team/results"
    assert volumes["data"]["hostPathType"] == "DirectoryOrCreate"
    mounts = {m["volume"]: m["readOnly"] for m in plan["containers"][0]["mounts"]}
    assert mounts == {"data": True, "scratch": False}


def test_without_a_shared_directory_a_claim_waits() -> None:
    with pytest.raises(PlanWaiting, match="shared directory"):
        plan_pod(POD, "uid", nothing)
