"""The steps half of the Argo walker: a `steps` template's groups run one after another, the steps of a group
side by side; a group ends when every step (and its hooks) has, and fails with its first failing child, as
Argo's executeStepGroup. Outputs of earlier groups (`steps.X.*`) and exported globals reach the later ones.

Mixed into `argo_nodes.Walker`, whose node bookkeeping (`_node`, `_finish`, `_expand`, `outbound`, …) it
uses; kept apart so each file reads as one concern (DAGs are in `argo_dag`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podline.controller.argo_scope import DONE, FAILED, continues, global_outputs, grouped, outputs_scope


class StepsWalker:
    """`_steps` and its helpers; see the module docstring."""

    nodes: dict[str, dict[str, Any]]
    globals: dict[str, str]
    argo_view: Callable[[list[dict[str, Any]], bool], list[dict[str, Any]]]

    def _steps(self, node: dict[str, Any], template: dict[str, Any], scope: dict[str, str]) -> dict[str, Any]:
        local = dict(scope)
        node["phase"] = "Running"
        previous: dict[str, Any] | None = None
        for i, group in enumerate(template["steps"]):
            gname = f"{node['name']}[{i}]"  # the first group hangs under the steps node, each next one under
            parents = self.outbound(previous) if previous else node["id"]  # the outbound nodes of the last
            gnode = self._node(gname, f"[{i}]", "StepGroup", None, parents, node["id"])
            previous = gnode
            if gnode["phase"] not in DONE:
                local.update(global_outputs(self.globals))  # exported by a step of an earlier group
                self._group(gnode, group, local, node["id"])
            if gnode["phase"] not in DONE:
                return node
            for step in group:
                found, looped = self._step_nodes(gnode, step)
                local.update(outputs_scope("steps", step["name"], self.argo_view(found, looped), looped))
            if gnode["phase"] in FAILED:
                return self._finish(node, "Failed", gnode.get("message", f"step group {gname} failed"))
        node["outboundNodes"] = self.outbound(previous) if previous else [node["id"]]
        return self._succeed(node, template, local)

    def _step_nodes(self, group: dict[str, Any], step: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        """A step's nodes (the group's children by that name) and whether they are a loop's items."""
        base = f"{group['name']}.{step['name']}"
        nodes = [self.nodes[c] for c in group.get("children", [])]
        found = [n for n in nodes if n["name"] == base or n["name"].startswith(base + "(")]
        return found, grouped(step, found, base)

    def _group(self, gnode: dict[str, Any], group: list[dict[str, Any]], scope: dict[str, str], boundary: str) -> None:
        gnode["phase"] = "Running"
        running = False
        failures = []
        for step in group:
            children = self._expand(f"{gnode['name']}.{step['name']}", step["name"], step, scope, gnode["id"],
                                    boundary)
            for child in children:
                if child["phase"] not in DONE:
                    running = True
                elif child["phase"] in FAILED and not continues(step, child["phase"]):
                    failures.append(child)
            for hooks_done, hook_failures in (self._exit_hooks(step, children, boundary, scope, "steps"),
                                              self._expression_hooks(step, children, boundary, scope, "steps")):
                running = running or not hooks_done
                failures += hook_failures
        if running:
            return
        if failures:
            self._finish(gnode, "Failed", f"child '{failures[0]['id']}' failed")
        else:
            self._finish(gnode, "Succeeded")
