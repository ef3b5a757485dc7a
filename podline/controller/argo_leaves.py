"""The leaves of the Argo walker: a pod per container or script step (memoized outputs taken instead, when
cached), suspend nodes, and the Retry node around any template with a retryStrategy (limit, policy, backoff,
expression), plus template `parallelism` bounds on starting pods.

Mixed into `argo_nodes.Walker`, whose node bookkeeping (`_node`, `_finish`, `_body`, `_attempts`, …) it uses;
kept apart so each file reads as one concern, as `argo_dag` is for DAGs.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from podline.api.workflow_values import MAX_RETRY_LIMIT, retry_limit
from podline.controller.argo_scope import DONE, FAILED, Target, kind_of, output_paths, pod_failure
from podline.plan import argo_expr as ex
from podline.plan import argo_exprlang as exprlang
from podline.plan.workflow_pod import StepPodError, pod_name
from podline.runtime.files import parse_rfc3339

if TYPE_CHECKING:
    from podline.controller.argo_nodes import Pods

MEMO_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")  # a ConfigMap data key
MAX_BACKOFF = 86_400.0  # seconds between attempts, unless backoff.cap says otherwise


def _well_formed(outputs: Any) -> bool:
    """A memoized entry's outputs as podline writes them (an entry edited by hand may not be)."""
    if not isinstance(outputs, dict) or set(outputs) - {"parameters", "result", "exitCode"}:
        return False
    params = outputs.get("parameters", [])
    return isinstance(params, list) and all(
        isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("value"), str) for p in params) \
        and all(isinstance(outputs.get(k, ""), str) for k in ("result", "exitCode"))


class LeafWalker:
    """Pods, suspends and retries; see the module docstring."""

    nodes: dict[str, dict[str, Any]]
    pods: Pods
    now: float
    name: str
    artifact_root: str
    hosts: dict[str, str]
    _running: dict[str, int] | None

    def _retry(self, node: dict[str, Any], target: Target, template: dict[str, Any], scope: dict[str, str],
               artifacts: list[dict[str, Any]], boundary: str | None) -> dict[str, Any]:
        strategy = template["retryStrategy"]
        try:
            limit = _limit(strategy, scope)
        except ex.ExpressionError as exc:
            return self._finish(node, "Error", str(exc))
        policy = strategy.get("retryPolicy") or ("Always" if "expression" in strategy else "OnFailure")  # Argo's
        attempts = self._attempts(node)
        last = attempts[-1] if attempts else None
        if last is not None and last["phase"] not in DONE:
            last = self._body(last, template, {**scope, "retries": str(len(attempts) - 1)}, artifacts)
        if last is not None and last["phase"] in FAILED and self._past_max_duration(strategy, attempts):
            return self._finish(node, last["phase"], "Max duration limit exceeded")  # Argo's words, before its
        again, why_not = self._again(strategy, last, len(attempts), limit, policy) \
            if last is not None and last["phase"] in FAILED else (False, None)  # after maxDuration, as Argo
        if last is None or again:
            if last is not None and not self._backoff_over(strategy, last, len(attempts)):
                node["phase"] = "Running"
                return node
            k = len(attempts)
            child = self._node(f"{node['name']}({k})", f"{node['displayName']}({k})", kind_of(template),
                               target, node["id"], boundary)
            last = self._body(child, template, {**scope, "retries": str(k)}, artifacts)
        if last["phase"] not in DONE:
            node["phase"] = "Running"
            return node
        if "outputs" in last:
            node["outputs"] = last["outputs"]
        return self._finish(node, "Succeeded" if last["phase"] == "Succeeded" else last["phase"],
                            why_not or last.get("message", ""))

    def _again(self, strategy: dict[str, Any], last: dict[str, Any], tried: int, limit: int | None,
               policy: str) -> tuple[bool, str | None]:
        """Whether a failed attempt is retried; if not, the Retry node's message when it is not the attempt's:
        Argo checks the policy, then the limit ("No more retries left"), then the expression."""
        wanted = {"Always": FAILED, "OnFailure": {"Failed"}, "OnError": {"Error"}, "OnTransientError": {"Error"}}
        if last["phase"] not in wanted[policy]:
            return False, None
        if limit is not None and tried > limit:
            return False, "No more retries left"
        if "expression" not in strategy:
            return True, None
        wanted = self._retry_wanted(strategy["expression"], last, tried)
        return wanted is True, None if wanted is not False else "retryStrategy.expression evaluated to false"

    def _past_max_duration(self, strategy: dict[str, Any], attempts: list[dict[str, Any]]) -> bool:
        """backoff.maxDuration: no retry once it has passed since the first attempt started (as Argo)."""
        max_duration = (strategy.get("backoff") or {}).get("maxDuration")
        return bool(max_duration and attempts) and \
            self.now > parse_rfc3339(attempts[0]["startedAt"]) + ex.parse_duration(max_duration)

    def _retry_wanted(self, expression: str, last: dict[str, Any], tried: int) -> bool | None:
        """retryStrategy.expression over Argo's `lastRetry` (exitCode, status, duration, message): true to retry.
        One that cannot be computed (None) retries nothing, and says so on the attempt."""
        ended = parse_rfc3339(last.get("finishedAt", last["startedAt"]))
        scope = {"lastRetry.exitCode": str(last.get("outputs", {}).get("exitCode", "-1")),
                 "lastRetry.status": last["phase"], "lastRetry.message": last.get("message", ""),
                 "lastRetry.duration": str(max(0.0, ended - parse_rfc3339(last["startedAt"]))),
                 "retries": str(tried - 1)}
        try:
            wanted = exprlang.evaluate(expression, scope)
        except (ex.ExpressionError, exprlang.Unresolved) as exc:
            last["message"] = f"{last.get('message', '')} (retryStrategy.expression: {exc})".strip()
            return None
        return wanted is True

    def _backoff_over(self, strategy: dict[str, Any], last: dict[str, Any], tried: int) -> bool:
        backoff = strategy.get("backoff")
        if not backoff or "duration" not in backoff:
            return True
        # factor ** attempts grows past any float: the exponent is capped, the delay by `cap` (or a day)
        delay = ex.parse_duration(backoff["duration"]) * float(backoff.get("factor", 1)) ** min(tried - 1, 60)
        delay = min(delay, ex.parse_duration(backoff["cap"]) if backoff.get("cap") else MAX_BACKOFF)
        ends = parse_rfc3339(last["finishedAt"]) + delay
        if self.now >= ends:
            return True
        self._wait(ends)
        return False

    def _suspend(self, node: dict[str, Any], template: dict[str, Any], scope: dict[str, str]) -> dict[str, Any]:
        """A suspend template: the node runs for its duration, then succeeds (the controller wakes for it)."""
        try:
            seconds = ex.parse_duration(ex.substitute(template["suspend"]["duration"], scope, strict=True))
        except ex.ExpressionError as exc:
            return self._finish(node, "Error", str(exc))
        ends = parse_rfc3339(node["startedAt"]) + seconds
        if self.now >= ends:
            return self._finish(node, "Succeeded")
        node["phase"] = "Running"
        self._wait(ends)
        return node

    # --- a pod ---------------------------------------------------------------------------------
    def _pod(self, node: dict[str, Any], template: dict[str, Any], scope: dict[str, str],
             artifacts: list[dict[str, Any]]) -> dict[str, Any]:
        status = self.pods.observe(node)
        if status is None:
            if "memoize" in template:
                try:
                    if self._recalled(node, template["memoize"], scope):
                        return self._finish(node, "Succeeded")
                except ex.ExpressionError as exc:
                    return self._finish(node, "Error", str(exc))
            if self._stopped_fast(node):
                node["type"] = "Skipped"
                return self._finish(node, "Omitted", "not started: a step of its template failed (failFast)")
            if not self._room(node):
                return node
            try:
                body = ex.substitute({k: v for k, v in template.items() if k not in ("retryStrategy",)},
                                     {**scope, "pod.name": pod_name(self.name, template["name"], node["id"]),
                                      "node.name": node["name"]}, strict=True)
                output_paths(body)
            except ex.ExpressionError as exc:
                return self._finish(node, "Error", str(exc))
            resolved = [{**a, "from": self._location(a["from"])} if "from" in a else a for a in artifacts]
            missing = [a["name"] for a in resolved if "from" in a and a["from"] is None]
            if missing:
                return self._finish(node, "Error", f"input artifact {missing[0]} has no source among this "
                                    "workflow's artifacts (the step that should have saved it did not)")
            try:
                if self.pods.start(node, body, resolved):
                    self._started(node)
            except StepPodError as exc:
                return self._finish(node, "Error", str(exc))
            return node
        if self.hosts.get(node["id"]):  # where the pod runs, as Argo records it (`{{steps.X.hostNodeName}}`)
            node["hostNodeName"] = self.hosts[node["id"]]
        phase = status.get("phase", "Pending")
        outputs = {k: v for k, v in status.get("outputs", {}).items() if k != "error"}
        if outputs:
            node["outputs"] = outputs
        if phase in ("Pending", "Running"):
            node["phase"] = phase
            return node
        ended = latest_finish(status)
        if ended:  # as Argo: when the pod's last container ended, not when the controller noticed (a restart)
            node.setdefault("finishedAt", ended)
        if phase == "Succeeded":
            error = status.get("outputs", {}).get("error")
            if error:
                return self._finish(node, "Error", error)
            memo = node.get("memoizationStatus")
            if memo is not None and not memo["hit"]:
                self.pods.remember(memo["cacheName"], memo["key"], {
                    "nodeID": node["id"], "outputs": node.get("outputs", {}),
                    "creationTimestamp": self.stamp(self.now), "lastHitTimestamp": self.stamp(self.now)})
            return self._finish(node, "Succeeded")
        return self._finish(node, *pod_failure(status))

    def _recalled(self, node: dict[str, Any], memo: dict[str, Any], scope: dict[str, str]) -> bool:
        """Memoization: the node takes the outputs cached under its key, if an entry younger than maxAge is there;
        either way the node records the key it looked up (Argo's memoizationStatus)."""
        key = ex.substitute(memo["key"], scope, strict=True)
        if not MEMO_KEY.fullmatch(key):
            raise ex.ExpressionError(f"memoization key {key[:80]!r} is not a ConfigMap key (letters, digits, "
                                     "'-', '_' and '.', at most 253)")
        cache = memo["cache"]["configMap"]["name"]
        node["memoizationStatus"] = {"hit": False, "key": key, "cacheName": cache}
        entry = self.pods.cached(cache, key)  # ExpressionError: a ConfigMap of that name that is not a cache
        if entry is None or not _well_formed(entry.get("outputs")):
            return False  # a miss: the entry is written anew when the step succeeds
        try:
            age = self.now - parse_rfc3339(entry["creationTimestamp"])
        except (TypeError, ValueError):  # an entry someone else wrote: a miss, overwritten when the step succeeds
            return False
        if "maxAge" in memo and age > ex.parse_duration(memo["maxAge"]):
            return False
        node["memoizationStatus"]["hit"] = True
        if entry["outputs"]:
            node["outputs"] = entry["outputs"]
        return True

    def _stopped_fast(self, node: dict[str, Any]) -> bool:
        """A steps template with `failFast: true` starts no more pods once one of its steps failed (Argo stops
        scheduling, e.g. the items of a loop held back by `parallelism`)."""
        for b in self._boundaries(node):
            template = self.template_of(self.nodes[b]) or {}
            if not template.get("failFast") or "steps" not in template:
                continue
            groups = [n for n in self.nodes.values() if n["type"] == "StepGroup" and n.get("boundaryID") == b]
            if any(self.nodes[c]["phase"] in FAILED and self.nodes[c].get("boundaryID") == b
                   for g in groups for c in g.get("children", [])):
                return True
        return False

    def _boundaries(self, node: dict[str, Any]) -> list[str]:
        chain, boundary = [], node.get("boundaryID")
        while boundary:
            chain.append(boundary)
            boundary = self.nodes[boundary].get("boundaryID")
        return chain

    def _room(self, node: dict[str, Any]) -> bool:
        """Template `parallelism`: no more pods may run below a steps/DAG node than its template allows."""
        limits = [(b, (self.template_of(self.nodes[b]) or {}).get("parallelism"))
                  for b in self._boundaries(node)]
        limits = [(b, limit) for b, limit in limits if limit]
        if not limits:
            return True
        if self._running is None:  # counted once per pass, then kept up to date as pods start
            self._running = {}
            for other in self.nodes.values():
                if other["type"] == "Pod" and other["phase"] not in DONE and self.pods.observe(other) is not None:
                    for b in self._boundaries(other):
                        self._running[b] = self._running.get(b, 0) + 1
        return all(self._running.get(b, 0) < limit for b, limit in limits)

    def _started(self, node: dict[str, Any]) -> None:
        if self._running is not None:
            for b in self._boundaries(node):
                self._running[b] = self._running.get(b, 0) + 1

    def _location(self, reference: str) -> str | None:
        """`{{steps.x.outputs.artifacts.y}}`, substituted by the caller, is a place this workflow saved an
        artifact to: anything else (a path a step printed, say) is refused, so no step reads other files."""
        root = os.path.realpath(self.artifact_root)
        try:
            real = os.path.realpath(reference) if reference.startswith("/") else ""
        except ValueError:  # a NUL byte
            return None
        return reference if real.startswith(root.rstrip("/") + "/") else None


def latest_finish(status: dict[str, Any]) -> str | None:
    """The latest `finishedAt` of the pod's containers (RFC 3339 strings of one format sort as times)."""
    ends = [c["state"]["terminated"].get("finishedAt") for c in
            status.get("initContainerStatuses", []) + status.get("containerStatuses", [])
            if "terminated" in c.get("state", {})]
    return max((e for e in ends if e), default=None)


def _limit(strategy: dict[str, Any], scope: dict[str, str]) -> int | None:
    """The retry limit, a `{{…}}` one substituted in the step's scope (Argo's IntOrString)."""
    if "limit" not in strategy:
        return None
    limit = strategy["limit"]
    if isinstance(limit, int):
        return limit
    text = ex.substitute(limit, scope, strict=True)
    try:
        value = retry_limit(text)  # the rule apply checks a literal limit with
    except ValueError:
        value = None
    if not isinstance(value, int):
        raise ex.ExpressionError(f"retryStrategy.limit {limit!r} is {text!r}, not a whole number from 0 to "
                                 f"{MAX_RETRY_LIMIT}")
    return value
