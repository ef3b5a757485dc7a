"""The DAG half of the Argo walker: which tasks may start (`depends` / `dependencies`, widened by
`continueOn`, once the hooks of the tasks they depend on are done, as in Argo), where their nodes hang
(under the outbound nodes of the tasks they depend on, as Argo links them), failFast, exit hooks of tasks,
and the DAG's phase from its leaf tasks (see argo_scope.dag_phase).

failFast is what Argo's controller does, not what its field documentation says ("stop scheduling new steps"):
a task whose `depends` holds starts while anything of the DAG still runs, failure or not (Argo's
executeDAGTask has no failFast gate; its maintainers kept that, argo-workflows#5223, and its own
examples/dag-continue-on-fail.yaml relies on it); failFast only decides the DAG's phase once nothing runs.

Mixed into `argo_nodes.Walker`, whose node bookkeeping (`_node`, `_finish`, `execute`, `_expand`,
`outbound`, …) it uses; kept apart so each file reads as one concern.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from podline.controller.argo_scope import (
    DONE,
    FAILED,
    continues,
    dag_phase,
    global_outputs,
    grouped,
    handled,
    loop_items,
    outputs_scope,
    targeted,
    task_depends,
    task_result,
)
from podline.plan import argo_expr as ex

if TYPE_CHECKING:
    from podline.controller.argo_nodes import Parents


class DagWalker:
    """`_dag` and its helpers; see the module docstring."""

    nodes: dict[str, dict[str, Any]]
    globals: dict[str, str]
    argo_view: Callable[[list[dict[str, Any]], bool], list[dict[str, Any]]]

    def _dag(self, node: dict[str, Any], template: dict[str, Any], scope: dict[str, str]) -> dict[str, Any]:
        node["phase"] = "Running"
        dag = template["dag"]
        tasks = dag["tasks"]
        if dag.get("target"):
            try:
                chosen = ex.substitute(dag["target"], scope, strict=True)
                tasks = targeted(tasks, chosen) if chosen.strip() else tasks  # a blank target: every task
            except ex.ExpressionError as exc:
                return self._finish(node, "Error", str(exc))
        local = dict(scope)
        results: dict[str, str | list[str]] = {}
        nodes_of: dict[str, list[dict[str, Any]]] = {}
        looped: dict[str, bool] = {}  # is the task read as its loop's items (a TaskGroup)?
        for task in tasks:
            found = self._task_nodes(node, task)
            if found:
                nodes_of[task["name"]] = found
            looped[task["name"]] = grouped(task, found, f"{node['name']}.{task['name']}")
        deps = {t["name"]: ex.depends_names(task_depends(t, tasks)) for t in tasks}
        fail_fast = dag.get("failFast", True)
        hooks: dict[str, tuple[bool, list[dict[str, Any]]]] = {}  # each task's hooks, advanced once a pass
        progress = True
        while progress:  # a task finishing within this pass (skipped, omitted) can free the next ones
            progress = False
            for task in tasks:
                tname = task["name"]
                local.update(global_outputs(self.globals))  # exported by a task finished earlier in this pass
                current = nodes_of.get(tname, [])
                if current and all(n["phase"] in DONE for n in current):
                    local.update(outputs_scope("tasks", tname, self.argo_view(current, looped[tname]), looped[tname]))
                    if tname not in hooks:
                        hooks[tname] = self._task_hooks(task, current, node["id"], local)
                    if hooks[tname][0]:  # as Argo, the tasks after it wait for its hooks (CheckAllHooksFullfilled)
                        results[tname] = task_result(current, looped[tname])
                    continue
                expr = task_depends(task, tasks)
                ready = ex.evaluate_depends(expr, results) if expr else True
                if ready is None:
                    continue
                tnode_name = f"{node['name']}.{tname}"
                parents = self._below(node, deps[tname])
                if ready is False and not current:
                    omitted = self._node(tnode_name, tname, "Skipped", self.target(task), parents, node["id"])
                    self._finish(omitted, "Omitted", "omitted: depends condition not met")
                    nodes_of[tname], looped[tname] = [omitted], False  # a plain node, loop or not
                    progress = True
                    continue
                before = [n["phase"] for n in current]
                nodes_of[tname] = self._task(node, task, tnode_name, local, parents)
                looped[tname] = grouped(task, nodes_of[tname], tnode_name)
                if [n["phase"] for n in nodes_of[tname]] != before:
                    progress = progress or all(n["phase"] in DONE for n in nodes_of[tname])
        for task in tasks:  # the hooks of tasks still running (a `running` expression hook)
            if task["name"] in nodes_of and task["name"] not in hooks:
                hooks[task["name"]] = self._task_hooks(task, nodes_of[task["name"]], node["id"], local)
        if any(n["phase"] not in DONE for ns in nodes_of.values() for n in ns) or \
                not all(done for done, _ in hooks.values()):
            return node
        hook_failures = [h for _, failed in hooks.values() for h in failed]
        if hook_failures:
            return self._finish(node, "Failed", f"exit handler '{hook_failures[0]['name']}' failed")
        failures = self._dag_failures(tasks, nodes_of, looped)
        if len(nodes_of) < len(tasks):
            if not (fail_fast and failures):
                return node  # waiting on something that cannot finish would be a bug: checks reject cycles
            culprit = failures[0]  # Failed or Error, as the task that stopped it (Argo's assessDAGPhase)
            phase = ex.task_phase(task_result(nodes_of[culprit], looped[culprit]))
            return self._finish(node, phase, f"task '{node['name']}.{culprit}' failed")
        depended = {d for names in deps.values() for d in names}
        node["outboundNodes"] = self._below(node, [t["name"] for t in tasks if t["name"] not in depended])
        phase, culprit = dag_phase(tasks, {t: ex.task_phase(task_result(ns, looped[t])) for t, ns in nodes_of.items()})
        if culprit is not None:
            return self._finish(node, phase, f"task '{node['name']}.{culprit}' failed")
        return self._succeed(node, template, local)

    def _task_hooks(self, task: dict[str, Any], found: list[dict[str, Any]], boundary: str,
                    scope: dict[str, str]) -> tuple[bool, list[dict[str, Any]]]:
        """A task's exit hook and expression hooks advanced: (all started ones done?, the failed ones)."""
        ran = [run(task, found, boundary, scope, "tasks") for run in (self._exit_hooks, self._expression_hooks)]
        return all(done for done, _ in ran), [h for _, failed in ran for h in failed]

    def _dag_failures(self, tasks: list[dict[str, Any]], nodes_of: dict[str, list[dict[str, Any]]],
                      looped: dict[str, bool]) -> list[str]:
        """Finished tasks whose failure fails the DAG: not continued on, not asked for by a `depends`."""
        out = []
        for task in tasks:
            found = nodes_of.get(task["name"], [])
            if not found or any(n["phase"] not in DONE for n in found):
                continue
            phase = ex.task_phase(task_result(found, looped[task["name"]]))
            if phase in FAILED and not handled(task["name"], tasks) and not continues(task, phase):
                out.append(task["name"])
        return out

    def _below(self, dag_node: dict[str, Any], tasks: list[str]) -> Parents:
        """Where a task's node hangs, as Argo links a DAG: under the outbound nodes of the tasks it depends on
        (the DAG node itself for a task without dependencies)."""
        above = [self.nodes.get(self.node_id(f"{dag_node['name']}.{t}")) for t in tasks]
        return [o for n in above if n is not None for o in self.outbound(n)] or [dag_node["id"]]

    def _task_nodes(self, dag_node: dict[str, Any], task: dict[str, Any]) -> list[dict[str, Any]]:
        base = self.nodes.get(self.node_id(f"{dag_node['name']}.{task['name']}"))
        if base is None:
            return []
        if base["type"] == "TaskGroup":
            prefix = base["name"] + "("
            return [self.nodes[c] for c in base.get("children", []) if self.nodes[c]["name"].startswith(prefix)
                    and not self.nodes[c]["name"].endswith(".onExit")] or [base]
        return [base]

    def _task(self, dag_node: dict[str, Any], task: dict[str, Any], name: str, scope: dict[str, str],
              parents: Parents) -> list[dict[str, Any]]:
        if self._expands(task, name, scope):
            group = self._node(name, task["name"], "TaskGroup", None, parents, dag_node["id"])
            children = self._expand(name, task["name"], task, scope, group["id"], dag_node["id"])
            if all(c["phase"] in DONE for c in children):
                self._finish(group, ex.task_phase([c["phase"] for c in children]))
            else:
                group["phase"] = "Running"
            return children
        return self._expand(name, task["name"], task, scope, parents, dag_node["id"])

    def _expands(self, task: dict[str, Any], name: str, scope: dict[str, str]) -> bool:
        """Does a task become a TaskGroup of items? Not when it has no loop, and (as Argo's executeDAGTask)
        not when its loop has no items or cannot be expanded: `_expand` then makes one Skipped node, in
        phase Skipped ("Skipped, empty params") or Error, which `depends` reads like any task's."""
        existing = self.nodes.get(self.node_id(name))
        if existing is not None:
            return existing["type"] == "TaskGroup"
        try:
            return bool(loop_items(task, scope))
        except ex.ExpressionError:
            return False

