"""Argo's scopes and results as pure functions over templates and stored nodes (the walker's arithmetic).

What a template's body may reference (`inputs.*`, `outputs.*.path`), what a step or task passes to the
template it calls, what finished steps and tasks offer the ones after them (`steps.NAME.*`, `tasks.NAME.*`,
JSON lists for loops), and how a pod's end becomes a node's phase. Kept apart from the walker so that the
walker reads as the order of events and this as Argo's rules.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any, NamedTuple

from podline.api.dataset import dataset_source
from podline.plan import argo_expr as ex
from podline.runtime.files import parse_rfc3339

REMOTE = ("s3", "http")  # sources of input artifacts outside the workflow
SOURCES = ("from", "raw", *REMOTE)
DONE = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})  # a node that will not change again
FAILED = frozenset({"Failed", "Error"})


class Target(NamedTuple):
    """A template a node runs: its name in a scope (LOCAL, or `namespaced/WT`, `cluster/CWT` of the stored
    templates), and the templateRef that named it, if one did."""

    scope: str
    name: str
    ref: dict[str, Any] | None = None
    inline: dict[str, Any] | None = None  # a step's own template (`inline`), named after the step


def fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def resolve_inputs(template: dict[str, Any], args: dict[str, Any], node: dict[str, Any], globals_: dict[str, str]
                   ) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The scope a template's body sees (globals, its inputs, its outputs' paths) and its input artifacts;
    records the inputs on the node. ExpressionError for a parameter or artifact not supplied.

    A template's own `value`/`default` is substituted with the globals, as Argo's ProcessArgs does (a name it
    lacks stays as written); a steps or DAG template also offers its input artifacts' sources as
    `inputs.artifacts.NAME`, for the `from` of its children's arguments (Argo's createScope)."""
    scope = dict(globals_)
    params = []
    for p in template.get("inputs", {}).get("parameters", []):
        value = args.get("parameters", {}).get(p["name"])
        if value is None:
            own = p.get("value", p.get("default"))
            value = None if own is None else ex.substitute(own, globals_)
        if value is None:
            raise ex.ExpressionError(f"inputs.parameters.{p['name']} was not supplied")
        if p.get("enum") and value not in p["enum"]:
            raise ex.ExpressionError(f"inputs.parameters.{p['name']}: {value!r} is not one of {p['enum']}")
        scope[f"inputs.parameters.{p['name']}"] = value
        params.append({"name": p["name"], "value": value})
    artifacts = []
    for a in template.get("inputs", {}).get("artifacts", []):
        given = args.get("artifacts", {}).get(a["name"])  # the caller's (substituted in its scope), else the
        if given is None:  # template's own, substituted here
            given = {k: ex.substitute(a[k], scope, strict=True) if k in REMOTE else a[k] for k in SOURCES if k in a}
        mode = {"mode": a["mode"]} if a.get("mode") is not None else {}
        path = checked_path(ex.substitute(a["path"], scope, strict=True), f"inputs.artifacts.{a['name']}.path") \
            if a.get("path") else ""
        if "raw" in given:
            artifacts.append({"name": a["name"], "path": path, "raw": given["raw"]["data"], **mode})
        elif "s3" in given or "http" in given:
            artifacts.append({"name": a["name"], "path": path, "remote": remote_source(a["name"], given),
                              "optional": bool(a.get("optional")), **mode})
        elif "from" in given:
            artifacts.append({"name": a["name"], "path": path, "from": given["from"],
                              "optional": bool(a.get("optional")), **mode})
            if kind_of(template) in ("Steps", "DAG"):
                scope[f"inputs.artifacts.{a['name']}"] = given["from"]
        elif not a.get("optional"):
            raise ex.ExpressionError(f"inputs.artifacts.{a['name']} was not supplied")
        if path:
            scope[f"inputs.artifacts.{a['name']}.path"] = path
    for kind in ("parameters", "artifacts"):
        for o in template.get("outputs", {}).get(kind, []):
            path = o.get("valueFrom", {}).get("path") if kind == "parameters" else o.get("path")
            if path:
                scope[f"outputs.{kind}.{o['name']}.path"] = path
    scope["inputs.parameters"] = ex.go_json(params)  # all of them, as Hera's runner scripts read them
    if params or artifacts:
        node["inputs"] = {k: v for k, v in (("parameters", params), ("artifacts", [
            {"name": a["name"], "path": a["path"]} for a in artifacts])) if v}
    return scope, artifacts


def global_outputs(globals_: dict[str, str]) -> dict[str, str]:
    """The `workflow.outputs.*` exported so far: a scope copied from the globals before a step exported one
    is refreshed with them before the next step or task is resolved (Argo resolves against its live globals)."""
    return {k: v for k, v in globals_.items() if k.startswith("workflow.outputs.")}


def checked_path(path: str, what: str) -> str:
    """A container path after substitution: absolute, without `..` or empty parts (a `{{…}}` in it could not
    be checked at apply time)."""
    parts = path.split("/")
    if not path.startswith("/") or "\0" in path or ".." in parts or "" in parts[1:-1] or len(path) > 4096:
        raise ex.ExpressionError(f"{what} {path[:200]!r} must be an absolute path without '..'")
    return path


def output_paths(template: dict[str, Any]) -> None:
    """Check a substituted template's output paths (ExpressionError naming the first bad one)."""
    for o in template.get("outputs", {}).get("parameters", []):
        if o.get("valueFrom", {}).get("path"):
            checked_path(o["valueFrom"]["path"], f"outputs.parameters.{o['name']}.valueFrom.path")
    for o in template.get("outputs", {}).get("artifacts", []):
        if o.get("path"):
            checked_path(o["path"], f"outputs.artifacts.{o['name']}.path")


def loop_items(call: dict[str, Any], scope: dict[str, str]) -> list[Any] | None:
    """The items of withItems / withParam / withSequence, resolved; None for a call without a loop."""
    if "withItems" in call:
        return [ex.substitute(item, scope, strict=True) for item in call["withItems"]]
    if "withParam" in call:
        return ex.parse_items(ex.substitute(call["withParam"], scope, strict=True))
    if "withSequence" in call:
        return ex.expand_sequence(ex.substitute(call["withSequence"], scope, strict=True))
    return None


def call_arguments(call: dict[str, Any], scope: dict[str, str]) -> dict[str, Any]:
    """A step's or task's arguments resolved in the caller's scope: {parameters: {n: v}, artifacts: {n: …}}.
    An `optional` artifact whose `from` names nothing in scope is left out, as Argo leaves it ("Optional
    artifact was not found; it won't be available as an input")."""
    given = call.get("arguments", {})
    params = {p["name"]: ex.substitute(p.get("value", ""), scope, strict=True)
              for p in given.get("parameters", [])}
    artifacts = {}
    for a in given.get("artifacts", []):
        if "from" in a:
            try:
                artifacts[a["name"]] = {"from": ex.substitute(a["from"], scope, strict=True)}
            except ex.ExpressionError:
                if not a.get("optional"):
                    raise
        elif "raw" in a:
            artifacts[a["name"]] = {"raw": {"data": ex.substitute(a["raw"].get("data", ""), scope, strict=True)}}
        else:
            artifacts[a["name"]] = {k: ex.substitute(a[k], scope, strict=True) for k in REMOTE if k in a}
    return {"parameters": params, "artifacts": artifacts}


def remote_source(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """An input artifact from an HTTP server or S3 store, as the runner stages it (`source` URL, the S3 endpoint
    and region, and the Secret keys it needs, resolved into the plan when the pod is launched)."""
    try:
        if "http" in given:
            return {"source": dataset_source(given["http"]["url"])}
        s3 = given["s3"]
        source = dataset_source(f"s3://{s3['bucket']}/{s3['key'].lstrip('/')}")
    except ValueError as exc:
        raise ex.ExpressionError(f"input artifact {name}: {exc}") from None
    out: dict[str, Any] = {"source": source, "s3": {}}
    if s3.get("endpoint"):
        endpoint = s3["endpoint"]
        out["s3"]["endpoint"] = endpoint if "://" in endpoint else \
            f"{'http' if s3.get('insecure') else 'https'}://{endpoint}"
    if s3.get("region"):
        out["s3"]["region"] = s3["region"]
    refs = {k: s3[field] for k, field in (("key", "accessKeySecret"), ("secret", "secretKeySecret")) if field in s3}
    if refs:
        out["secrets"] = refs
    return out


def _second(stamp: str) -> str:
    """A node's time as Argo writes `{{steps.X.startedAt}}`: RFC 3339 in whole seconds (Go's time.RFC3339)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(parse_rfc3339(stamp))))


def _node_scope(key: str, node: dict[str, Any]) -> dict[str, str]:
    """What Argo's buildLocalScope offers of one finished step or task (of a retried one, its last attempt)."""
    out = node.get("outputs", {})
    scope = {f"{key}.status": node["phase"], f"{key}.id": node["id"]}
    for field in ("startedAt", "finishedAt"):
        if node.get(field):
            scope[f"{key}.{field}"] = _second(node[field])
    if node.get("hostNodeName"):
        scope[f"{key}.hostNodeName"] = node["hostNodeName"]
    if "exitCode" in out:
        scope[f"{key}.exitCode"] = out["exitCode"]
    if "result" in out:
        scope[f"{key}.outputs.result"] = out["result"]
    for p in out.get("parameters", []):
        scope[f"{key}.outputs.parameters.{p['name']}"] = p["value"]
    for a in out.get("artifacts", []):
        scope[f"{key}.outputs.artifacts.{a['name']}"] = a.get("location", "")
    return scope


def outputs_scope(prefix: str, step: str, nodes: list[dict[str, Any]], looped: bool) -> dict[str, str]:
    """`steps.NAME.*` / `tasks.NAME.*`; a loop's outputs are JSON lists over its items (written as Go's
    json.Marshal writes them, so a later withParam reads each item's text as Argo would). As Argo's
    processAggregateNodeOutputs, the lists hold only the items that succeeded (not those skipped by `when`,
    omitted, or failed), each output where an item has it."""
    if not nodes:
        return {}
    key = f"{prefix}.{step}"
    if not looped:
        return _node_scope(key, nodes[0])
    outs = [n["outputs"] for n in nodes if n["phase"] == "Succeeded" and n.get("outputs")]
    params = [o["parameters"] for o in outs if o.get("parameters")]
    values: dict[str, list[str]] = {}
    for p in (p for ps in params for p in ps):
        values.setdefault(p["name"], []).append(p["value"])
    scope = {f"{key}.outputs.parameters": ex.go_json([{p["name"]: p["value"] for p in ps} for ps in params]),
             f"{key}.outputs.result": _results_json([_result_item(o["result"]) for o in outs if "result" in o])}
    for name, listed in values.items():
        scope[f"{key}.outputs.parameters.{name}"] = ex.go_json(listed)
    return scope


def _result_item(result: str) -> Any:
    """A loop's aggregated results: a result that is a JSON object is included as that object (as Argo
    does), anything else as its text."""
    try:
        value = json.loads(result, parse_constant=_not_json)
    except ValueError:
        return result
    return value if isinstance(value, dict) else result


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python reads them, Go does not


def _results_json(results: list[Any]) -> str:
    """The results as one JSON list, each object with its keys and numbers as written (Argo keeps a result's
    JSON text); non-ASCII as is and `<`, `>`, `&` escaped, as Go's json.Marshal writes strings."""
    text = json.dumps(results, separators=(",", ":"), ensure_ascii=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: f"\\u{ord(m.group(0)):04x}", text)


def targeted(tasks: list[dict[str, Any]], target: str) -> list[dict[str, Any]]:
    """`dag.target`: the named tasks and every task they depend on, directly or not (the rest never runs)."""
    by_name = {t["name"]: t for t in tasks}
    wanted, pending = set(), target.split()
    while pending:
        name = pending.pop()
        if name not in by_name:
            raise ex.ExpressionError(f"target {name!r} is not a task of this DAG")
        if name not in wanted:
            wanted.add(name)
            pending.extend(ex.depends_names(task_depends(by_name[name], tasks)))
    return [t for t in tasks if t["name"] in wanted]


def task_depends(task: dict[str, Any], tasks: list[dict[str, Any]]) -> str:
    """A DAG task's condition: `depends`, or its `dependencies` joined by &&; a bare reference to a task
    that continues on failure (or error) also accepts that outcome, as Argo rewrites it."""
    expr = task.get("depends") or ex.depends_from_dependencies(task.get("dependencies", []))
    for other in tasks:
        cont = other.get("continueOn", {})
        extra = [r for r, on in (("Failed", cont.get("failed")), ("Errored", cont.get("error"))) if on]
        if extra and expr:
            name = re.escape(other["name"])
            wider = " || ".join(f"{other['name']}.{r}" for r in ("Succeeded", "Skipped", "Daemoned", *extra))
            expr = re.sub(rf"(?<![\w.-]){name}(?![\w-]|\.)", f"({wider})", expr)
    return expr


def dag_phase(tasks: list[dict[str, Any]], phases: dict[str, str]) -> tuple[str, str | None]:
    """A finished DAG's phase, as Argo assesses it: by its leaf tasks (no other task depends on them); an
    Omitted task takes the failure of a branch above it (else counts as succeeded); a leaf that failed
    fails the DAG unless it continues on that. `phases`: each started task's aggregate phase. Returns
    (phase, the task whose failure decided it: an Omitted leaf names the failed task above it)."""
    by_name = {t["name"]: t for t in tasks}
    deps = {t["name"]: ex.depends_names(task_depends(t, tasks)) for t in tasks}
    depended = {d for names in deps.values() for d in names}
    memo: dict[str, tuple[str, str]] = {}

    def effective(name: str) -> tuple[str, str]:
        if name not in memo:
            phase = phases.get(name, "Omitted")
            memo[name] = (phase, name)
            if phase == "Omitted":
                above = [effective(d) for d in deps[name] if d in by_name]
                memo[name] = next((p for p in above if p[0] in FAILED), ("Succeeded", name))
        return memo[name]

    for task in tasks:
        phase, origin = effective(task["name"])
        if task["name"] not in depended and phase in FAILED and not continues(task, phase):
            return phase if phase == "Error" else "Failed", origin
    return "Succeeded", None


def template_outputs(template: dict[str, Any], scope: dict[str, str]) -> dict[str, Any]:
    """A steps/DAG template's own outputs: `valueFrom.parameter` and artifacts `from` its children, as Argo's
    getTemplateOutputsFromScope: a parameter that names nothing takes its `valueFrom.default`, an `optional`
    artifact that names nothing is left out; ExpressionError for any other that names nothing."""
    outputs: dict[str, Any] = {}
    for p in template.get("outputs", {}).get("parameters", []):
        try:
            value = _output_parameter(p, scope)
        except ex.ExpressionError:
            if p.get("valueFrom", {}).get("default") is None:
                raise
            value = p["valueFrom"]["default"]
        if value is not None:
            outputs.setdefault("parameters", []).append({"name": p["name"], "value": value})
    for a in template.get("outputs", {}).get("artifacts", []):
        try:
            if "from" in a:
                location = ex.substitute(a["from"], scope, strict=True)
            elif "fromExpression" in a:  # Argo's conditional artifacts: `cond ? steps.a.outputs.artifacts.x : …`
                location = ex.expression_value(a["fromExpression"], scope, True, ())
            else:
                continue
        except ex.ExpressionError:
            if a.get("optional"):
                continue
            raise
        outputs.setdefault("artifacts", []).append({"name": a["name"], "location": location})
    return outputs


def _output_parameter(param: dict[str, Any], scope: dict[str, str]) -> str | None:
    """One output parameter of a steps/DAG template from its children's outputs (ExpressionError if it names
    nothing in scope)."""
    source = param.get("valueFrom", {})
    if "expression" in source:  # Argo's expr-lang over the children's outputs (`steps['a'].outputs.result`)
        return ex.expression_value(source["expression"], scope, True, ())
    if "parameter" in source:
        return ex.substitute(source["parameter"], scope, strict=True)
    return param.get("value")


def kind_of(template: dict[str, Any]) -> str:
    return "Steps" if "steps" in template else "DAG" if "dag" in template else \
        "Suspend" if "suspend" in template else "Pod"


def continues(call: dict[str, Any], phase: str) -> bool:
    cont = call.get("continueOn", {})
    return bool(cont.get("failed") if phase == "Failed" else cont.get("error"))


def loops(call: dict[str, Any]) -> bool:
    return any(k in call for k in ("withItems", "withParam", "withSequence"))


def grouped(call: dict[str, Any], nodes: list[dict[str, Any]], base: str) -> bool:
    """Is a loop read as its items? Not once it expanded to none ("Skipped, empty params") or failed to
    expand: Argo then has one Skipped node named `base`, read (phase, scope) as a plain step's or task's."""
    return loops(call) and not (len(nodes) == 1 and nodes[0]["name"] == base and nodes[0]["type"] == "Skipped")


def handled(task: str, tasks: list[dict[str, Any]]) -> bool:
    """A task's failure is expected when another task's `depends` asks for it (`task.Failed`, …)."""
    wanted = re.compile(rf"(?<![\w-]){re.escape(task)}\.(Failed|Errored|AllFailed|AnySucceeded)\b")
    return any(wanted.search(t.get("depends", "")) for t in tasks)


def task_result(nodes: list[dict[str, Any]], looped: bool) -> str | list[str]:
    return [n["phase"] for n in nodes] if looped else nodes[0]["phase"]


# A pod ended from outside (its runner or node gone, Slurm's scancel or pre-emption): its containers' exit codes
# (137) are the kill's, not theirs. Argo calls such a step Error ("pod deleted"), which `retryPolicy: OnError` retries.
ENDED_FROM_OUTSIDE = ("RunnerLost", "NodeLost", "Preempted", "Cancelled")


def pod_failure(status: dict[str, Any]) -> tuple[str, str]:
    """Failed or Error with Argo's words, as its inferFailedReason: a pod past its deadline is Failed; a
    container that exited non-zero decides, the main one first: `Failed` with "REASON (exit code N)[: message]"
    whatever the reason (OOMKilled, StartError, Error); a sidecar's 137/143 is the step's end stopping it (the
    sidecars are init containers with restartPolicy Always here). Error when podline could not run it at all,
    or it was ended from outside."""
    if status.get("reason") in ENDED_FROM_OUTSIDE:
        return "Error", status.get("message") or status["reason"]
    if status.get("reason") == "DeadlineExceeded":
        return "Failed", status.get("message", "deadline exceeded")
    containers = status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
    for c in sorted(containers, key=lambda c: c.get("name", "main") != "main"):
        term = c.get("state", {}).get("terminated") or {}
        code = term.get("exitCode")
        if not code or (c.get("name", "main") != "main" and code in (137, 143)):
            continue
        message = f"{term.get('reason') or 'Error'} (exit code {code})"
        if term.get("message"):
            message += f": {term['message']}"
        return "Failed", message
    message = status.get("message") or status.get("reason") or "the pod failed"
    return "Error", message
