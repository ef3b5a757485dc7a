"""The `argoproj.io/v1alpha1 Workflow` kind: Argo's examples load and dump with Argo's field names; bad input
is refused with the exact field path (the table uses test_pipeline_api's `case` and checker); `apply` names
a generateName workflow anew each time, like `kubectl create`.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest
import yaml

from podline.api.errors import ManifestError
from podline.api.loader import load_text
from podline.api.workflow import Workflow
from podline.api.workflow_dag import parse_depends
from tests.conftest import Cli
from tests.unit.test_pipeline_api import case
from tests.unit.test_pipeline_api import test_bad_pipeline_names_document_field_path_and_problem as check_bad

SOURCE = "bad.yaml"
HEAD = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n"

HELLO = HEAD + """\
metadata:
  generateName: hello-world-
  labels: {workflows.argoproj.io/archive-strategy: "false"}
  annotations: {workflows.argoproj.io/description: hello}
spec:
  entrypoint: hello-world
  serviceAccountName: argo
  podGC: {strategy: OnPodSuccess}
  templates:
  - name: hello-world
    container:
      image: busybox
      command: [echo]
      args: ["hello world"]
      resources: {limits: {memory: 32Mi, cpu: 100m}}
"""

STEPS = HEAD + """\
metadata: {name: steps}
spec:
  entrypoint: hello-hello-hello
  arguments: {parameters: [{name: greeting, value: 5}, {name: loud, value: true}]}
  onExit: exit-handler
  templates:
  - name: hello-hello-hello
    steps:
    - - {name: hello1, template: print-message, arguments: {parameters: [{name: message, value: hello1}]}}
    - - {name: hello2a, template: print-message, arguments: {parameters: [{name: message, value: hello2a}]}}
      - name: hello2b
        template: print-message
        arguments: {parameters: [{name: message, value: "{{workflow.parameters.greeting}}"}]}
        when: "{{workflow.parameters.loud}} == true"
        continueOn: {failed: true}
    - - {name: each, template: print-message, arguments: {parameters: [{name: message, value: "{{item.os}}"}]},
         withItems: [{os: debian, version: 12}, {os: alpine, version: 3.19}]}
    - - {name: count, template: print-message, arguments: {parameters: [{name: message, value: "{{item}}"}]},
         withSequence: {count: "3", format: "n%02d"}}
  - name: print-message
    inputs: {parameters: [{name: message}]}
    retryStrategy: {limit: "3", retryPolicy: OnFailure, backoff: {duration: 1s, factor: 2, maxDuration: 1m}}
    activeDeadlineSeconds: "60"
    timeout: 2m
    metadata: {labels: {step: "{{inputs.parameters.message}}"}}
    container: {image: busybox, command: [echo, "{{inputs.parameters.message}}"]}
  - name: exit-handler
    container: {image: busybox, command: [echo, "{{workflow.status}}"]}
"""

DAG = HEAD + """\
metadata: {name: diamond}
spec:
  entrypoint: both
  templates:
  - name: both
    steps: [[{name: deps, template: with-dependencies}, {name: expr, template: with-depends}]]
  - name: with-dependencies
    dag:
      failFast: true
      tasks:
      - {name: A, template: echo}
      - {name: B, template: echo, dependencies: [A]}
      - {name: C, template: echo, dependencies: [A]}
      - {name: D, template: echo, dependencies: [B, C]}
  - name: with-depends
    dag:
      tasks:
      - {name: A, template: echo}
      - {name: B, template: echo, depends: A}
      - {name: C, template: echo, depends: "A.Succeeded"}
      - {name: D, template: echo, depends: "(B && C.Succeeded) || !(B.Failed || C.AnySucceeded)"}
  - name: echo
    container: {image: busybox, command: [echo, hi]}
"""

IO = HEAD + """\
metadata: {generateName: io-}
spec:
  entrypoint: main
  volumes: [{name: scratch, emptyDir: {}}]
  templates:
  - name: main
    steps:
    - - {name: gen, template: generate}
    - - name: use
        template: consume
        arguments:
          parameters: [{name: n, value: "{{steps.gen.outputs.parameters.n}}"}]
          artifacts: [{name: data, from: "{{steps.gen.outputs.artifacts.data}}"}]
    - - {name: fan, template: consume-n, arguments: {parameters: [{name: n, value: "{{item}}"}]},
         withParam: "{{steps.gen.outputs.result}}"}
    outputs:
      parameters: [{name: n, valueFrom: {parameter: "{{steps.gen.outputs.parameters.n}}"}}]
      artifacts: [{name: data, from: "{{steps.gen.outputs.artifacts.data}}"}]
  - name: generate
    script:
      image: python:3.12
      command: [python]
      source: |
        import json
        open("/tmp/n", "w").write("3")
        open("/tmp/data.txt", "w").write("hello")
        print(json.dumps([1, 2, 3]))
      volumeMounts: [{name: scratch, mountPath: /scratch}]
    outputs:
      parameters: [{name: n, globalName: count, valueFrom: {path: /tmp/n, default: 0}}]
      artifacts: [{name: data, path: /tmp/data.txt, archive: {none: {}}}]
  - name: consume
    inputs:
      parameters: [{name: n, enum: [1, 2, 3], description: how many}]
      artifacts:
      - {name: data, path: /in/data.txt, mode: 0644}
      - {name: conf, path: /in/conf, raw: {data: "a: 1"}}
    container: {image: busybox, command: [cat, /in/data.txt]}
  - name: consume-n
    inputs: {parameters: [{name: n, default: 1}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.n}}"]}
"""

# Hera 7.1's `to_yaml()` of a diamond DAG with a script fanning out over another's result (verbatim).
HERA = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: dag-diamond-
spec:
  entrypoint: diamond
  templates:
  - name: echo
    container:
      image: busybox
      args:
      - '{{inputs.parameters.m}}'
      command:
      - echo
    inputs:
      parameters:
      - name: m
  - name: diamond
    dag:
      tasks:
      - name: A
        template: echo
        arguments:
          parameters:
          - name: m
            value: A
      - name: B
        depends: A
        template: echo
        arguments:
          parameters:
          - name: m
            value: B
      - name: C
        depends: A
        template: echo
        arguments:
          parameters:
          - name: m
            value: C
      - name: D
        depends: B && C
        template: echo
        arguments:
          parameters:
          - name: m
            value: D
      - name: g
        depends: D
        template: gen
      - name: f
        depends: g
        template: flaky
        withParam: '{{tasks.g.outputs.result}}'
        arguments:
          parameters:
          - name: x
            value: '{{item}}'
  - name: gen
    outputs:
      parameters:
      - name: 'n'
        valueFrom:
          path: /tmp/n
    script:
      image: python:3.10
      source: |-
        import os
        import sys
        sys.path.append(os.getcwd())
        open('/tmp/n', 'w').write('3')
        import json
        print(json.dumps([1, 2, 3]))
      command:
      - python
  - name: flaky
    inputs:
      parameters:
      - name: x
        default: '1'
    retryStrategy:
      limit: 3
      retryPolicy: OnFailure
    script:
      image: python:3.10
      source: |-
        import os
        import sys
        sys.path.append(os.getcwd())
        import json
        try: x = json.loads(r'''{{inputs.parameters.x}}''')
        except: x = r'''{{inputs.parameters.x}}'''

        print(x)
      command:
      - python
"""


def load_wf(text: str) -> tuple[Workflow, list[str]]:
    [loaded] = load_text(text, SOURCE)
    assert isinstance(loaded.obj, Workflow)
    return loaded.obj, loaded.warnings


def kept(original: Any, dumped: Any, where: str = "") -> None:
    """Everything written in the manifest is in the dump under the same (Argo) name, with the same value."""
    if isinstance(original, dict):
        assert isinstance(dumped, dict), where
        for key, value in original.items():
            assert key in dumped, f"{where}.{key} missing from the dump"
            kept(value, dumped[key], f"{where}.{key}")
    elif isinstance(original, list):
        assert isinstance(dumped, list) and len(dumped) == len(original), where
        for i, (a, b) in enumerate(zip(original, dumped, strict=True)):
            kept(a, b, f"{where}[{i}]")
    else:
        assert original == dumped, f"{where}: {original!r} became {dumped!r}"


@pytest.mark.parametrize("text", [HELLO, STEPS, DAG, IO, HERA], ids=["hello", "steps", "dag", "io", "hera"])
def test_argo_examples_load_and_dump_with_argo_field_names(text: str) -> None:
    obj, _ = load_wf(text)
    dumped = obj.dump()
    original = yaml.safe_load(text)
    for key in ("serviceAccountName", "podGC"):  # ignored (with a warning), so not stored
        original["spec"].pop(key, None)
    spec = original["spec"]
    if obj.metadata.name == "steps":  # the normalised values, checked in test_normalised_values
        spec.pop("arguments")
        for template in spec["templates"][:2]:
            for key in ("retryStrategy", "activeDeadlineSeconds"):
                template.pop(key, None)
        spec["templates"][0]["steps"][3][0].pop("withSequence")
    if obj.metadata.generate_name == "io-":
        spec["templates"][1]["outputs"]["parameters"][0]["valueFrom"].pop("default")
        spec["templates"][2]["inputs"]["parameters"][0].pop("enum")
        spec["templates"][3]["inputs"]["parameters"][0].pop("default")
    kept(original, dumped)
    assert Workflow.model_validate(dumped).dump() == dumped
    assert load_text(yaml.safe_dump(dumped), SOURCE)[0].obj.dump() == dumped


def test_normalised_values() -> None:
    steps, _ = load_wf(STEPS)
    spec = steps.dump()["spec"]
    assert spec["arguments"]["parameters"] == [{"name": "greeting", "value": "5"}, {"name": "loud", "value": "true"}]
    printer = spec["templates"][1]
    assert printer["retryStrategy"] == {"limit": 3, "retryPolicy": "OnFailure",
                                        "backoff": {"duration": "1s", "factor": 2, "maxDuration": "1m"}}
    assert printer["activeDeadlineSeconds"] == 60 and printer["timeout"] == "2m"
    assert printer["container"]["name"] == "main"  # as Argo names a template's container
    assert spec["templates"][0]["steps"][3][0]["withSequence"] == {"count": 3, "format": "n%02d"}
    io, _ = load_wf(IO)
    templates = io.dump()["spec"]["templates"]
    assert templates[1]["outputs"]["parameters"][0]["valueFrom"] == {"path": "/tmp/n", "default": "0"}
    assert templates[2]["inputs"]["parameters"][0]["enum"] == ["1", "2", "3"]
    assert templates[2]["inputs"]["artifacts"][0]["mode"] == 0o644
    assert templates[3]["inputs"]["parameters"][0]["default"] == "1"
    assert templates[0]["steps"][1][0]["arguments"]["artifacts"][0] == {
        "name": "data", "from": "{{steps.gen.outputs.artifacts.data}}"}


@pytest.mark.parametrize(("value", "text"), [
    ("2.0", "2"), ("1.5", "1.5"), ("1.0e+3", "1000"), ("0.0000001", "0.0000001"), ("-0.5", "-0.5"), ("7", "7"),
    ("12345678901234567890", "12345678901234567000"),  # a float64 in JSON, as Argo reads it: digits lost
    ("true", "true"), ("'2.0'", "2.0"),  # a quoted string stays as written
])
def test_parameter_numbers_are_spelt_as_argo_spells_them(value: str, text: str) -> None:
    wf = load_text("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: n}\nspec:\n"
                   f"  entrypoint: t\n  arguments: {{parameters: [{{name: p, value: {value}}}]}}\n"
                   "  templates: [{name: t, container: {image: busybox, command: ['true']}}]\n", "n.yaml")[0].obj
    assert wf.dump()["spec"]["arguments"]["parameters"][0]["value"] == text


def test_generate_name_stands_in_for_the_name() -> None:
    obj, _ = load_wf(HELLO)
    assert (obj.metadata.name, obj.metadata.generate_name) == (None, "hello-world-")
    assert obj.dump()["metadata"]["generateName"] == "hello-world-" and "name" not in obj.dump()["metadata"]
    two = load_text(HELLO + "---\n" + HELLO, SOURCE)  # never duplicates: each gets its own name at apply
    assert len(two) == 2 and two[0].describe() == f"{SOURCE}: document 1 (Workflow/hello-world-)"


def test_ignored_fields_are_warnings() -> None:
    _, warnings = load_wf(HELLO.replace("    container:\n", "    nodeSelector: {gpu: a100}\n    container:\n"))
    assert warnings == ["WorkflowSpec.serviceAccountName is not supported by podline and is ignored",
                        "WorkflowSpec.podGC is not supported by podline and is ignored",
                        "Template.nodeSelector is not supported by podline and is ignored"]
    _, warnings = load_wf(IO.replace("archive: {none: {}}", "archive: {tar: {compressionLevel: 1}}"))
    assert warnings == ["Artifact.archive tar is not supported by podline and is ignored (artifacts pass through "
                        "the shared directory as plain files)"]


@pytest.mark.parametrize(("text", "names"), [
    ("a", ["a"]), ("a && b", ["a", "b"]), ("!a.Failed || (b-1.Succeeded && c_2)", ["a", "b-1", "c_2"]),
    ("((A))", ["A"]), ("A.AnySucceeded&&B.AllFailed", ["A", "B"]),
])
def test_parse_depends(text: str, names: list[str]) -> None:
    assert parse_depends(text) == names


@pytest.mark.parametrize("text", ["", "a &&", "(a", "a)", "a b", "a.Done", "&& a", "a & b", "a || || b"])
def test_parse_depends_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_depends(text)


# --- bad Workflow manifests -------------------------------------------------------------------------

def wf(templates: str, spec: str = "", *, meta: str = "  name: wf\n", entry: str = "main") -> str:
    """A Workflow; `spec` lines are indented 2, `templates` are list items indented 2."""
    return f"{HEAD}metadata:\n{meta}spec:\n  entrypoint: {entry}\n{spec}  templates:\n{templates}"


ECHO = "  - {name: echo, container: {image: busybox, command: [echo]}}\n"
PRINT = "  - {name: print, inputs: {parameters: [{name: m}]}, container: {image: busybox, command: [echo]}}\n"


def main(body: str) -> str:
    return f"  - name: main\n{body}"


def steps(*calls: str) -> str:
    """One step group per call (a flow mapping), under `main`."""
    return main("    steps:\n" + "".join(f"    - - {c}\n" for c in calls))


def dag(*tasks: str) -> str:
    return main("    dag:\n      tasks:\n" + "".join(f"      - {t}\n" for t in tasks))


def container(extra: str) -> str:
    return main(f"    container: {{image: busybox, command: [echo]{extra}}}\n")


GOOD = wf(steps("{name: a, template: echo}") + ECHO)
bad = functools.partial(case, ident="Workflow/wf")
T0, NOT = "spec.templates[0]", "is not supported by podline"
CYCLE = ("{name: a, template: echo, dependencies: [c]}", "{name: b, template: echo, dependencies: [a]}",
         "{name: c, template: echo, dependencies: [b]}")

CASES = [
    bad("unknown-spec-field", GOOD.replace("  entrypoint", "  templatez: []\n  entrypoint"), "spec.templatez",
        "unknown field"),
    bad("unknown-container-field", wf(container(", imagee: x")), f"{T0}.container.imagee", "unknown field"),
    bad("gpu-request-without-limit", wf(container(", resources: {requests: {nvidia.com/gpu: 1}}")),
        f"{T0}.container.resources.limits[nvidia.com/gpu]", "required when requests[nvidia.com/gpu] is set"),
    bad("missing-entrypoint", GOOD.replace("  entrypoint: main\n", ""), "spec.entrypoint", "required field"),
    bad("entrypoint-names-no-template", wf(ECHO, entry="nope"), "spec.entrypoint", "no template named 'nope'"),
    bad("on-exit-names-no-template", wf(ECHO, "  onExit: bye\n", entry="echo"), "spec.onExit", "no template"),
    bad("no-templates", wf("  []\n").replace("templates:\n  []", "templates: []"), "spec.templates",
        "at least 1 item"),
    bad("two-template-types", wf(main("    container: {image: a}\n    script: {image: a, source: x}\n")), T0,
        "exactly one of container, script, steps, dag, suspend is required"),
    bad("no-template-type", wf(main("    inputs: {}\n")), T0, "exactly one of container, script, steps, dag"),
    bad("suspend-without-duration", wf(ECHO + "  - {name: wait, suspend: {}}\n", entry="echo"),
        "spec.templates[1].suspend.duration", "podline has no `argo resume`, so a suspend template needs a duration"),
    bad("suspend-duration-words", wf(ECHO + "  - {name: wait, suspend: {duration: soon}}\n", entry="echo"),
        "spec.templates[1].suspend.duration", "invalid duration 'soon'"),
    bad("template-type-http", wf(ECHO + "  - {name: get, http: {url: 'http://x'}}\n", entry="echo"),
        "spec.templates[1].http", "template type http is not supported by podline"),
    bad("template-defaults-unknown-field", GOOD.replace("  templates", "  templateDefaults: {timeoutt: 1s}\n"
                                                        "  templates"),
        "spec.templateDefaults.timeoutt", "unknown field"),
    bad("template-type-resource", wf(main("    resource: {action: create}\n")), f"{T0}.resource",
        "template type resource"),
    bad("template-name-invalid", wf(ECHO.replace("echo", "my_echo"), entry="my_echo"), f"{T0}.name",
        "invalid name 'my_echo'"),
    bad("duplicate-template", wf(ECHO + ECHO, entry="echo"), "spec.templates[1].name",
        "duplicate template name 'echo'"),
    bad("unknown-step-template", wf(steps("{name: a, template: echo}") + ECHO).replace(
        "template: echo}", "template: echo}\n      - {name: b, template: ecko}"), f"{T0}.steps[0][1].template",
        "no template named 'ecko'"),
    bad("step-without-template", wf(steps("{name: a}")), f"{T0}.steps[0][0].template", "required field"),
    bad("duplicate-step-across-groups", wf(steps("{name: a, template: echo}", "{name: a, template: echo}") + ECHO),
        f"{T0}.steps[1][0].name", "duplicate step name 'a'"),
    bad("empty-step-group", wf(main("    steps: [[]]\n")), f"{T0}.steps[0]", "at least 1 item"),
    bad("step-level-on-exit-names-no-template", wf(steps("{name: a, template: echo, onExit: bye}") + ECHO),
        f"{T0}.steps[0][0].onExit", "no template named 'bye'"),
    bad("running-hook-without-expression", wf(dag("{name: a, template: echo, hooks: {running: {template: echo}}}")
                                              + ECHO),
        f"{T0}.dag.tasks[0].hooks", "hook 'running': a hook other than `exit` needs an expression"),
    bad("exit-hook-expression", wf(dag("{name: a, template: echo, hooks: {exit: {template: echo, expression: x}}}")
                                   + ECHO),
        f"{T0}.dag.tasks[0].hooks", "hook 'exit': runs when its step or workflow ends; it takes no expression"),
    bad("hook-names-no-template-by-expression", wf(dag("{name: a, template: echo, hooks: {done: {template: nope, "
                                                       "expression: 'true'}}}") + ECHO),
        f"{T0}.dag.tasks[0].hooks[done].template", "no template named 'nope'"),
    bad("hook-and-on-exit", wf(steps("{name: a, template: echo, onExit: echo, hooks: {exit: {template: echo}}}")
                               + ECHO), f"{T0}.steps[0][0].hooks.exit", "not both"),
    bad("task-named-on-exit", wf(dag("{name: onExit, template: echo}") + ECHO), f"{T0}.dag.tasks[0].name",
        "reserved for the exit handler"),
    bad("artifact-from-a-path",
        wf(steps("{name: a, template: echo, arguments: {artifacts: [{name: f, from: /etc/passwd}]}}") + ECHO),
        f"{T0}.steps[0][0].arguments.artifacts[0].from", "must be one reference"),
    bad("hook-names-no-template", wf(ECHO, "  hooks: {exit: {template: bye}}\n", entry="echo"),
        "spec.hooks.exit.template", "no template named 'bye'"),
    bad("step-template-and-template-ref", wf(steps("{name: a, template: echo, templateRef: {name: x, template: y}}")
                                              + ECHO), f"{T0}.steps[0][0].template",
        "give one of template, templateRef and inline"),
    bad("inline-and-template", wf(steps("{name: a, template: echo, inline: {container: {image: a}}}") + ECHO),
        f"{T0}.steps[0][0].template", "give one of template, templateRef and inline"),
    bad("inline-without-type", wf(dag("{name: a, inline: {inputs: {}}}")), f"{T0}.dag.tasks[0].inline",
        "exactly one of container, script, steps, dag, suspend is required"),
    bad("inline-input-not-supplied", wf(dag("{name: a, inline: {inputs: {parameters: [{name: p}]}, "
                                            "container: {image: a}}}")),
        f"{T0}.dag.tasks[0].arguments", "inputs.parameters.p of template 'a' is not supplied"),
    bad("template-ref-name-invalid", wf(steps("{name: a, templateRef: {name: X_y, template: y}}")),
        f"{T0}.steps[0][0].templateRef.name", "DNS-1123 subdomain"),
    bad("template-ref-without-template", wf(dag("{name: a, templateRef: {name: x}}")),
        f"{T0}.dag.tasks[0].templateRef.template", "required field"),
    bad("with-items-and-with-param", wf(steps("{name: a, template: echo, withItems: [1], withParam: '[2]'}") + ECHO),
        f"{T0}.steps[0][0].withParam", "only one of withItems, withParam, withSequence"),
    bad("sequence-count-and-end", wf(steps("{name: a, template: echo, withSequence: {count: 2, end: 3}}") + ECHO),
        f"{T0}.steps[0][0].withSequence", "exactly one of count and end"),
    bad("sequence-count-not-a-number", wf(steps("{name: a, template: echo, withSequence: {count: two}}") + ECHO),
        f"{T0}.steps[0][0].withSequence.count", "must be a whole number"),
    bad("input-not-supplied", wf(steps("{name: a, template: print}") + PRINT), f"{T0}.steps[0][0].arguments",
        "inputs.parameters.m of template 'print' is not supplied"),
    bad("entrypoint-input-not-supplied", wf(PRINT, entry="print"), "spec.entrypoint", "inputs.parameters.m"),
    bad("argument-without-value", wf(ECHO, "  arguments: {parameters: [{name: x}]}\n", entry="echo"),
        "spec.arguments.parameters[0].value", "an argument needs a value"),
    bad("parameter-value-a-mapping", wf(ECHO, "  arguments: {parameters: [{name: x, value: {a: 1}}]}\n",
                                        entry="echo"), "spec.arguments.parameters[0].value", "valid string"),
    bad("parameter-name-invalid", wf(ECHO, "  arguments: {parameters: [{name: 'x y', value: 1}]}\n", entry="echo"),
        "spec.arguments.parameters[0].name", "invalid name 'x y'"),
    bad("dependency-cycle", wf(dag(*CYCLE) + ECHO), f"{T0}.dag.tasks[0].dependencies",
        "dependencies form a cycle: a -> c -> b -> a"),
    bad("depends-cycle", wf(dag("{name: a, template: echo, depends: b}", "{name: b, template: echo, depends: a}")
                            + ECHO), f"{T0}.dag.tasks[0].depends", "cycle: a -> b -> a"),
    bad("depends-unknown-task", wf(dag("{name: a, template: echo}", "{name: b, template: echo, depends: a && zz}")
                                   + ECHO), f"{T0}.dag.tasks[1].depends", "unknown task 'zz'"),
    bad("depends-does-not-parse", wf(dag("{name: a, template: echo}", "{name: b, template: echo, depends: 'a &&'}")
                                     + ECHO), f"{T0}.dag.tasks[1].depends", "ends too early"),
    bad("depends-unknown-result", wf(dag("{name: a, template: echo}", "{name: b, template: echo, depends: a.Done}")
                                     + ECHO), f"{T0}.dag.tasks[1].depends", "unknown task result a.Done"),
    bad("dependencies-unknown-task", wf(dag("{name: a, template: echo, dependencies: [b]}") + ECHO),
        f"{T0}.dag.tasks[0].dependencies[0]", "unknown task 'b'"),
    bad("depends-on-itself", wf(dag("{name: a, template: echo, dependencies: [a]}") + ECHO),
        f"{T0}.dag.tasks[0].dependencies[0]", "cannot depend on itself"),
    bad("depends-and-dependencies", wf(dag("{name: a, template: echo}", "{name: b, template: echo, depends: a}",
                                           "{name: c, template: echo, dependencies: [a]}") + ECHO),
        f"{T0}.dag.tasks[2].dependencies", "cannot use both depends and dependencies"),
    bad("duplicate-task", wf(dag("{name: a, template: echo}", "{name: a, template: echo}") + ECHO),
        f"{T0}.dag.tasks[1].name", "duplicate task name 'a'"),
    bad("dag-target-unknown-task", wf(main("    dag: {target: a b, tasks: [{name: a, template: echo}]}\n") + ECHO),
        f"{T0}.dag.target", "no task named 'b' in this DAG"),
    bad("git-artifact", wf(main("    inputs: {artifacts: [{name: d, path: /d, git: {repo: r}}]}\n"
                                "    container: {image: a}\n")), f"{T0}.inputs.artifacts[0].git",
        "artifact source git is not supported by podline (artifacts pass through the context's shared directory)"),
    bad("s3-artifact-without-bucket", wf(main("    inputs: {artifacts: [{name: d, path: /d, s3: {key: k}}]}\n"
                                              "    container: {image: a}\n")), f"{T0}.inputs.artifacts[0].s3.bucket",
        "required: podline has no default artifact repository"),
    bad("s3-key-only-output-artifact", wf(main("    outputs: {artifacts: [{name: d, path: /d, s3: {key: k}}]}\n"
                                               "    container: {image: a}\n")), f"{T0}.outputs.artifacts[0].s3",
        "output artifacts pass through the context's shared directory"),
    bad("memoize-from-template-defaults", wf(main("    outputs: {artifacts: [{name: d, path: /d/x}]}\n"
                                                  "    container: {image: a}\n")).replace(
        "  templates", "  templateDefaults: {memoize: {key: k, cache: {configMap: {name: c}}}}\n  templates"),
        f"{T0}.memoize", "with spec.templateDefaults: a template with output artifacts is not memoized"),
    bad("timeout-words", wf(container("") + "    timeout: soon\n"), f"{T0}.timeout", "invalid duration 'soon'"),
    bad("template-deadline-zero", wf(container("") + "    activeDeadlineSeconds: 0\n"),
        f"{T0}.activeDeadlineSeconds", "whole number of seconds from 1"),
    bad("s3-output-artifact", wf(main("    outputs: {artifacts: [{name: d, path: /d, s3: {bucket: b, key: k}}]}\n"
                                      "    container: {image: a}\n")), f"{T0}.outputs.artifacts[0].s3",
        "output artifacts pass through the context's shared directory"),
    bad("http-artifact-headers", wf(main("    inputs: {artifacts: [{name: d, path: /d, http: {url: 'http://h/x', "
                                         "headers: [{name: a, value: b}]}}]}\n    container: {image: a}\n")),
        f"{T0}.inputs.artifacts[0].http.headers", NOT),
    bad("input-artifact-without-path", wf(main("    inputs: {artifacts: [{name: d, raw: {data: x}}]}\n"
                                               "    container: {image: a}\n")), f"{T0}.inputs.artifacts[0].path",
        "needs a path"),
    bad("artifact-path-escapes", wf(main("    outputs: {artifacts: [{name: d, path: /a/../../etc}]}\n"
                                         "    container: {image: a}\n")), f"{T0}.outputs.artifacts[0].path",
        "without '..'"),
    bad("volume-claim-template-without-name", GOOD.replace("  templates", "  volumeClaimTemplates: [{metadata: {}}]\n"
                                                           "  templates"), "spec.volumeClaimTemplates[0].metadata.name",
        "required field is missing"),
    bad("volume-claim-template-twice", GOOD.replace("  templates", "  volumeClaimTemplates: [{metadata: {name: w}}, "
                                                    "{metadata: {name: w}}]\n  templates"),
        "spec.volumeClaimTemplates[1].metadata.name", "duplicate"),
    bad("workflow-template-ref-and-templates", GOOD.replace("  templates", "  workflowTemplateRef: {name: x}\n"
                                                            "  templates"),
        "spec.templates", "not allowed with workflowTemplateRef"),
    bad("synchronization-empty", GOOD.replace("  templates", "  synchronization: {}\n  templates"),
        "spec.synchronization", "name a mutex or a semaphore"),
    bad("synchronization-database", wf(container("") + "    synchronization: {semaphore: {database: {key: k}, "
                                       "configMapKeyRef: {name: c, key: k}}}\n"),
        f"{T0}.synchronization.semaphore.database", NOT),
    bad("mutex-name-hostile", GOOD.replace("  templates", "  synchronization: {mutex: {name: 'a b;c'}}\n  templates"),
        "spec.synchronization.mutex.name", "should match pattern"),
    bad("mutex-held-by-workflow-and-template", wf(container("") + "    synchronization: {mutex: {name: m}}\n").replace(
        "  templates", "  synchronization: {mutexes: [{name: m}]}\n  templates"), f"{T0}.synchronization",
        "mutex 'm' is also the workflow's own: the template would wait for its own workflow forever"),
    bad("workflow-suspend", GOOD.replace("  templates", "  suspend: true\n  templates"), "spec.suspend", NOT),
    bad("sidecar-named-main", wf(container("") + "    sidecars: [{name: main, image: x}]\n"), f"{T0}.sidecars[0].name",
        "reserved by Argo"),
    bad("sidecars-of-a-steps-template", wf(steps("{name: a, template: echo}") + ECHO).replace(
        "    steps:", "    sidecars: [{name: s, image: x}]\n    steps:", 1), T0, "only a container or script template"),
    bad("sidecars-same-name", wf(container("") + "    sidecars: [{name: s, image: x}, {name: s, image: y}]\n"), T0,
        "sidecars: names must be unique"),
    bad("memoize-without-cache", wf(container("") + "    memoize: {key: k}\n"), f"{T0}.memoize.cache",
        "required field"),
    bad("memoize-a-steps-template", wf(steps("{name: a, template: echo}") + ECHO).replace(
        "    steps:", "    memoize: {key: k, cache: {configMap: {name: c}}}\n    steps:"), f"{T0}.memoize",
        "podline memoizes container and script templates, not a steps template"),
    bad("pod-spec-patch", wf(container("") + "    podSpecPatch: '{}'\n"), f"{T0}.podSpecPatch", NOT),
    bad("daemon", wf(container("") + "    daemon: true\n"), f"{T0}.daemon", NOT),
    bad("retry-limit-words", wf(container("") + "    retryStrategy: {limit: three}\n"),
        f"{T0}.retryStrategy.limit", "must be a whole number, got 'three'"),
    bad("retry-limit-negative", wf(container("") + "    retryStrategy: {limit: -1}\n"),
        f"{T0}.retryStrategy.limit", "greater than or equal to 0"),
    bad("retry-policy-unknown", wf(container("") + "    retryStrategy: {retryPolicy: Sometimes}\n"),
        f"{T0}.retryStrategy.retryPolicy", "'Always', 'OnFailure', 'OnError' or 'OnTransientError'"),
    bad("retry-expression-not-text", wf(container("") + "    retryStrategy: {expression: [true]}\n"),
        f"{T0}.retryStrategy.expression", "valid string"),
    bad("backoff-duration-words", wf(container("") + "    retryStrategy: {backoff: {duration: 1 minute}}\n"),
        f"{T0}.retryStrategy.backoff.duration", "invalid duration '1 minute'"),
    bad("output-parameter-expression", wf(container("") + "    outputs: {parameters: [{name: o, valueFrom: "
                                          "{expression: x}}]}\n"), f"{T0}.outputs.parameters[0].valueFrom.expression",
        "an output of a container template comes from a path"),
    bad("output-parameter-jq-filter", wf(container("") + "    outputs: {parameters: [{name: o, valueFrom: "
                                         "{jqFilter: .a}}]}\n"), f"{T0}.outputs.parameters[0].valueFrom.jqFilter", NOT),
    bad("container-output-from-parameter", wf(container("") + "    outputs: {parameters: [{name: o, valueFrom: "
                                              "{parameter: x}}]}\n"), f"{T0}.outputs.parameters[0].valueFrom.path",
        "required for an output of a container template"),
    bad("mount-of-undeclared-volume", wf(container(", volumeMounts: [{name: v, mountPath: /v}]")),
        f"{T0}.container.volumeMounts[0].name", "volume 'v' is not declared"),
    bad("nul-in-args", wf(container(', args: ["a\\0b"]')), f"{T0}.container.args[0]", "NUL"),
    bad("script-without-source", wf(main("    script: {image: python}\n")), f"{T0}.script.source", "required field"),
    bad("slurm-flags-in-pod-metadata", GOOD.replace("  templates", "  podMetadata: {annotations: "
                                                    "{slurm.hpk.io/flags: '--output=/etc/x'}}\n  templates"),
        "spec.podMetadata.annotations[slurm.hpk.io/flags]", "'--output' is not allowed"),
    bad("generate-name-invalid", wf(ECHO, meta="  generateName: Hello_\n", entry="echo"), "metadata.generateName",
        "invalid generateName 'Hello_'", ident="Workflow/Hello_"),
    bad("generate-name-too-long", wf(ECHO, meta=f"  generateName: {'g' * 59}\n", entry="echo"),
        "metadata.generateName", "at most 58 characters", ident=f"Workflow/{'g' * 59}"),
    bad("name-too-long", wf(ECHO, meta=f"  name: {'n' * 64}\n", entry="echo"), "metadata.name",
        "a Workflow name must be at most 63 characters", ident=f"Workflow/{'n' * 64}"),
    bad("neither-name-nor-generate-name", wf(ECHO, meta="  labels: {a: b}\n", entry="echo"), "metadata.name",
        "every object needs a name (or a generateName)", ident="Workflow/<no name>"),
]


@pytest.mark.parametrize(("text", "document", "ident", "path", "problem"), CASES)
def test_bad_workflow_names_document_field_path_and_problem(
        text: str, document: int, ident: str | None, path: str, problem: str | re.Pattern[str]) -> None:
    check_bad(text, document, ident, path, problem)


def test_every_template_in_the_table_is_itself_accepted() -> None:
    for text in (GOOD, wf(dag(*CYCLE[1:]).replace("dependencies: [a]", "dependencies: []") + ECHO),
                 wf(steps("{name: a, template: print, arguments: {parameters: [{name: m, value: x}]}}") + PRINT),
                 wf(ECHO, meta="  generateName: hello-\n", entry="echo"), wf(container(""))):
        load_wf(text)


def test_table_covers_enough_cases() -> None:
    assert len(CASES) >= 50 and len({c.id for c in CASES}) == len(CASES)


# --- through the real CLI ---------------------------------------------------------------------------

def test_apply_names_a_generate_name_workflow_anew_each_time(cli: Cli) -> None:
    names = []
    for _ in range(2):
        proc = cli.apply(HELLO)
        match = re.fullmatch(r"workflow/(hello-world-[bcdfghjklmnpqrstvwxz2456789]{5}) created\n", proc.stdout)
        assert match, proc.stdout
        names.append(match.group(1))
    assert names[0] != names[1]
    assert sorted(cli("get", "workflows", "-o", "name").stdout.split()) == sorted(f"workflow/{n}" for n in names)
    doc = cli.json("wf", names[0])
    assert doc["metadata"]["name"] == names[0] and doc["metadata"]["generateName"] == "hello-world-"
    assert doc["spec"]["templates"][0]["container"]["args"] == ["hello world"]
    assert names[1] in cli("get", "wf").stdout
    assert names[0] in cli("describe", "workflow", names[0]).stdout
    refused = cli("render", "-f", "-", "--target", "slurm", input=HELLO, check=False)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.splitlines()[-1] == ("error: <stdin>: document 1 (Workflow/hello-world-): render is not "
                                               "available for this kind (apply it; each step runs as its own pod)")
    echoed = cli("render", "-f", "-", "--target", "kubernetes", input=HELLO).stdout
    assert "kind: Workflow" in echoed and "generateName: hello-world-" in echoed


def test_a_refused_workflow_stores_nothing(cli: Cli) -> None:
    proc = cli("apply", "-f", "-", input=wf(ECHO, entry="nope"), check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("error: <stdin>: document 1 (Workflow/wf): spec.entrypoint: no template named 'nope' in "
                           "spec.templates\n")
    assert not cli.home.exists()
    with pytest.raises(ManifestError):
        load_text(wf(ECHO, entry="nope"), SOURCE)
