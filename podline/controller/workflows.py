"""Reconcile one argoproj.io/v1alpha1 Workflow: walk its node tree, start a pod per step, finish it.

Each step is a pod of its own (as in Argo), stored as a child object that the pod reconciler admits,
launches on the context's backend (local processes or one sbatch each) and observes; the workflow reads
the pods' statuses, including the outputs the pod runner collected (see podline.runtime.argo_io). A pod
and the node that started it are written in one transaction, so a controller crash can neither lose a
step nor run it twice. The hand-off between dependent steps needs no timer: a step's runner wakes the
controller when it finishes, and the pass that records it starts the next pods.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from podline.api.checks import check_pod_spec
from podline.api.core import Pod
from podline.api.errors import InvalidObject
from podline.api.pilot import PILOT, PILOT_ID, PILOT_SIZE, PilotSize, parse_pilot
from podline.controller.argo_configmaps import with_values
from podline.controller.argo_locks import status_of
from podline.controller.argo_nodes import TooManyNodes, Walker
from podline.controller.argo_scope import DONE, FAILED
from podline.controller.context import TERMINAL, Ctx
from podline.controller.workflow_holds import (
    collect_claims,
    locks_of,
    make_claims,
    release_all,
    release_finished_nodes,
    release_locks,
    release_pilot,
    remove_claims,
    spec_of,
    workflow_lock,
)
from podline.controller.workflow_start import fix_at_start
from podline.plan.argo_depends import ExpressionError
from podline.plan.workflow_pod import (
    NODE_ANNOTATION,
    StepPodError,
    pilot_flags_match,
    pilot_size,
    pod_name,
    step_pod,
)
from podline.runtime.files import parse_rfc3339, rfc3339
from podline.store import Obj

log = logging.getLogger("podline.controller")
WORKFLOW_DONE = ("Succeeded", "Failed", "Error")
CACHE_LABEL = "workflows.argoproj.io/configmap-type"
MAX_MEMO = 256 * 1024  # bytes of one memoized entry (a ConfigMap holds 1 MiB in all)
KILL_LATE = 10.0  # seconds past the workflow's deadline after which a step's pod that still runs is deleted


class _Pods:
    """The walker's view of this workflow's pods (one per Pod node, recorded in `internal.pods`)."""

    def __init__(self, ctx: Ctx, wf: Obj) -> None:
        self.ctx, self.wf = ctx, wf
        self.children = {p.name: p for p in ctx.store.list(kind="Pod", owner_uid=wf.uid)}
        self.by_node: dict[str, str] = wf.internal.setdefault("pods", {})
        self.active = sum(1 for p in self.children.values() if p.status.get("phase") not in TERMINAL)
        self.root = Path(str(ctx.dirs_for(wf)["shared"])) / "workflows" / wf.uid
        self.pending: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {}  # created at the end of the pass
        self.memos: dict[tuple[str, str], dict[str, Any]] = {}  # memoization entries, written at the end too
        self.caches: dict[str, dict[str, str]] = {}  # the cache ConfigMaps read in this pass

    @functools.cached_property
    def pilot(self) -> PilotSize | None:
        """The pilot allocation its steps run in (`podline.io/pilot`, checked at apply), sized once per pass."""
        wanted = parse_pilot((self.wf.manifest["metadata"].get("annotations") or {}).get(PILOT, ""))
        if wanted is None:
            return None
        spec = spec_of(self.wf)
        templates = [*spec.get("templates", []), *(self.wf.status.get("storedTemplates") or {}).values()]
        return pilot_size(wanted, templates)

    @property
    def manifest(self) -> dict[str, Any]:
        """The workflow as it runs (spec_of: merged with its workflowTemplateRef's, once the first pass stored it;
        with the values its first pass read from ConfigMaps)."""
        return {**self.wf.manifest, "spec": with_values(spec_of(self.wf), self.wf.internal.get("configMapValues", {}))}

    def observe(self, node: dict[str, Any]) -> dict[str, Any] | None:
        name = self.by_node.get(node["id"])
        if name is None:
            return None
        if name in self.pending:
            return {}
        pod = self.children.get(name)
        if pod is None:
            return {"phase": "Failed", "reason": "PodDeleted", "message": f"pod {name} was deleted"}
        return pod.status

    def start(self, node: dict[str, Any], template: dict[str, Any], artifacts: list[dict[str, Any]]) -> bool:
        """Create the node's pod, unless `parallelism` pods already run; StepPodError if it cannot be one."""
        limit = spec_of(self.wf).get("parallelism")
        if limit and self.active >= limit:
            return False
        name, manifest, io = step_pod(self.manifest, node, template, artifacts,
                                      str(self.root / "artifacts" / node["id"]))
        if self.pilot is not None and pilot_flags_match(spec_of(self.wf), template):
            manifest["metadata"]["annotations"].update({PILOT_ID: self.wf.uid, PILOT_SIZE: self.pilot.render()})
        exit_handler = in_exit_handler(self.wf.name, node["name"])
        left = None if exit_handler else _time_left(self.wf, self.ctx.now)  # Argo exempts the exit handler
        if left is not None:  # the pod stops itself at the workflow's deadline, keeping its logs
            current = manifest["spec"].get("activeDeadlineSeconds")
            manifest["spec"]["activeDeadlineSeconds"] = min(left, current) if current else left
        try:
            pod = Pod.model_validate(manifest)
            check_pod_spec(pod.spec, "spec")
        except ValidationError as exc:
            first = exc.errors()[0]
            raise StepPodError(f"the step's pod is invalid at {'.'.join(map(str, first['loc']))}: "
                               f"{first['msg']}") from None
        except InvalidObject as exc:
            raise StepPodError(f"the step's pod is invalid at {exc.path}: {exc.problem}") from None
        clash = self.ctx.store.get("Pod", self.wf.namespace, name)
        if clash is not None and clash.owner_uid != self.wf.uid:
            raise StepPodError(f"a pod named {name} already exists")
        self.pending[name] = (manifest, io, node["name"])
        self.by_node[node["id"]] = name
        self.active += 1
        return True

    def acquire(self, holder: str, sync: dict[str, Any]) -> str | None:
        """A node's locks (`synchronization` of its template): None once held, else why it waits;
        ExpressionError (the node errs) for a semaphore whose limit cannot be read."""
        locks = locks_of(self.ctx)
        try:
            wanted = locks.wanted(self.wf.namespace, sync)
        except ValueError as exc:
            raise ExpressionError(str(exc)) from None
        return locks.acquire(self.wf, holder, wanted, self.ctx.now)

    def release(self, holder: str) -> None:
        release_locks(self.ctx, self.wf, holder)

    def cached(self, cache: str, key: str) -> dict[str, Any] | None:
        """The entry under `key`, or None; ExpressionError (the node errors) if a ConfigMap of that name exists but
        is no cache (a user's own), as Argo refuses one without its label. Each ConfigMap is read once a pass."""
        if (cache, key) in self.memos:
            return self.memos[(cache, key)]
        if cache not in self.caches:
            found = self.ctx.store.get("ConfigMap", self.wf.namespace, cache)
            if found is not None and not _is_cache(found.manifest):
                raise ExpressionError(f"ConfigMap {cache} is not a memoization cache (it lacks the label "
                                      f"{CACHE_LABEL}: Cache)")
            self.caches[cache] = dict(found.manifest.get("data") or {}) if found is not None else {}
        raw = self.caches[cache].get(key)
        try:
            entry = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            return None
        return entry if isinstance(entry, dict) and isinstance(entry.get("creationTimestamp"), str) else None

    def remember(self, cache: str, key: str, entry: dict[str, Any]) -> None:
        self.memos[(cache, key)] = entry

    def _write_memos(self) -> None:
        """Memoized outputs into their caches: ConfigMaps labelled as Argo labels them, made if missing; a
        user's immutable ConfigMap, or an entry larger than MAX_MEMO, is left alone (the step just ran)."""
        for cache in sorted({c for c, _ in self.memos}):
            found = self.ctx.store.get("ConfigMap", self.wf.namespace, cache)
            manifest = found.manifest if found is not None else {
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cache, "namespace": self.wf.namespace,
                                                                      "labels": {CACHE_LABEL: "Cache"}}}
            if not _is_cache(manifest):
                continue  # not a cache: never written into (its lookup already errored the node)
            if manifest.get("immutable"):
                self.ctx.event(self.wf, "MemoizationSkipped", f"ConfigMap {cache} is immutable", "Warning")
                continue
            data = dict(manifest.get("data") or {})
            for (name, key), entry in self.memos.items():
                text = json.dumps(entry, separators=(",", ":"))
                if name == cache and len(text) <= MAX_MEMO:
                    data[key] = text
            self.ctx.store.apply("ConfigMap", self.wf.namespace, cache, {**manifest, "data": data},
                                 context=self.wf.context)
        self.memos.clear()

    def create(self) -> None:
        """The pods this pass started (inside the transaction that also saves the nodes recording them)."""
        self._write_memos()
        for name, (manifest, io, node) in self.pending.items():  # insert only: a pod made meanwhile raises
            self.ctx.store.create_many("Pod", self.wf.namespace, [(name, manifest, {"argo": io})],
                                       owner_uid=self.wf.uid, context=self.wf.context)
            self.ctx.event(self.wf, "WorkflowNodeRunning", f"Running node {node}: pod {name}")
        self.pending.clear()


def _is_cache(configmap: dict[str, Any]) -> bool:
    """A ConfigMap memoization may use: labelled as Argo labels its caches."""
    return configmap.get("metadata", {}).get("labels", {}).get(CACHE_LABEL) == "Cache"


def _failures(nodes: dict[str, dict[str, Any]], pods: dict[str, str] | None = None) -> str:
    """`{{workflow.failures}}`: every Failed or Error node (Pod, Retry, Steps, StepGroup, DAG, …), as Argo gives
    them to an exit handler, each with the name of its pod (`pods`: node id -> the pod podline made; any other
    node gets the name Argo computes for it) and its template (a templateRef's template); `finishedAt` in whole
    seconds, as Kubernetes writes a time."""
    workflow = next((n["name"] for n in nodes.values() if n["id"] == n["name"]), "")
    out = []
    for n in nodes.values():
        if n["phase"] not in FAILED:
            continue
        template = (n.get("templateRef") or {}).get("template") or n.get("templateName", "")
        out.append({"displayName": n["displayName"], "message": n.get("message", ""), "templateName": template,
                    "phase": n["phase"], "podName": (pods or {}).get(n["id"]) or pod_name(workflow, template, n["id"]),
                    "finishedAt": n["finishedAt"][:19] + "Z" if n.get("finishedAt") else None})  # metav1.Time
    return json.dumps(out or None, separators=(",", ":"))  # none: `null`, as Go marshals Argo's nil slice


def _delete(ctx: Ctx, wf: Obj) -> None:
    pods = ctx.store.list(kind="Pod", owner_uid=wf.uid)
    for pod in pods:
        ctx.store.mark_deleted(pod.uid)
    if pods:
        ctx.wake_at(ctx.now + 0.5)
        ctx.store.save(wf)
        return
    shutil.rmtree(Path(str(ctx.dirs_for(wf)["shared"])) / "workflows" / wf.uid, ignore_errors=True)
    remove_claims(ctx, wf)
    release_pilot(ctx, wf, delete=True)
    ctx.store.remove(wf.uid)


def in_exit_handler(workflow: str, node: str) -> bool:
    """Is `node` the workflow's exit handler or below it (`<wf>.onExit`, `<wf>.onExit[0].x`, …)?"""
    base = f"{workflow}.onExit"
    return node == base or node.startswith((base + ".", base + "[", base + "("))


def _time_left(wf: Obj, now: float) -> int | None:
    """Whole seconds (at least 1) until spec.activeDeadlineSeconds; None without one."""
    seconds = spec_of(wf).get("activeDeadlineSeconds")
    if seconds is None or "startedAt" not in wf.status:
        return None
    return max(1, math.ceil(parse_rfc3339(wf.status["startedAt"]) + seconds - now))


def _deadline(ctx: Ctx, wf: Obj, port: _Pods) -> bool:
    """spec.activeDeadlineSeconds: once past, every open node fails. The steps' pods stop themselves then
    (their own deadline was set from the workflow's); one still running KILL_LATE later is deleted."""
    seconds = spec_of(wf).get("activeDeadlineSeconds")
    if seconds is None or "startedAt" not in wf.status:
        return False
    ends = parse_rfc3339(wf.status["startedAt"]) + seconds
    if ctx.now < ends:
        ctx.wake_at(ends)
        return False
    for node in wf.status.get("nodes", {}).values():  # the exit handler runs after the deadline too, as in Argo
        if node["phase"] not in DONE and not in_exit_handler(wf.name, node["name"]):
            node.update(phase="Failed", message="Step exceeded its deadline", finishedAt=rfc3339(ctx.now))
    late = [pod for pod in port.children.values() if pod.status.get("phase") not in TERMINAL and not
            in_exit_handler(wf.name, pod.manifest["metadata"].get("annotations", {}).get(NODE_ANNOTATION, ""))]
    if late and ctx.now < ends + KILL_LATE:
        ctx.wake_at(ends + KILL_LATE)
    for pod in late if ctx.now >= ends + KILL_LATE else []:
        ctx.store.mark_deleted(pod.uid)
    return True


def _finish(ctx: Ctx, wf: Obj, phase: str, message: str) -> None:
    release_all(ctx, wf)  # however it ends, a finished workflow holds and awaits no lock
    wf.status.update(phase=phase, finishedAt=rfc3339(ctx.now))
    wf.status["conditions"] = [{"type": "PodRunning", "status": "False"}, {"type": "Completed", "status": "True"}]
    if message:
        wf.status["message"] = message
    ctx.event(wf, f"Workflow{phase if phase != 'Error' else 'Failed'}", message or f"Workflow {phase.lower()}",
              "Normal" if phase == "Succeeded" else "Warning")


def _progress(nodes: dict[str, dict[str, Any]]) -> str:
    pods = [n for n in nodes.values() if n["type"] == "Pod"]
    return f"{sum(1 for n in pods if n['phase'] == 'Succeeded')}/{len(pods)}"


def reconcile_workflow(ctx: Ctx, wf: Obj) -> None:
    """One pass: the walk (pure computation, no lock held) decides; one transaction then creates the pods it
    started and saves the nodes that record them, so a crash can neither lose nor duplicate a step."""
    if wf.deleted_at:
        with ctx.store.tx():
            release_all(ctx, wf)
            _delete(ctx, wf)
        return
    port = _Pods(ctx, wf)
    if wf.status.get("phase") in WORKFLOW_DONE:
        release_all(ctx, wf)
        wf.settled = port.active == 0
        if wf.settled:
            collect_claims(ctx, wf, wf.status["phase"])
            release_pilot(ctx, wf)
        ctx.store.save(wf)
        return
    if "startedAt" not in wf.status and not wf.internal.get("templatesStored"):
        problem = fix_at_start(ctx, wf)  # before the locks: a workflowTemplateRef's spec may name them
        if problem:
            _finish(ctx, wf, "Error", problem)
            wf.settled = True
            ctx.store.save(wf)
            return
        wf.internal["templatesStored"] = True  # once: a library deleted while the workflow waits is no matter
    if "startedAt" not in wf.status:
        try:
            waiting = workflow_lock(ctx, wf)
        except ValueError as exc:  # a semaphore whose limit cannot be read: the workflow errs, as in Argo
            _finish(ctx, wf, "Error", str(exc))
            wf.settled = True
            ctx.store.save(wf)
            return
        wf.status["synchronization"] = status_of(wf, locks_of(ctx)) if wf.internal.get("locks") else {}
        if waiting:
            wf.status.update(phase="Pending", message=waiting)
            ctx.store.save(wf)
            return
        wf.status.pop("message", None)
        wf.status.update(phase="Running", startedAt=rfc3339(ctx.now), nodes={})
        ctx.event(wf, "WorkflowRunning", "Workflow Running")
        clash = make_claims(ctx, wf)
        if clash:
            _finish(ctx, wf, "Error", clash)
            wf.settled = True
            ctx.store.save(wf)
            return
    nodes = wf.status.setdefault("nodes", {})
    expired = _deadline(ctx, wf, port)
    hosts = {nid: port.children[pod].internal["node"] for nid, pod in port.by_node.items()
             if pod in port.children and port.children[pod].internal.get("node")}  # Argo's hostNodeName
    walker = Walker(port.manifest, nodes, port, ctx.now, rfc3339,
                    {"workflow.uid": wf.uid, "workflow.creationTimestamp": rfc3339(wf.created_at)},
                    str(port.root / "artifacts"), wf.status.get("storedTemplates"),
                    {p["name"]: p["value"] for p in wf.status.get("outputs", {}).get("parameters", [])},
                    started=wf.status.get("startedAt"), hosts=hosts)
    try:
        root, exit_node = walker.run(lambda root: {"workflow.status": root["phase"],
                                                   "workflow.failures": _failures(nodes, port.by_node)})
    except TooManyNodes as exc:
        root, exit_node = _give_up(ctx, wf, port, str(exc)), None
    except Exception as exc:  # a bug or an input the walk cannot take must end the workflow, not loop forever
        log.exception("workflow %s: the walk failed", wf.key)
        root, exit_node = _give_up(ctx, wf, port, f"internal error: {exc!r}"[:500]), None
    with ctx.store.tx():
        port.create()
        _record(ctx, wf, port, walker, root, exit_node, expired)
        if wf.internal.get("locks"):
            release_finished_nodes(ctx, wf)
            wf.status["synchronization"] = status_of(wf, locks_of(ctx))
            ctx.store.save(wf)


def _give_up(ctx: Ctx, wf: Obj, port: _Pods, message: str) -> dict[str, Any]:
    """The tree outgrew its cap: nothing new starts, open nodes fail, running steps are stopped."""
    port.pending.clear()
    for node in wf.status["nodes"].values():
        if node["phase"] not in DONE:
            node.update(phase="Failed", message=message, finishedAt=rfc3339(ctx.now))
    for pod in port.children.values():
        if pod.status.get("phase") not in TERMINAL:
            ctx.store.mark_deleted(pod.uid)
    return {"phase": "Error", "message": message}


def _record(ctx: Ctx, wf: Obj, port: _Pods, walker: Walker, root: dict[str, Any], exit_node: dict[str, Any] | None,
            expired: bool) -> None:
    """The pass's outcome on the workflow: wake-ups, exported outputs, progress, and its end once reached."""
    nodes = wf.status["nodes"]
    if walker.wake is not None:
        ctx.wake_at(walker.wake)
    if walker.outputs:
        wf.status["outputs"] = {"parameters": [{"name": k, "value": v} for k, v in walker.outputs.items()]}
    wf.status["progress"] = _progress(nodes)
    if root["phase"] in DONE and (exit_node is None or exit_node["phase"] in DONE):
        phase = root["phase"] if root["phase"] in FAILED else "Succeeded"
        message = root.get("message", "")
        if expired:
            phase, message = "Failed", "Max duration limit exceeded"
        elif phase == "Succeeded" and exit_node is not None and exit_node["phase"] in FAILED:
            what = "lifecycle hook" if ".hooks." in exit_node["name"] else "exit handler"
            phase, message = "Failed", f"{what} failed: {exit_node.get('message', '')}"
        _finish(ctx, wf, phase, message)
        wf.settled = port.active == 0
        if wf.settled:
            collect_claims(ctx, wf, phase)
            release_pilot(ctx, wf)
    ctx.store.save(wf)
