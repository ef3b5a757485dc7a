"""Argo WorkflowTemplates and ClusterWorkflowTemplates on the real local backend: steps and tasks calling their
templates through `templateRef`, Workflows made from one through `workflowTemplateRef`, the templates copied
into the workflow's status at its start (a later change does not reach it), and the references `apply`
refuses (exit 2, nothing stored), as `argo submit` refuses them.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, params, run

LIBRARY = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: lib}
spec:
  templates:
  - name: greet
    inputs: {parameters: [{name: who}]}
    container: {image: busybox, command: [sh, -c, 'printf "hello %s" "$0"', "{{inputs.parameters.who}}"]}
  - name: twice            # calls `greet` by name: resolved in this WorkflowTemplate, not in the workflow
    inputs: {parameters: [{name: who}]}
    outputs: {parameters: [{name: out, valueFrom: {parameter: "{{steps.second.outputs.result}}"}}]}
    steps:
    - - name: first
        template: greet
        arguments: {parameters: [{name: who, value: "{{inputs.parameters.who}}"}]}
    - - name: second
        template: greet
        arguments: {parameters: [{name: who, value: "{{steps.first.outputs.result}}"}]}
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterWorkflowTemplate
metadata: {name: cluster-lib, namespace: ignored}
spec:
  templates:
  - name: count
    inputs: {parameters: [{name: text}]}
    container: {image: busybox, command: [sh, -c, 'printf "%s" "$0" | wc -c', "{{inputs.parameters.text}}"]}
"""

CALLER = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: caller}
spec:
  entrypoint: main
  templates:
  - name: greet            # a template of the workflow's own with the library's name: never the one called
    container: {image: busybox, command: [sh, -c, 'echo wrong; exit 7']}
  - name: main
    dag:
      tasks:
      - name: a
        templateRef: {name: lib, template: twice}
        arguments: {parameters: [{name: who, value: "x; $(touch /tmp/pwned) 'y'"}]}
      - name: b
        depends: a
        templateRef: {name: cluster-lib, template: count, clusterScope: true}
        arguments: {parameters: [{name: text, value: "{{tasks.a.outputs.parameters.out}}"}]}
"""


def test_steps_and_tasks_call_workflow_templates_by_template_ref(cli: Cli) -> None:
    assert cli.apply(LIBRARY).stdout.split() == ["workflowtemplate/lib", "created",
                                                 "clusterworkflowtemplate/cluster-lib", "created"]
    wf = run(cli, CALLER)
    nodes = by_display(wf)
    greeting = "hello hello x; $(touch /tmp/pwned) 'y'"
    assert params(nodes["a"]) == {"out": greeting}
    assert nodes["b"]["outputs"]["result"] == str(len(greeting))
    assert nodes["a"]["templateRef"] == {"name": "lib", "template": "twice"} and "templateName" not in nodes["a"]
    assert nodes["b"]["templateRef"] == {"name": "cluster-lib", "template": "count", "clusterScope": True}
    for step in ("first", "second"):  # called by name inside the library: the library's greet
        assert nodes[step]["templateName"] == "greet" and nodes[step]["templateScope"] == "namespaced/lib"
        assert nodes[step]["phase"] == "Succeeded"
    assert sorted(wf["status"]["storedTemplates"]) == ["cluster/cluster-lib/count", "namespaced/lib/greet",
                                                       "namespaced/lib/twice"]
    assert not Path("/tmp/pwned").exists()
    tree = cli("describe", "workflow", "caller").stdout
    assert any(line.split()[1:3] == ["a", "lib/twice"] for line in tree.splitlines() if len(line.split()) > 2)


SUBMITTABLE = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: submittable}
spec:
  entrypoint: say
  arguments:
    parameters: [{name: message, value: from the template}, {name: suffix, value: "!"}]
  templates:
  - name: say
    container:
      image: busybox
      command: [sh, -c, 'printf "%s%s" "$0" "$1"', "{{workflow.parameters.message}}", "{{workflow.parameters.suffix}}"]
"""


def test_a_workflow_made_from_a_workflow_template_merges_its_arguments(cli: Cli) -> None:
    cli.apply(SUBMITTABLE)
    wf = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: from-template-}
spec:
  arguments: {parameters: [{name: message, value: "from the workflow"}]}
  workflowTemplateRef: {name: submittable}
""")
    root = by_display(wf)[wf["metadata"]["name"]]
    assert root["templateName"] == "say" and root["outputs"]["result"] == "from the workflow!"
    stored = wf["status"]["storedWorkflowTemplateSpec"]
    assert stored["entrypoint"] == "say" and "workflowTemplateRef" not in stored
    assert stored["arguments"]["parameters"] == [{"name": "message", "value": "from the workflow"},
                                                 {"name": "suffix", "value": "!"}]
    assert "templates" not in wf["spec"]  # the spec stays as written; the merged one is in the status


def test_a_running_workflow_keeps_the_templates_it_started_with(cli: Cli, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    library = f"""
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {{name: versioned}}
spec:
  templates:
  - name: wait
    container: {{image: busybox, command: [sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done']}}
  - name: say
    container: {{image: busybox, command: [echo, version-1]}}
"""
    cli.apply(library)
    applied = cli.apply("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: pinned}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: wait, templateRef: {name: versioned, template: wait}}
    - - {name: say, templateRef: {name: versioned, template: say}}
""").stdout
    assert applied.strip() == "workflow/pinned created"
    cli.wait("workflow/pinned", "phase=Running", timeout=30)
    changed = cli.apply(library.replace("version-1", "version-2")).stdout
    assert changed.strip() == "workflowtemplate/versioned configured"
    gate.touch()
    wf = run_existing(cli, "pinned")
    assert by_display(wf)["say"]["outputs"]["result"] == "version-1"
    later = run(cli, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: pinned-later}
spec:
  entrypoint: say
  templates:
  - name: say
    steps:
    - - {name: say, templateRef: {name: versioned, template: say}}
""")
    assert by_display(later)["say"]["outputs"]["result"] == "version-2"  # a new workflow takes the new one


def run_existing(cli: Cli, name: str) -> dict:
    cli.wait(f"workflow/{name}", "phase=Succeeded", timeout=60)
    wf = cli.json("workflow", name)
    assert wf["status"]["phase"] == "Succeeded", json.dumps(wf["status"], indent=1)
    return wf


OUTER = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: outer}
spec:
  templates:
  - name: main
    steps: [[{name: a, templateRef: {name: inner, template: x}}]]
"""


def test_references_to_missing_templates_are_refused_at_apply(cli: Cli) -> None:
    cli.apply(LIBRARY)

    def refused(manifest: str) -> str:
        proc = cli("apply", "-f", "-", input=manifest, check=False)
        assert proc.returncode == 2, proc
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        return proc.stderr.strip()

    call = CALLER.replace("name: caller", "name: broken")
    error = refused(call.replace("{name: lib, template: twice}", "{name: nope, template: twice}"))
    assert error.endswith("(Workflow/broken): spec.templates[1].dag.tasks[0].templateRef.name: no WorkflowTemplate "
                          "named 'nope'"), error
    error = refused(call.replace("{name: lib, template: twice}", "{name: lib, template: thrice}"))
    assert error.endswith("spec.templates[1].dag.tasks[0].templateRef.template: no template named 'thrice' in "
                          "WorkflowTemplate 'lib'"), error
    error = refused(call.replace(", clusterScope: true", ""))  # a namespaced one of that name does not exist
    assert error.endswith("dag.tasks[1].templateRef.name: no WorkflowTemplate named 'cluster-lib'"), error
    error = refused(call.replace("arguments: {parameters: [{name: who, value: \"x; $(touch /tmp/pwned) 'y'\"}]}",
                                 "arguments: {}"))
    assert error.endswith("spec.templates[1].dag.tasks[0].arguments: inputs.parameters.who of template 'twice' is "
                          "not supplied"), error
    error = refused("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: broken}
spec: {workflowTemplateRef: {name: lib}}
""")  # lib has no entrypoint, and the workflow names none
    assert error.endswith("spec.entrypoint: required: neither the workflow nor WorkflowTemplate 'lib' names an "
                          "entrypoint"), error
    error = refused("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: broken}
spec: {entrypoint: twice, workflowTemplateRef: {name: lib}}
""")
    assert error.endswith("spec.workflowTemplateRef: with WorkflowTemplate 'lib': spec.entrypoint: "
                          "inputs.parameters.who of template 'twice' is not supplied"), error
    error = refused(OUTER)
    assert error.endswith("(WorkflowTemplate/outer): spec.templates[0].steps[0][0].templateRef.name: no "
                          "WorkflowTemplate named 'inner'"), error
    assert cli.json("workflows")["items"] == [] and [t["metadata"]["name"] for t in
                                                    cli.json("wftmpl")["items"]] == ["lib"]


def test_a_broken_reference_deep_in_a_library_is_named_at_the_call_that_leads_there(cli: Cli) -> None:
    cli.apply(OUTER + """---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: inner}
spec:
  templates:
  - {name: x, container: {image: busybox, command: [echo, inner]}}
""")  # applied together: each finds the other
    cli("delete", "wftmpl", "inner")
    proc = cli("apply", "-f", "-", check=False, input="""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: deep}
spec:
  entrypoint: main
  templates:
  - name: main
    steps: [[{name: a, templateRef: {name: outer, template: main}}]]
""")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        "(Workflow/deep): spec.templates[0].steps[0][0].templateRef: WorkflowTemplate 'outer' refers at "
        "spec.templates[0].steps[0][0].templateRef.name to a missing template: no WorkflowTemplate named 'inner'"
    ), proc.stderr


def test_get_describe_and_delete_workflow_templates(cli: Cli) -> None:
    cli.apply(LIBRARY)
    assert [line.split()[0] for line in cli("get", "workflowtemplates").stdout.splitlines()] == ["NAME", "lib"]
    wide = cli("get", "wftmpl", "lib", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "AGE", "ENTRYPOINT", "TEMPLATES"] and wide[1].split()[2:] == ["-", "2"]
    # cluster-scoped: seen from every namespace
    cluster = json.loads(cli("-n", "elsewhere", "get", "cwftmpl", "cluster-lib", "-o", "json").stdout)
    assert cluster["kind"] == "ClusterWorkflowTemplate" and "namespace" not in cluster["metadata"]
    page = cli("describe", "wftmpl", "lib").stdout
    assert "Templates:" in page and "greet, twice" in page
    assert cli("get", "cwft").stdout.split()[2] == "cluster-lib"  # Argo's short names
    assert cli("get", "clusterwftmpl", "-o", "name").stdout.strip() == "clusterworkflowtemplate/cluster-lib"
    cli("delete", "cwftmpl", "cluster-lib")
    assert cli("get", "cwft").stderr.strip() == "No resources found."
    assert cli("get", "cwftmpl", "cluster-lib", check=False).returncode == 1


def test_a_library_leaves_values_to_the_workflow_and_specs_merge_as_argo_joins_them(cli: Cli) -> None:
    cli.apply("""
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: open}
spec:
  entrypoint: show
  arguments: {parameters: [{name: message}, {name: mode, value: plain, enum: [plain, loud]}]}
  podMetadata: {labels: {team: a}}
  volumes: [{name: data, emptyDir: {}}]
  templates:
  - name: show
    container:
      image: busybox
      command: [printf, "%s", "{{workflow.parameters.message}}"]  # (the host runtime mounts nothing)
      volumeMounts: [{name: data, mountPath: /data}, {name: extra, mountPath: /extra}]
""")  # a parameter without a value, and a mount of a volume only the workflow declares: both Argo's habits
    manifest = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: joined}
spec:
  workflowTemplateRef: {name: open}
  arguments: {parameters: [{name: message, value: given by the workflow}]}
  podMetadata: {annotations: {owner: me}}
  volumes: [{name: extra, emptyDir: {}}]
"""
    wf = run(cli, manifest)
    result = by_display(wf)["joined"]["outputs"]["result"]
    assert result == "given by the workflow"
    mounts = cli.json("pods")["items"][0]["spec"]["volumes"]
    assert sorted(v["name"] for v in mounts if v["name"] in ("data", "extra")) == ["data", "extra"]
    pod = cli.json("pods")["items"][0]["metadata"]
    assert pod["labels"]["team"] == "a" and pod["annotations"]["owner"] == "me"
    page = cli("describe", "workflow", "joined").stdout
    assert "mode:" in page and "plain" in page  # the template's parameter, as the workflow runs it
    cli("delete", "wftmpl", "open")
    assert cli.apply(manifest).stdout.strip() == "workflow/joined unchanged"  # it runs from its stored copy
