"""The pure rules of WorkflowTemplate references (podline.api.template_refs): Argo's merge of a Workflow onto
its workflowTemplateRef, and the templates a workflow reaches through templateRef, found transitively."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podline.api.template_refs import Unresolved, effective_spec, merge_spec, stored_templates, with_defaults
from podline.backends.registry import Backends
from podline.controller import loop
from podline.store import Store


def pod(name: str) -> dict[str, Any]:
    return {"name": name, "container": {"image": "busybox"}}


def steps(name: str, *calls: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "steps": [[{"name": f"s{i}", **call}] for i, call in enumerate(calls)]}


def ref(name: str, template: str, cluster: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"templateRef": {"name": name, "template": template}}
    if cluster:
        out["templateRef"]["clusterScope"] = True
    return out


def library(**objects: dict[str, Any]) -> Any:
    """A lookup over template objects named `ns_NAME` (namespaced) or `cl_NAME` (cluster-scoped)."""
    def lookup(cluster: bool, name: str) -> dict[str, Any] | None:
        return objects.get(f"{'cl' if cluster else 'ns'}_{name.replace('-', '_')}")
    return lookup


def test_the_workflow_s_fields_win_and_arguments_merge_by_name() -> None:
    base = {"entrypoint": "main", "parallelism": 2, "templates": [pod("main")],
            "arguments": {"parameters": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}],
                          "artifacts": [{"name": "f", "raw": {"data": "x"}}]}}
    own = {"workflowTemplateRef": {"name": "t"}, "parallelism": 5,
           "arguments": {"parameters": [{"name": "c", "value": "3"}, {"name": "b", "value": "two"}]}}
    merged = merge_spec(base, own)
    assert merged["parallelism"] == 5 and merged["entrypoint"] == "main" and "workflowTemplateRef" not in merged
    assert merged["arguments"]["parameters"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "two"},
                                                 {"name": "c", "value": "3"}]
    assert merged["arguments"]["artifacts"] == [{"name": "f", "raw": {"data": "x"}}]
    merged["templates"].append(pod("other"))
    assert len(base["templates"]) == 1  # a copy: the stored template object is never changed


def test_maps_and_named_lists_merge_strategically_as_argo_joins_specs() -> None:
    base = {"podMetadata": {"labels": {"team": "a"}}, "volumes": [{"name": "data", "emptyDir": {}}],
            "arguments": {"parameters": [{"name": "p", "value": "x", "enum": ["x", "y"]}]},
            "volumeClaimTemplates": [{"metadata": {"name": "w"}}]}
    own = {"podMetadata": {"annotations": {"owner": "me"}}, "volumes": [{"name": "extra", "emptyDir": {}}],
           "arguments": {"parameters": [{"name": "p", "value": "y"}]},
           "volumeClaimTemplates": [{"metadata": {"name": "v"}}]}
    merged = merge_spec(base, own)
    assert merged["podMetadata"] == {"labels": {"team": "a"}, "annotations": {"owner": "me"}}
    assert [v["name"] for v in merged["volumes"]] == ["data", "extra"]
    assert merged["arguments"]["parameters"] == [{"name": "p", "value": "y", "enum": ["x", "y"]}]
    assert merged["volumeClaimTemplates"] == [{"metadata": {"name": "v"}}]  # entries without a name: replaced


def test_effective_spec_needs_the_template_object_and_an_entrypoint() -> None:
    own = {"workflowTemplateRef": {"name": "lib", "clusterScope": True}}
    with pytest.raises(Unresolved) as missing:
        effective_spec(own, library())
    assert (missing.value.path, missing.value.problem) == ("spec.workflowTemplateRef.name",
                                                          "no ClusterWorkflowTemplate named 'lib'")
    with pytest.raises(Unresolved) as no_entry:
        effective_spec(own, library(cl_lib={"templates": [pod("a")]}))
    assert no_entry.value.path == "spec.entrypoint"
    assert effective_spec({**own, "entrypoint": "a"}, library(cl_lib={"templates": [pod("a")]}))["entrypoint"] == "a"
    plain = {"entrypoint": "a", "templates": [pod("a")]}
    assert effective_spec(plain, library()) is plain


def test_the_templates_reached_are_found_through_chains_of_libraries_and_cycles_end() -> None:
    lookup = library(
        ns_a={"templates": [steps("go", ref("b", "go")), steps("unused-a", ref("gone", "x"))]},
        ns_b={"templates": [steps("go", {"template": "leaf"}, ref("a", "go"), ref("c", "leaf", cluster=True)),
                            pod("leaf")]},
        cl_c={"templates": [pod("leaf")]},
    )
    spec = {"templates": [{"name": "main", "dag": {"tasks": [{"name": "t", **ref("a", "go")}]}}]}
    # only what is reached: a's unused template (whose reference is broken) is neither read nor stored
    assert sorted(stored_templates(spec, lookup)) == ["cluster/c/leaf", "namespaced/a/go", "namespaced/b/go",
                                                     "namespaced/b/leaf"]
    assert stored_templates({"templates": [pod("main")]}, lookup) == {}


def test_a_missing_template_is_named_at_the_workflow_s_call() -> None:
    spec = {"templates": [steps("main", {"template": "x"}, ref("a", "nope"))]}
    with pytest.raises(Unresolved) as exc:
        stored_templates(spec, library(ns_a={"templates": [pod("go")]}))
    assert exc.value.path == "spec.templates[0].steps[1][0].templateRef.template"
    assert exc.value.problem == "no template named 'nope' in WorkflowTemplate 'a'"
    deep = {"templates": [steps("main", ref("a", "go"))]}
    with pytest.raises(Unresolved) as exc:
        stored_templates(deep, library(ns_a={"templates": [steps("go", ref("gone", "x", cluster=True))]}))
    assert exc.value.path == "spec.templates[0].steps[0][0].templateRef"
    assert exc.value.problem == ("WorkflowTemplate 'a' refers at spec.templates[0].steps[0][0].templateRef.name to "
                                 "a missing template: no ClusterWorkflowTemplate named 'gone'")


def test_a_template_object_gone_before_the_first_pass_makes_the_workflow_an_error(tmp_path: Path) -> None:
    """`apply` checked the reference; the template object was deleted before the controller's first pass
    (the window `apply` cannot close): the workflow ends in Error naming the reference, and runs nothing."""
    store = Store(tmp_path / "s.db")
    manifest = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
                "spec": {"entrypoint": "main", "templates": [steps("main", ref("lib", "go"))]}}
    _, wf = store.apply("Workflow", "default", "w", manifest)
    _, made = store.apply("Workflow", "default", "m", {**manifest, "metadata": {"name": "m"},
                                                       "spec": {"workflowTemplateRef": {"name": "lib"}}})
    loop.Controller(store, Backends(tmp_path)).run_once()
    _, changed = store.apply("Workflow", "default", "c", {**manifest, "metadata": {"name": "c"},
                                                          "spec": {"workflowTemplateRef": {"name": "other"},
                                                                   "entrypoint": "b"}})
    store.apply("WorkflowTemplate", "default", "other", {"spec": {"templates": [pod("a")]}})  # b went away
    loop.Controller(store, Backends(tmp_path)).run_once()
    for uid, message in ((wf.uid, "spec.templates[0].steps[0][0].templateRef.name: no WorkflowTemplate named 'lib'"),
                         (made.uid, "spec.workflowTemplateRef.name: no WorkflowTemplate named 'lib'"),
                         (changed.uid, "spec.workflowTemplateRef: with WorkflowTemplate 'other': spec.entrypoint: no "
                                       "template named 'b' in spec.templates")):
        status = store.get_uid(uid).status
        assert (status["phase"], status["message"]) == ("Error", message)
    assert store.list(kind="Pod") == []


def test_template_defaults_merge_under_a_template_and_only_its_type() -> None:
    defaults = {"timeout": "30s", "container": {"image": "busybox", "env": [{"name": "A", "value": "1"}],
                                                "volumeMounts": [{"name": "v", "mountPath": "/a"}]},
                "script": {"image": "python"}}
    template = {"name": "t", "container": {"command": ["x"], "env": [{"name": "B", "value": "2"}],
                                           "volumeMounts": [{"name": "v", "mountPath": "/b"}]}}
    merged = with_defaults(template, defaults, {"limit": 1})
    assert merged["timeout"] == "30s" and merged["retryStrategy"] == {"limit": 1} and "script" not in merged
    assert merged["container"]["image"] == "busybox" and merged["container"]["command"] == ["x"]
    assert merged["container"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    # volumeMounts merge by mountPath (Kubernetes' key): one volume mounted at two places stays two mounts
    assert [m["mountPath"] for m in merged["container"]["volumeMounts"]] == ["/a", "/b"]
    steps = with_defaults({"name": "s", "steps": [], "retryStrategy": {"limit": 5}}, defaults, {"limit": 1})
    assert "container" not in steps and steps["retryStrategy"] == {"limit": 5} and steps["timeout"] == "30s"
    assert with_defaults(template, None, None) is template


def test_a_library_entrypoint_leaves_its_inputs_to_the_workflow_made_from_it() -> None:
    """Argo validates a WorkflowTemplate's entrypoint with placeholder arguments (its examples'
    workflow-template/templates.yaml): the inputs come with the Workflow that names it."""
    from podline.api.loader import load_text

    loaded = load_text("""
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: lib}
spec:
  entrypoint: print-message
  templates:
  - name: print-message
    inputs: {parameters: [{name: message}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.message}}"]}
""", "lib.yaml")
    assert loaded[0].obj.kind == "WorkflowTemplate"


def test_calls_written_inline_and_hook_templates_are_followed_into_libraries() -> None:
    """A library template whose inline step calls a sibling, and one whose hook names another: both stored."""
    lookup = library(ns_lib={"templates": [
        {"name": "go", "steps": [[{"name": "s", "inline": {"steps": [[{"name": "t", "template": "leaf"}]]}}]]},
        {"name": "hooked", "steps": [[{"name": "h", "template": "leaf",
                                       "hooks": {"running": {"expression": "true", "template": "note"}}}]]},
        pod("leaf"), pod("note"), pod("unused")]})
    spec = {"templates": [steps("main", ref("lib", "go"), ref("lib", "hooked"))]}
    assert sorted(stored_templates(spec, lookup)) == ["namespaced/lib/go", "namespaced/lib/hooked",
                                                     "namespaced/lib/leaf", "namespaced/lib/note"]


def test_a_workflow_waiting_for_a_lock_keeps_the_templates_it_found_first(tmp_path: Path) -> None:
    """Templates are copied once, at the first pass, even while the workflow then waits for a lock: a library
    deleted during the wait no longer matters (before, every waiting pass read it again and the workflow erred)."""
    store = Store(tmp_path / "s.db")
    _, lib = store.apply("WorkflowTemplate", "default", "lib", {"spec": {"templates": [pod("go")]}})
    sync = {"mutex": {"name": "m"}}
    store.apply("Workflow", "default", "holder", {"metadata": {"name": "holder"}, "spec": {
        "entrypoint": "main", "synchronization": sync, "templates": [{"name": "main", "suspend": {"duration": "1h"}}]}})
    _, waiting = store.apply("Workflow", "default", "waiting", {"metadata": {"name": "waiting"}, "spec": {
        "entrypoint": "main", "synchronization": sync, "templates": [steps("main", ref("lib", "go"))]}})
    loop.Controller(store, Backends(tmp_path)).run_once()
    assert store.get_uid(waiting.uid).status["phase"] == "Pending"
    store.remove(lib.uid)
    loop.Controller(store, Backends(tmp_path)).run_once()
    status = store.get_uid(waiting.uid).status
    assert status["phase"] == "Pending" and "namespaced/lib/go" in status["storedTemplates"], status
