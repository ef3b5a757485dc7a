"""How objects look to users: full Kubernetes-shaped documents, kubectl-style status words, tables."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import click
import yaml

from podline.api.conditions import decided_condition, final_condition
from podline.api.names import CLUSTER_SCOPED
from podline.api.sidecars import sidecar_names
from podline.cli.common import print_table
from podline.runtime.files import rfc3339
from podline.store import Obj, Store

API_VERSIONS = {"Pod": "v1", "ConfigMap": "v1", "Secret": "v1", "Job": "batch/v1", "Pipeline": "podline.io/v1alpha1",
                "Dataset": "podline.io/v1alpha1", "Workflow": "argoproj.io/v1alpha1",
                "WorkflowTemplate": "argoproj.io/v1alpha1", "ClusterWorkflowTemplate": "argoproj.io/v1alpha1"}


def full_document(store: Store, obj: Obj) -> dict[str, Any]:
    """The object as `kubectl get -o yaml` would show it: manifest + server metadata + status."""
    doc = copy.deepcopy(obj.manifest)
    meta = doc.setdefault("metadata", {})
    meta.update(uid=obj.uid, creationTimestamp=rfc3339(obj.created_at), generation=obj.generation)
    if not obj.namespace:  # a cluster-scoped object
        meta.pop("namespace", None)
    if obj.deleted_at:
        meta["deletionTimestamp"] = rfc3339(obj.deleted_at)
    if obj.owner_uid:
        owner = store.get_uid(obj.owner_uid)
        if owner is not None:
            meta["ownerReferences"] = [{"apiVersion": API_VERSIONS.get(owner.kind, "v1"), "kind": owner.kind,
                                        "name": owner.name, "uid": owner.uid, "controller": True}]
    if obj.kind == "Pod" and obj.internal.get("node"):  # where it runs, where kubectl users read it
        doc.setdefault("spec", {})["nodeName"] = obj.internal["node"]
    if obj.kind in ("Pod", "Job", "Pipeline", "Workflow"):
        doc["status"] = copy.deepcopy(obj.status)
    return doc


def age(since: float | None, now: float | None = None) -> str:
    if since is None:
        return "<none>"
    seconds = int((now or time.time()) - since)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 2:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _container_reason(status: dict[str, Any]) -> str | None:
    state = status.get("state", {})
    for key in ("waiting", "terminated"):
        if key in state and state[key].get("reason"):
            return state[key]["reason"]
    return None


INIT_TROUBLE = ("CrashLoopBackOff", "Error", "StartError", "ImagePullBackOff", "ErrImagePull")  # "Init:<reason>"


def pod_status_word(obj: Obj) -> str:
    """What kubectl prints in the STATUS column."""
    if obj.deleted_at:
        return "Terminating"
    status = obj.status
    if status.get("reason") and status.get("phase") in ("Failed", "Succeeded"):
        return status["reason"]
    inits = status.get("initContainerStatuses", [])
    sidecars = _sidecars(obj)
    over = status.get("phase") in ("Failed", "Succeeded")

    def done(c: dict) -> bool:  # a sidecar counts once it runs (as kubectl's printPod), and after the pod ended
        if c.get("name") in sidecars and (c.get("started") or over):
            return True
        return c.get("state", {}).get("terminated", {}).get("exitCode") == 0
    finished = sum(1 for c in inits if done(c))
    if inits and finished < len(inits):
        for c in inits:
            reason = _container_reason(c)
            if not done(c) and reason in INIT_TROUBLE:
                return f"Init:{reason}"
        return f"Init:{finished}/{len(inits)}"
    word = status.get("phase", "Pending")
    if word == "Running" and obj.internal.get("backend", {}).get("slurmState") == "SUSPENDED":
        return "Suspended"  # `scontrol suspend`: its processes are stopped until it is resumed
    for c in status.get("containerStatuses", []):
        reason = _container_reason(c)
        if reason and reason not in ("PodInitializing",):
            word = reason
    if word == "Pending" and status.get("reason"):
        word = status["reason"]
    return word


def _sidecars(obj: Obj) -> set[str]:
    return sidecar_names(obj.manifest["spec"])


def _restarts(obj: Obj, sidecars: set[str]) -> int:
    """kubectl's RESTARTS: while the pod initializes, the init containers' restarts up to the one it waits on;
    once initialized, the sidecars' and the containers' (an init container that failed twice, then succeeded,
    no longer counts)."""
    restarts = sidecar_restarts = 0
    initializing = False
    for c in obj.status.get("initContainerStatuses", []):
        restarts += c.get("restartCount", 0)
        if c.get("name") in sidecars:
            sidecar_restarts += c.get("restartCount", 0)
            if c.get("started"):
                continue
        elif c.get("state", {}).get("terminated", {}).get("exitCode") == 0:
            continue
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in obj.status.get("conditions", []))
    if initializing and not initialized:
        return restarts
    return sidecar_restarts + sum(c.get("restartCount", 0) for c in obj.status.get("containerStatuses", []))


def pod_row(obj: Obj, wide: bool) -> list[str]:
    sidecars = _sidecars(obj)  # in READY as kubectl counts them: beside the containers
    containers = obj.status.get("containerStatuses", []) + [
        c for c in obj.status.get("initContainerStatuses", []) if c.get("name") in sidecars]
    total = len(obj.manifest["spec"]["containers"]) + len(sidecars)
    ready = sum(1 for c in containers if c.get("ready"))
    row = [obj.name, f"{ready}/{total}", pod_status_word(obj), str(_restarts(obj, sidecars)), age(obj.created_at)]
    if wide:
        row += [obj.internal.get("node", "<none>"), obj.internal.get("run", {}).get("dir", "<none>")]
    return row


def job_status_word(obj: Obj) -> str:
    """kubectl's printer: Complete, Failed, Terminating, Suspended, then the interim conditions, else Running."""
    final = final_condition(obj.status)
    if final is not None:
        return final["type"]
    if obj.deleted_at:
        return "Terminating"
    if obj.manifest["spec"].get("suspend"):
        return "Suspended"
    decided = decided_condition(obj.status)
    return decided["type"] if decided is not None else "Running"


def job_row(obj: Obj, wide: bool) -> list[str]:
    spec = obj.manifest["spec"]
    completions = spec.get("completions")
    succeeded = obj.status.get("succeeded", 0)
    shown = f"{succeeded}/{completions}" if completions is not None else f"{succeeded}/1 of {spec.get('parallelism')}"
    start = obj.internal.get("startedAt")
    end = obj.internal.get("finishedAt") or time.time()
    row = [obj.name, job_status_word(obj), shown, age(start, end) if start else "", age(obj.created_at)]
    if wide:
        row += [str(obj.status.get("active", 0)), str(obj.status.get("failed", 0)),
                obj.status.get("completedIndexes", ""), obj.status.get("failedIndexes", "")]
    return row


def pipeline_row(obj: Obj, wide: bool) -> list[str]:
    status = obj.status
    shards = status.get("shards", [])
    total = obj.manifest["spec"].get("shards", 1)
    word = "Terminating" if obj.deleted_at else status.get("phase", "Pending")
    steps = status.get("steps", [])
    done = sum(1 for s in steps if s.get("phase") == "Succeeded")
    all_steps = len(obj.manifest["spec"]["steps"]) * total
    row = [obj.name, word, f"{status.get('succeeded', 0)}/{total}", f"{done}/{all_steps}", age(obj.created_at)]
    if wide:
        running = sum(1 for s in shards if s.get("phase") == "Running")
        restored = ",".join(sorted({s["restoredFrom"] for s in shards if s.get("restoredFrom")})) or "-"
        row += [str(running), str(status.get("failed", 0)), restored]
    return row


COLUMNS = {  # a Workflow's: cli.workflow_view (as `argo list` prints them)
    "Pipeline": (["NAME", "STATUS", "SHARDS", "STEPS", "AGE"], ["RUNNING", "FAILED", "RESTORED FROM"]),
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["NODE", "RUN DIR"]),
    "Job": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
            ["ACTIVE", "FAILED", "COMPLETED INDEXES", "FAILED INDEXES"]),
    "ConfigMap": (["NAME", "DATA", "AGE"], []),
    "Dataset": (["NAME", "SOURCE", "SHARD BY", "AGE"], ["INCLUDE", "EXCLUDE"]),
    "Secret": (["NAME", "TYPE", "DATA", "AGE"], []),
    "WorkflowTemplate": (["NAME", "AGE"], ["ENTRYPOINT", "TEMPLATES"]),
    "ClusterWorkflowTemplate": (["NAME", "AGE"], ["ENTRYPOINT", "TEMPLATES"]),
}


def row(obj: Obj, wide: bool) -> list[str]:
    if obj.kind == "Pod":
        return pod_row(obj, wide)
    if obj.kind == "Job":
        return job_row(obj, wide)
    if obj.kind == "Pipeline":
        return pipeline_row(obj, wide)
    m = obj.manifest
    if obj.kind == "Dataset":
        spec = m.get("spec", {})
        out = [obj.name, spec.get("source", ""), spec.get("shardBy", "files"), age(obj.created_at)]
        return out + [",".join(spec.get(k, [])) or "-" for k in ("include", "exclude")] if wide else out
    if obj.kind in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
        spec = m.get("spec", {})
        wide_cells = [spec.get("entrypoint", "-"), str(len(spec.get("templates", [])))]
        return [obj.name, age(obj.created_at)] + (wide_cells if wide else [])
    if obj.kind == "ConfigMap":
        return [obj.name, str(len(m.get("data", {})) + len(m.get("binaryData", {}))), age(obj.created_at)]
    return [obj.name, m.get("type", "Opaque"), str(len(m.get("data", {})) + len(m.get("stringData", {}))),
            age(obj.created_at)]


def show_objects(store: Store, kind: str, objs: list[Obj], output: str | None, single: bool,
                 every_namespace: bool = False, namespace: str = "default", show_labels: bool = False) -> None:
    """`get`'s output: one document or a List (json/yaml), names, or a table (kubectl's, or `argo list`'s)."""
    if output in ("json", "yaml"):
        if single and not objs:
            return
        docs = [full_document(store, o) for o in objs]
        data = docs[0] if single else {"apiVersion": "v1", "kind": "List", "items": docs}
        text = json.dumps(data, indent=2) if output == "json" else yaml.safe_dump(data, sort_keys=False)
        click.echo(text.rstrip("\n"))
        return
    if output == "name":
        for o in objs:
            click.echo(f"{kind.lower()}/{o.name}")
        return
    if not objs:
        if not single:
            where = "" if kind in CLUSTER_SCOPED or every_namespace else f" in {namespace} namespace"
            click.echo(f"No resources found{where}.", err=True)
        return
    wide = output == "wide"
    if kind == "Workflow":  # as `argo list` prints them
        from podline.cli import workflow_view

        now = time.time()
        headers, rows = workflow_view.list_headers(wide), [workflow_view.list_row(o, wide, now) for o in objs]
    else:
        base, extra = COLUMNS[kind]
        headers, rows = base + (extra if wide else []), [row(o, wide) for o in objs]
    if every_namespace:  # as kubectl -A: the namespace first
        headers, rows = ["NAMESPACE", *headers], [[o.namespace, *r] for o, r in zip(objs, rows, strict=True)]
    if show_labels:  # as kubectl --show-labels: last
        headers = [*headers, "LABELS"]
        rows = [[*r, ",".join(f"{k}={v}" for k, v in sorted(o.labels.items())) or "<none>"]
                for o, r in zip(objs, rows, strict=True)]
    print_table(headers, rows)
