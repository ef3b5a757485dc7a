"""Lifecycle hooks of the Argo walker: a step's or task's `onExit` / `hooks.exit` (run after each of its
nodes), and the hooks Argo runs when an expression over the status turns true (`hooks: {running: {expression:
steps["a"].status == "Running", template: notify}}`, on a step, a task, or the workflow), each at most once, as
a node `<node>.hooks.<name>`; a step, and the workflow, are done only when their started hooks are.

Mixed into `argo_nodes.Walker`, whose node bookkeeping (`_node`, `_finish`, `execute`, …) it uses.
"""

from __future__ import annotations

from typing import Any

from podline.controller.argo_scope import DONE, FAILED, Target, call_arguments, loops, outputs_scope
from podline.plan import argo_expr as ex
from podline.plan import argo_exprlang as exprlang


class HookWalker:
    """Exit hooks and expression hooks; see the module docstring."""

    nodes: dict[str, dict[str, Any]]
    name: str
    scope: str
    args: dict[str, Any]
    globals: dict[str, str]
    wf: dict[str, Any]

    def _exit_hooks(self, call: dict[str, Any], children: list[dict[str, Any]], boundary: str,
                    scope: dict[str, str], prefix: str) -> tuple[bool, list[dict[str, Any]]]:
        """A step's or task's `onExit` (or `hooks.exit`): run after each of its finished (not skipped) nodes,
        as a child of it named `<node>.onExit`, with the workflow's arguments or the hook's own, which may name
        the step's outputs (`{{steps.NAME.…}}` / `{{tasks.NAME.…}}`). (all done?, the failed ones)."""
        hook = call.get("hooks", {}).get("exit")
        name = call.get("onExit") or (hook or {}).get("template")
        if not name:
            return True, []
        template = Target(self.scope, name)
        if not all(c["phase"] in DONE for c in children):  # a loop's hooks see all of its items' outputs
            return False, []
        finished = [c for c in children if c["phase"] in DONE and c["phase"] not in ("Skipped", "Omitted")]
        args = self.args
        if finished and hook and "arguments" in hook:
            local = {**scope, **outputs_scope(prefix, call["name"], children, loops(call))}
            try:
                args = call_arguments(hook, local)
            except ex.ExpressionError as exc:
                node = self._node(f"{finished[0]['name']}.onExit", f"{finished[0]['displayName']}.onExit",
                                  "Skipped", template, finished[0]["id"], boundary)
                return True, [self._finish(node, "Error", str(exc))]
        hooks = [self.execute(f"{c['name']}.onExit", f"{c['displayName']}.onExit", template, args, c["id"],
                              boundary) for c in finished]
        done = all(c["phase"] in DONE for c in children) and all(h["phase"] in DONE for h in hooks)
        return done, [h for h in hooks if h["phase"] in FAILED]

    def _expression_hooks(self, call: dict[str, Any], children: list[dict[str, Any]], boundary: str,
                          scope: dict[str, str], prefix: str) -> tuple[bool, list[dict[str, Any]]]:
        """A step's or task's hooks other than `exit`: for each of its nodes (not skipped), a hook starts once its
        expression holds over `steps.NAME.status` (or `tasks.…`), the node's outputs and the workflow's globals.
        (all started hooks done?, the failed ones)."""
        hooks = {k: h for k, h in sorted(call.get("hooks", {}).items()) if k != "exit"}
        done, failures = True, []
        for child in children if hooks else []:
            if child["phase"] in ("Skipped", "Omitted"):
                continue
            local = {"workflow.status": "Running", **scope, f"{prefix}.{call['name']}.status": child["phase"]}
            if child["phase"] in DONE:
                local.update(outputs_scope(prefix, call["name"], [child], False))
            for key, hook in hooks.items():
                node = self._hook(f"{child['name']}.hooks.{key}", f"{child['displayName']}.hooks.{key}", hook,
                                  local, child["id"], boundary)
                if node is not None and node["phase"] not in DONE:
                    done = False
                elif node is not None and node["phase"] in FAILED:
                    failures.append(node)
        return done, failures

    def _workflow_hooks(self, root: dict[str, Any]) -> dict[str, Any] | None:
        """The workflow's own hooks other than `exit`, over `workflow.status`; the first started one still
        running or failed (the workflow waits for it, and fails with it, as for its exit handler), else None."""
        hooks = {k: h for k, h in sorted(self.wf["spec"].get("hooks", {}).items()) if k != "exit"}
        local = {**self.globals, "workflow.status": root["phase"] if root["phase"] in DONE else "Running"}
        started = [self._hook(f"{self.name}.hooks.{key}", f"{self.name}.hooks.{key}", hook, local, None, None)
                   for key, hook in hooks.items()]
        return next((n for n in started if n is not None and (n["phase"] not in DONE or n["phase"] in FAILED)),
                    None)

    def _hook(self, name: str, display: str, hook: dict[str, Any], scope: dict[str, str], parent: str | None,
              boundary: str | None) -> dict[str, Any] | None:
        """The hook's node: advanced if it started before, started if its expression now holds, else None."""
        nid = self.node_id(name)
        if nid not in self.nodes:
            try:
                fires = exprlang.evaluate(hook["expression"], scope) is True
            except (ex.ExpressionError, exprlang.Unresolved):
                fires = False  # not yet decidable (a name not in scope), or never: the hook does not run
            if not fires:
                return None
        target = Target(self.scope, hook["template"])
        try:
            args = call_arguments(hook, scope) if "arguments" in hook else self.args
        except ex.ExpressionError as exc:
            node = self._node(name, display, "Skipped", target, parent, boundary)
            return self._finish(node, "Error", str(exc))
        return self.execute(name, display, target, args, parent, boundary)
