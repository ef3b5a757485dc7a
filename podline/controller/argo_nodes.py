"""Walk an Argo Workflow's templates and advance its node tree by one reconcile pass.

Argo's controller keeps its whole memory in `status.nodes`; so does this one. Every pass walks the
templates again from the entrypoint: a node that is already terminal is read, not redone, so a restarted
controller continues where the stored nodes say, and a pod is created once per Pod node (the port records
it in the same save as the node). Node names and ids follow Argo (`wf[0].step`, `wf.task`,
`wf[1].loop(2:item)`, ids `<workflow>-<fnv32a(name)>`) so Argo-aware tools can read the status.

Scopes, as Argo resolves `{{...}}`: the caller resolves a step's or task's arguments, `when` and
`withParam` with the workflow's globals, its own template's inputs, the outputs of the steps or tasks
finished before it, and the loop item; the called template's body sees only the globals and its inputs
(`podline.plan.argo_expr` does the parsing and substitution). DAGs are walked in `argo_dag`, steps in
`argo_steps`, pods, suspends and retries in `argo_leaves`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from podline.api.template_refs import LOCAL, scope_of, with_defaults
from podline.api.workflow_values import PARAM_NAME
from podline.controller.argo_dag import DagWalker
from podline.controller.argo_globals import creation_globals, duration_global, manifest_globals
from podline.controller.argo_hooks import HookWalker
from podline.controller.argo_leaves import LeafWalker
from podline.controller.argo_scope import (
    DONE,
    Target,
    call_arguments,
    fnv32a,
    kind_of,
    loop_items,
    resolve_inputs,
    template_outputs,
)
from podline.controller.argo_steps import StepsWalker
from podline.plan import argo_expr as ex

MAX_DEPTH = 100  # templates calling templates (Argo's recursion, e.g. loop until a coin says heads)
MAX_NODES = 20_000  # a workflow's whole tree: loops of loops must not grow status without bound


class TooManyNodes(Exception):
    """Creating one more node would pass MAX_NODES."""


LATER = ("steps.", "tasks.", "item", "workflow.status", "workflow.failures")


Parents = str | list[str] | None


class Pods(Protocol):
    """What the walker needs from the controller: a pod per Pod node, and the memoization caches."""

    def observe(self, node: dict[str, Any]) -> dict[str, Any] | None: ...  # the pod's status, or None if none yet
    def start(self, node: dict[str, Any], template: dict[str, Any], artifacts: list[dict[str, Any]]) -> bool: ...
    def cached(self, cache: str, key: str) -> dict[str, Any] | None: ...  # a memoized entry, or None
    def remember(self, cache: str, key: str, entry: dict[str, Any]) -> None: ...
    def acquire(self, holder: str, sync: dict[str, Any]) -> str | None: ...  # None: held; else why it waits
    def release(self, holder: str) -> None: ...


class Walker(DagWalker, StepsWalker, LeafWalker, HookWalker):
    def __init__(self, manifest: dict[str, Any], nodes: dict[str, dict[str, Any]], pods: Pods,
                 now: float, stamp: Callable[[float], str], extra_globals: dict[str, str] | None = None,
                 artifact_root: str = "/", stored: dict[str, dict[str, Any]] | None = None,
                 exported: dict[str, str] | None = None, started: str | None = None,
                 hosts: dict[str, str] | None = None) -> None:
        self.wf = manifest
        self.hosts = hosts or {}  # node id -> the host its pod runs on (Argo's hostNodeName)
        self.artifact_root = artifact_root  # where this workflow's artifacts are saved (`from` must lead there)
        self._running: dict[str, int] | None = None  # pods running below each steps/DAG node (parallelism)
        self.depth = 0  # templates nested in the current walk (recursion is capped at MAX_DEPTH)
        self.name = manifest["metadata"]["name"]
        spec = manifest["spec"]
        self.defaults, self.retry = defaults, retry = spec.get("templateDefaults"), spec.get("retryStrategy")
        own = {t["name"]: with_defaults(t, defaults, retry) for t in spec["templates"]}
        self.scopes: dict[str, dict[str, dict[str, Any]]] = {LOCAL: own}
        for key, template in (stored or {}).items():  # status.storedTemplates: `namespaced/WT/TEMPLATE`
            scope, _, name = key.rpartition("/")
            self.scopes.setdefault(scope, {})[name] = with_defaults(template, defaults, retry)
        self.scope = LOCAL  # where a call by template name is looked up: the scope of the template being walked
        self.inlines: dict[str, dict[str, Any]] = {}  # node id -> the inline template it runs (seen this pass)
        self.nodes, self.pods, self.now, self.stamp = nodes, pods, now, stamp
        self.wake: float | None = None
        self.globals = {"workflow.name": self.name, "workflow.status": "Running",  # Argo's globals have the phase
                        "workflow.namespace": manifest["metadata"].get("namespace", "default"),
                        **manifest_globals(manifest), **duration_global(started, now), **(extra_globals or {})}
        if "workflow.creationTimestamp" in self.globals:  # in whole seconds, and in each strftime character
            self.globals.update(creation_globals(self.globals["workflow.creationTimestamp"]))
        for p in manifest["spec"].get("arguments", {}).get("parameters", []):
            value = p.get("value", p.get("default"))
            if value is not None:
                self.globals[f"workflow.parameters.{p['name']}"] = value
        arguments = manifest["spec"].get("arguments", {})
        self.args = {"parameters": {p["name"]: p.get("value", p.get("default", ""))
                                    for p in arguments.get("parameters", [])},
                     "artifacts": {a["name"]: {k: a[k] for k in ("from", "raw") if k in a}
                                   for a in arguments.get("artifacts", [])}}  # the entrypoint's and exit handlers'
        self.outputs: dict[str, str] = {}  # output parameters exported by `globalName`
        for name, value in (exported or {}).items():  # as stored: also those of inline templates, which a new
            self.outputs[name] = value  # walk cannot look up from their nodes before it reaches them again
            self.globals[f"workflow.outputs.parameters.{name}"] = value
        for node in nodes.values():
            self._export(node)

    # --- nodes ---------------------------------------------------------------------------------
    def node_id(self, name: str) -> str:
        return self.name if name == self.name else f"{self.name}-{fnv32a(name)}"

    def target(self, call: dict[str, Any]) -> Target:
        """The template a step or task calls: by templateRef, or by name in the current scope."""
        ref = call.get("templateRef")
        if ref is not None:
            return Target(scope_of(ref), ref["template"], ref)
        if "inline" in call:
            return Target(self.scope, "", None, with_defaults({**call["inline"], "name": call["name"]},
                                                              self.defaults, self.retry))
        return Target(self.scope, call["template"])

    def template_of(self, node: dict[str, Any]) -> dict[str, Any] | None:
        if node["id"] in self.inlines:
            return self.inlines[node["id"]]
        ref = node.get("templateRef")
        if ref is not None:
            return self.scopes.get(scope_of(ref), {}).get(ref["template"])
        return self.scopes.get(node.get("templateScope", LOCAL), {}).get(node.get("templateName", ""))

    def _node(self, name: str, display: str, kind: str, template: Target | None, parent: Parents,
              boundary: str | None) -> dict[str, Any]:
        """The node named `name`, created (as a child of `parent`, or of each of several parents) if new."""
        nid = self.node_id(name)
        node = self.nodes.get(nid)
        if node is None:
            if len(self.nodes) >= MAX_NODES:
                raise TooManyNodes(f"the workflow would have more than {MAX_NODES} nodes")
            node = {"id": nid, "name": name, "displayName": display, "type": kind, "phase": "Pending",
                    "startedAt": self.stamp(self.now)}
            if template is not None and template.ref is not None:
                node["templateRef"] = {k: template.ref[k] for k in ("name", "template", "clusterScope")
                                       if k in template.ref}
            elif template is not None and template.inline is None:
                node["templateName"] = template.name
            if template is not None and self.scope != LOCAL:
                node["templateScope"] = self.scope  # where the call was made: inside a WorkflowTemplate
            if boundary:
                node["boundaryID"] = boundary
            self.nodes[nid] = node
            for above in [parent] if isinstance(parent, str) else parent or []:
                if nid not in self.nodes[above].setdefault("children", []):
                    self.nodes[above]["children"].append(nid)
        return node

    def outbound(self, node: dict[str, Any]) -> list[str]:
        """The nodes a successor hangs under, as Argo links them: a pod (or skipped) node itself, a retry's
        last attempt, a steps/DAG node's recorded outboundNodes, a group's members' outbound nodes."""
        kind = node["type"]
        if kind == "Retry":
            tries = self._attempts(node)
            return self.outbound(tries[-1]) if tries else [node["id"]]
        if kind in ("Steps", "DAG"):
            return node.get("outboundNodes") or [node["id"]]
        if kind in ("StepGroup", "TaskGroup"):
            members = [self.nodes[c] for c in node.get("children", []) if not self.nodes[c]["name"].endswith(".onExit")
                       and self.nodes[c].get("boundaryID") == node.get("boundaryID")]
            return [o for m in members for o in self.outbound(m)] or [node["id"]]
        return [node["id"]]

    def _attempts(self, retry: dict[str, Any]) -> list[dict[str, Any]]:
        prefix = retry["name"] + "("
        return [self.nodes[c] for c in retry.get("children", []) if self.nodes[c]["name"].startswith(prefix)
                and self.nodes[c]["name"][len(prefix):-1].isdigit()]

    def _finish(self, node: dict[str, Any], phase: str, message: str = "") -> dict[str, Any]:
        node["phase"] = phase
        node.setdefault("finishedAt", self.stamp(self.now))
        if message:
            node["message"] = message
        self._export(node)
        return node

    def _export(self, node: dict[str, Any]) -> None:
        """An output parameter with `globalName` becomes `{{workflow.outputs.parameters.NAME}}` once its
        node succeeded (and is listed in the workflow's status.outputs)."""
        template = self.template_of(node)
        if node["phase"] != "Succeeded" or template is None or "outputs" not in node:
            return
        values = {p["name"]: p["value"] for p in node["outputs"].get("parameters", [])}
        for p in template.get("outputs", {}).get("parameters", []):
            name = self._global_name(p.get("globalName"), node)
            if name and p["name"] in values:
                self.outputs[name] = values[p["name"]]
                self.globals[f"workflow.outputs.parameters.{name}"] = values[p["name"]]

    def _global_name(self, given: str | None, node: dict[str, Any]) -> str | None:
        """A `globalName`, one made with `{{…}}` substituted with the node's inputs and the globals (None when
        that leaves no parameter name: nothing is exported)."""
        if not given or "{{" not in given:
            return given
        scope = {**self.globals, **{f"inputs.parameters.{p['name']}": p["value"]
                                    for p in node.get("inputs", {}).get("parameters", [])}}
        name = ex.substitute(given, scope)
        return name if PARAM_NAME.fullmatch(name) else None

    def _wait(self, at: float) -> None:
        self.wake = at if self.wake is None else min(self.wake, at)

    # --- templates -----------------------------------------------------------------------------
    def execute(self, name: str, display: str, target: Target, args: dict[str, Any], parent: Parents,
                boundary: str | None, extra: dict[str, str] | None = None) -> dict[str, Any]:
        """Advance the node `name` running the `target` template with resolved `args` ({parameters: {n: v},
        artifacts: {n: {from|raw}}}); returns the node."""
        template = target.inline if target.inline is not None else self.scopes[target.scope][target.name]
        kind = kind_of(template) if "retryStrategy" not in template else "Retry"
        node = self._node(name, display, kind, target, parent, boundary)
        if target.inline is not None:  # its parallelism, failFast and globalName outputs are read by node id
            self.inlines[node["id"]] = template
        if node["phase"] in DONE:
            return node
        if self.depth >= MAX_DEPTH:
            return self._finish(node, "Error", f"maximum recursion depth exceeded: {MAX_DEPTH} templates nested")
        try:
            scope, artifacts = resolve_inputs(template, args, node, self.globals)
        except ex.ExpressionError as exc:
            return self._finish(node, "Error", str(exc))
        scope.update(extra or {})
        if kind == "Retry" and "memoize" in template and not node.get("children"):  # as Argo: a cached step is
            try:  # one node, looked up before any attempt is made
                if self._recalled(node, template["memoize"], scope):
                    node["type"] = kind_of(template)
                    return self._finish(node, "Succeeded")
            except ex.ExpressionError as exc:
                return self._finish(node, "Error", str(exc))
        if "synchronization" in template:  # the template's locks, before its node does anything
            try:
                waiting = self.pods.acquire(node["id"], template["synchronization"])
            except ex.ExpressionError as exc:
                return self._finish(node, "Error", str(exc))
            if waiting:
                node.update(phase="Pending", message=waiting)
                return node
            if node.get("message", "").startswith("Waiting for "):
                del node["message"]
        caller, self.scope = self.scope, target.scope  # names called from the template's body are its scope's
        self.depth += 1
        try:
            if kind == "Retry":
                node = self._retry(node, target, template, scope, artifacts, boundary)
            else:
                node = self._body(node, template, scope, artifacts)
        finally:
            self.depth -= 1
            self.scope = caller
        if "synchronization" in template and node["phase"] in DONE:
            self.pods.release(node["id"])
        return node

    def _body(self, node: dict[str, Any], template: dict[str, Any], scope: dict[str, str],
              artifacts: list[dict[str, Any]]) -> dict[str, Any]:
        if "steps" in template:
            return self._steps(node, template, scope)
        if "dag" in template:
            return self._dag(node, template, scope)
        if "suspend" in template:
            return self._suspend(node, template, scope)
        return self._pod(node, template, scope, artifacts)

    def argo_view(self, nodes: list[dict[str, Any]], looped: bool) -> list[dict[str, Any]]:
        """The nodes `steps.X.*` / `tasks.X.*` are read from, as Argo's buildLocalScope reads them: a retried
        step's last attempt (its id, times, host and outputs) rather than the Retry node."""
        if looped or len(nodes) != 1 or nodes[0]["type"] != "Retry":
            return nodes
        return self._attempts(nodes[0])[-1:] or nodes

    def _expand(self, name: str, display: str, call: dict[str, Any], scope: dict[str, str], parent: Parents,
                boundary: str) -> list[dict[str, Any]]:
        """One step/task call, or one per loop item: each started (or skipped by `when`) and advanced."""
        try:
            items = loop_items(call, scope)
        except ex.ExpressionError as exc:
            node = self._node(name, display, "Skipped", None, parent, boundary)
            return [self._finish(node, "Error", str(exc))]
        if items == []:  # as Argo's expandStepGroup / executeDAGTask: one Skipped node for no items
            node = self._node(name, display, "Skipped", self.target(call), parent, boundary)
            return [self._finish(node, "Skipped", "Skipped, empty params")]
        calls = [(name, display, {})] if items is None else [
            (f"{name}({i}:{ex.item_label(item)})", f"{display}({i}:{ex.item_label(item)})", ex.item_scope(item))
            for i, item in enumerate(items)]
        out = []
        for child_name, child_display, item_scope in calls:
            local = {**scope, **item_scope}
            existing = self.nodes.get(self.node_id(child_name))
            if existing is not None and existing["phase"] in DONE:
                out.append(existing)
                continue
            try:
                args = call_arguments(call, local)
                when = ex.substitute(call["when"], local, strict=True) if "when" in call else None
                skip = when is not None and not ex.evaluate_when(when)
            except ex.ExpressionError as exc:
                node = self._node(child_name, child_display, "Skipped", self.target(call), parent, boundary)
                out.append(self._finish(node, "Error", str(exc)))
                continue
            if skip and existing is None:
                node = self._node(child_name, child_display, "Skipped", self.target(call), parent, boundary)
                out.append(self._finish(node, "Skipped", f"when '{when}' evaluated false"))
                continue
            out.append(self.execute(child_name, child_display, self.target(call), args, parent, boundary))
        return out

    def _succeed(self, node: dict[str, Any], template: dict[str, Any], scope: dict[str, str]) -> dict[str, Any]:
        """A steps/DAG node whose children are done: its own outputs, then Succeeded (Error if one is missing)."""
        try:
            outputs = template_outputs(template, scope)
        except ex.ExpressionError as exc:
            return self._finish(node, "Error", str(exc))
        if outputs:
            node["outputs"] = outputs
        return self._finish(node, "Succeeded")

    # --- the workflow --------------------------------------------------------------------------
    def run(self, exit_scope: Callable[[dict[str, Any]], dict[str, str]]
            ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Advance the entrypoint, then (once it is done) the exit handler; returns (root, exit node)."""
        spec = self.wf["spec"]
        root = self.execute(self.name, self.name, Target(LOCAL, spec["entrypoint"]), self.args, None, None)
        if root["phase"] in DONE:  # what the workflow's hooks see, in their expressions and their templates
            self.globals["workflow.status"] = root["phase"]
        pending = self._workflow_hooks(root)  # `running`, `success`, … hooks of the workflow, by expression
        hook = spec.get("hooks", {}).get("exit")
        name = spec.get("onExit") or (hook or {}).get("template")
        if root["phase"] not in DONE or not name:
            return root, pending
        template = Target(LOCAL, name)
        self.globals.update(exit_scope(root))  # workflow-wide from here on: the exit handler's steps see them too
        args = self.args
        if hook and "arguments" in hook:
            try:
                args = call_arguments(hook, self.globals)
            except ex.ExpressionError as exc:
                node = self._node(f"{self.name}.onExit", f"{self.name}.onExit", "Skipped", template, None, None)
                return root, self._finish(node, "Error", str(exc))
        exit_node = self.execute(f"{self.name}.onExit", f"{self.name}.onExit", template, args, None, None)
        return root, pending if exit_node["phase"] in DONE and pending is not None else exit_node

