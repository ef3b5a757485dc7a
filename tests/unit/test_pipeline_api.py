"""The `podline.io/v1alpha1 Pipeline` kind: valid manifests, defaults, step order, the runtime plan, bad input.

Manifests go through `load_text(text, "bad.yaml")` as in test_bad_manifests.py: a refused Pipeline raises a
`ManifestError` whose one-line message is `bad.yaml: document N (Pipeline/name): <field.path>: <problem>`,
with the exact field path. A few cases also go through the real `podline apply` (a subprocess with a fresh
`$PODLINE_HOME`): exit 2, one `error:` line, nothing stored. Cases podline gets wrong are strict xfails whose
reason names the bug.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.api.dataset import Dataset
from podline.api.errors import ManifestError
from podline.api.loader import load_text
from podline.api.pipeline import MAX_SHARDS, MAX_STEPS, Pipeline, Step, topological_order
from podline.plan.pipeline import plan_pipeline

SOURCE = "bad.yaml"

# The SPEC's example Pipeline, with its Dataset input replaced by a plain source path (the Dataset form is
# test_spec_example_with_its_dataset_loads).
SPEC_EXAMPLE = """\
apiVersion: podline.io/v1alpha1
kind: Pipeline
metadata: {name: analysis}
spec:
  shards: 4                               # one Slurm job array of 4 tasks; PODLINE_SHARD=0..3
  workspace: {medium: Memory, sizeLimit: 8Gi}   # $PODLINE_WORKSPACE, shared by every step
  inputs:  [{source: /lustre/project/run42, path: in}]
  outputs: [{path: out, destination: /lustre/project/results/run42}]
  checkpoint: {nodeLocalEvery: 1, sharedEvery: 2}   # L2 after every step, L3 every 2 steps
  backoffLimit: 2
  steps:
  - name: decode
    image: oci-archive:/images/tools.tar
    command: [decode, --in, in, --out, decoded]
    resources: {requests: {cpu: "2", memory: 4Gi}}
  - name: select
    dependsOn: [decode]
    image: oci-archive:/images/tools.tar
    command: [select, decoded, selected]
  - name: histogram
    dependsOn: [select]
    checkpoint: major                     # also an L3 checkpoint here
    image: oci-archive:/images/tools.tar
    command: [histo, selected, out/hist.json]
"""
SPEC_INPUT = "  inputs:  [{source: /lustre/project/run42, path: in}]\n"
assert SPEC_INPUT in SPEC_EXAMPLE


def steps(*items: str) -> str:
    """A `steps:` list, one flow mapping per item (indented for `spec`)."""
    return "  steps:\n" + "".join(f"  - {item}\n" for item in items)


ONE_STEP = steps("{name: a, command: [x]}")


def pipeline(spec: str = "", step_list: str = ONE_STEP, *, name: str = "pl", meta: str = "") -> str:
    """A valid Pipeline; `spec` and `meta` lines are indented 2 and newline-terminated."""
    return f"apiVersion: podline.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: {name}\n{meta}spec:\n{spec}{step_list}"


def dataset(spec: str) -> str:
    return f"apiVersion: podline.io/v1alpha1\nkind: Dataset\nmetadata: {{name: d}}\nspec:\n  {spec}\n"


def load_one(text: str) -> Pipeline:
    [loaded] = load_text(text, SOURCE)
    assert isinstance(loaded.obj, Pipeline)
    return loaded.obj


# --- valid manifests and defaults ---------------------------------------------------------------------

def test_spec_example_loads_with_every_field() -> None:
    obj = load_one(SPEC_EXAMPLE)
    spec = obj.spec
    assert obj.metadata.name == "analysis" and obj.metadata.namespace == "default"
    assert spec.shards == 4
    assert (spec.workspace.medium, spec.workspace.size_limit) == ("Memory", "8Gi")
    assert [(i.path, i.source, i.dataset) for i in spec.inputs] == [("in", "/lustre/project/run42", None)]
    assert [(o.path, o.destination) for o in spec.outputs] == [("out", "/lustre/project/results/run42")]
    assert (spec.checkpoint.node_local_every, spec.checkpoint.shared_every) == (1, 2)
    assert spec.backoff_limit == 2 and spec.restart_policy == "OnFailure"
    assert [s.name for s in spec.steps] == ["decode", "select", "histogram"]
    assert [s.depends_on for s in spec.steps] == [[], ["decode"], ["select"]]
    assert [s.checkpoint for s in spec.steps] == [None, None, "major"]
    assert spec.steps[0].command == ["decode", "--in", "in", "--out", "decoded"]
    assert spec.steps[0].resources.requests == {"cpu": "2", "memory": "4Gi"}
    assert topological_order(spec.steps) == [0, 1, 2]


SPEC_DATASET = """\
apiVersion: podline.io/v1alpha1
kind: Dataset
metadata: {name: events}
spec:
  source: /lustre/project/run42          # or file://…, https://…, s3://…
  include: ["*.root"]
  shardBy: files
---
"""


def test_spec_example_with_its_dataset_loads() -> None:
    text = SPEC_DATASET + SPEC_EXAMPLE.replace(SPEC_INPUT, "  inputs:  [{dataset: events, path: in}]        # staged\n")
    dataset, pipeline_doc = load_text(text, SOURCE)
    assert isinstance(dataset.obj, Dataset) and isinstance(pipeline_doc.obj, Pipeline)
    spec = dataset.obj.spec
    assert (spec.source, spec.include, spec.exclude, spec.shard_by) == ("/lustre/project/run42", ["*.root"], [],
                                                                        "files")
    assert [(i.path, i.source, i.dataset) for i in pipeline_doc.obj.spec.inputs] == [("in", None, "events")]
    assert dataset.obj.dump()["spec"] == {"source": "/lustre/project/run42", "include": ["*.root"], "exclude": [],
                                          "shardBy": "files"}


def test_dataset_source_forms() -> None:
    def source(value: str) -> str:
        [doc] = load_text(f"apiVersion: podline.io/v1alpha1\nkind: Dataset\nmetadata: {{name: d}}\n"
                          f"spec: {{source: '{value}'}}\n", SOURCE)
        return doc.obj.spec.source  # type: ignore[union-attr]
    assert source("file:///data/run1/") == "/data/run1"
    assert source("/data/with space/x") == "/data/with space/x"
    assert source("/") == "/"


def test_defaults() -> None:
    obj = load_one(pipeline())
    spec = obj.spec
    assert spec.shards == 1
    assert spec.workspace.medium == "Memory" and spec.workspace.size_limit is None
    assert spec.checkpoint.node_local_every == 1 and spec.checkpoint.shared_every == 0
    assert spec.restart_policy == "OnFailure" and spec.backoff_limit == 6
    assert spec.active_deadline_seconds is None
    assert spec.inputs == [] and spec.outputs == []
    step = spec.steps[0]
    assert step.depends_on == [] and step.checkpoint is None and step.image == "" and step.working_dir is None


def test_dump_is_camel_case_and_round_trips() -> None:
    obj = load_one(SPEC_EXAMPLE)
    dumped = obj.dump()
    assert dumped["spec"]["workspace"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert dumped["spec"]["checkpoint"] == {"nodeLocalEvery": 1, "sharedEvery": 2}
    assert dumped["spec"]["backoffLimit"] == 2 and dumped["spec"]["restartPolicy"] == "OnFailure"
    assert dumped["spec"]["steps"][1]["dependsOn"] == ["decode"]
    assert Pipeline.model_validate(dumped).dump() == dumped


def test_file_url_source_and_boundaries_are_accepted() -> None:
    obj = load_one(pipeline(f"  shards: {MAX_SHARDS}\n  restartPolicy: Never\n  backoffLimit: 0\n"
                            "  workspace: {medium: Disk, sizeLimit: 1}\n"
                            "  inputs: [{source: 'file:///data/run1', path: in/raw}]\n"
                            "  checkpoint: {nodeLocalEvery: 0, sharedEvery: 1000}\n"))
    spec = obj.spec
    assert spec.shards == MAX_SHARDS and spec.restart_policy == "Never" and spec.backoff_limit == 0
    assert spec.workspace.medium == "Disk" and spec.inputs[0].source == "/data/run1"
    assert (spec.checkpoint.node_local_every, spec.checkpoint.shared_every) == (0, MAX_STEPS)


def test_ignored_field_is_a_warning_not_an_error() -> None:
    [loaded] = load_text(pipeline("  ttlSecondsAfterFinished: 60\n"), SOURCE)
    assert loaded.warnings == ["PipelineSpec.ttlSecondsAfterFinished is not supported by podline and is ignored"]


HOSTILE = ["sh", "-c", "echo $(id) `id`; rm -rf ~ | cat > /etc/passwd && x || y & $HOME ${X} 'q' \"d\" \\ * ? ~ !#"]


def test_shell_metacharacters_in_command_args_and_env_are_kept_exactly() -> None:
    step = {"name": "a", "command": HOSTILE, "args": ["$(reboot)", "a;b", "'", '"', "\n", "\t"],
            "env": [{"name": "X", "value": "`id` $(id) ; |"}]}
    text = yaml.safe_dump({"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "pl"},
                           "spec": {"steps": [step]}})
    got = load_one(text).spec.steps[0]
    assert got.command == HOSTILE and got.args == step["args"] and got.env[0].value == "`id` $(id) ; |"


def long_pipeline(step_list: list[dict]) -> str:
    return yaml.safe_dump({"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "long"},
                           "spec": {"steps": step_list}})


def test_a_chain_of_the_most_steps_allowed_loads_quickly() -> None:
    chain = [{"name": f"s{i}", "command": ["true"], "dependsOn": [f"s{i + 1}"] if i + 1 < MAX_STEPS else []}
             for i in range(MAX_STEPS)]  # a step runs something: one with neither image nor command is refused
    started = time.perf_counter()
    obj = load_one(long_pipeline(chain))  # listed backwards: the last step listed runs first
    assert topological_order(obj.spec.steps) == list(range(MAX_STEPS - 1, -1, -1))
    assert time.perf_counter() - started < 5.0  # generous: a shared machine; a cubic blow-up takes far longer


def test_one_step_more_than_allowed_is_refused() -> None:
    with pytest.raises(ManifestError) as caught:
        load_text(long_pipeline([{"name": f"s{i}"} for i in range(MAX_STEPS + 1)]), SOURCE)
    assert caught.value.path == "spec.steps"
    assert "List should have at most 1000 items after validation, not 1001" in str(caught.value)


# --- topological_order ----------------------------------------------------------------------------------

def dag(*items: str) -> list[Step]:
    """Steps from `name` or `name<dep,dep` items."""
    out = []
    for item in items:
        name, _, deps = item.partition("<")
        out.append(Step.model_validate({"name": name, "dependsOn": deps.split(",") if deps else []}))
    return out


def names(order: list[int], graph: list[Step]) -> list[str]:
    return [graph[i].name for i in order]


@pytest.mark.parametrize(("graph", "expected"), [
    pytest.param(["a"], ["a"], id="one-step"),
    pytest.param(["a", "b<a", "c<b", "d<c"], ["a", "b", "c", "d"], id="chain-in-order"),
    pytest.param(["d<c", "c<b", "b<a", "a"], ["a", "b", "c", "d"], id="chain-listed-backwards"),
    pytest.param(["c<b", "a", "b<a"], ["a", "b", "c"], id="chain-shuffled"),
    pytest.param(["a", "b<a", "c<a", "d<b,c"], ["a", "b", "c", "d"], id="diamond"),
    pytest.param(["d<c,b", "c<a", "b<a", "a"], ["a", "c", "b", "d"], id="diamond-listed-backwards"),
    pytest.param(["a", "left<a", "right<a", "join<left,right", "after<join"],
                 ["a", "left", "right", "join", "after"], id="diamond-then-tail"),
    pytest.param(["c", "a", "b"], ["c", "a", "b"], id="independent-steps-keep-their-positions"),
    pytest.param(["x", "y", "z<x", "w<y"], ["x", "y", "z", "w"], id="two-independent-chains"),
    pytest.param(["b<a", "a", "d<c", "c"], ["a", "b", "c", "d"], id="two-chains-listed-backwards"),
])
def test_topological_order(graph: list[str], expected: list[str]) -> None:
    built = dag(*graph)
    assert names(topological_order(built), built) == expected
    assert topological_order(built) == topological_order(dag(*graph))  # deterministic


def test_topological_order_keeps_a_listing_that_is_already_in_dependency_order() -> None:
    built = dag("fetch", "decode<fetch", "report")
    assert names(topological_order(built), built) == ["fetch", "decode", "report"]


@pytest.mark.parametrize(("graph", "on_cycle"), [
    pytest.param(["a<b", "b<a"], {"a", "b"}, id="two-steps"),
    pytest.param(["a", "b<a,d", "c<b", "d<c"], {"b", "c", "d"}, id="three-steps-after-a-root"),
    pytest.param(["a<c", "b<a", "c<b", "free"], {"a", "b", "c"}, id="three-steps-and-a-free-step"),
    pytest.param(["after<b", "b<c", "c<b"], {"b", "c"}, id="downstream-step-listed-first"),
])
def test_cycle_is_refused_naming_a_step_on_it(graph: list[str], on_cycle: set[str]) -> None:
    with pytest.raises(ValueError, match="dependsOn forms a cycle through step") as caught:
        topological_order(dag(*graph))
    named = re.search(r"through step '([^']*)'", str(caught.value))
    assert named and named.group(1) in on_cycle, str(caught.value)


@st.composite
def random_dags(draw: st.DrawFn) -> list[Step]:
    """A DAG of up to 12 steps (edges only from later to earlier in a hidden order), listed in any order."""
    n = draw(st.integers(1, 12))
    deps = [draw(st.lists(st.integers(0, i - 1), unique=True, max_size=i)) if i else [] for i in range(n)]
    listing = draw(st.permutations(range(n)))
    return [Step.model_validate({"name": f"s{i}", "dependsOn": [f"s{d}" for d in deps[i]]}) for i in listing]


@settings(max_examples=150, deadline=None)
@given(random_dags())
def test_topological_order_of_any_dag_is_a_permutation_respecting_dependencies(graph: list[Step]) -> None:
    order = topological_order(graph)
    assert sorted(order) == list(range(len(graph)))
    seen: set[str] = set()
    for i in order:
        assert set(graph[i].depends_on) <= seen, f"{graph[i].name} placed before its dependencies"
        seen.add(graph[i].name)


# --- the plan the pipeline runner executes ------------------------------------------------------------

def test_plan_lists_steps_in_topological_order_with_dependencies() -> None:
    text = pipeline("  shards: 3\n  workspace: {medium: Disk, sizeLimit: 1Gi}\n  restartPolicy: Never\n"
                    "  inputs: [{source: /data, path: in}]\n  outputs: [{path: out, destination: /results}]\n",
                    steps("{name: join, command: [j], dependsOn: [left, right], checkpoint: major}",
                          "{name: left, command: [l], dependsOn: [root], resources: {requests: {cpu: 1500m}}}",
                          "{name: right, command: [r], dependsOn: [root], resources: {limits: {cpu: 2}}}",
                          "{name: root, command: [x, '$(A)'], env: [{name: A, value: a}, "
                          "{name: N, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]}"))
    plan = plan_pipeline(load_one(text).dump(), "uid-1", lambda *a: None, generation=2,
                         dirs={"shared": "/shared", "scratch": "/scratch"}, shard_dir="/home/shards/{shard}", retries=6)
    assert plan["kind"] == "Pipeline" and plan["shards"] == 3 and plan["generation"] == 2
    assert plan["pod"] == {"name": "pl", "namespace": "default", "uid": "uid-1"}
    assert plan["workspace"] == {"medium": "Disk", "mountPath": "/workspace", "sizeLimit": 2**30}
    assert plan["checkpoint"] == {"nodeLocalEvery": 1, "sharedEvery": 0}
    assert plan["restartPolicy"] == "Never" and plan["retries"] == 6
    assert plan["inputs"] == [{"path": "in", "source": "/data"}]
    assert plan["outputs"] == [{"path": "out", "destination": "/results"}]
    by_name = {s["name"]: s for s in plan["steps"]}
    assert [s["name"] for s in plan["steps"]] == ["root", "left", "right", "join"]
    assert by_name["join"]["dependsOn"] == ["left", "right"] and by_name["root"]["dependsOn"] == []
    assert [s["checkpoint"] for s in plan["steps"]] == [None, None, None, "major"]
    assert [s["cpuMillis"] for s in plan["steps"]] == [0, 1500, 2000, 0]  # a missing request defaults to the limit
    assert by_name["root"]["command"] == ["x", "$(A)"]  # $(VAR) is left to the runner
    assert by_name["root"]["env"] == [{"name": "A", "value": "a", "expand": True},
                                      {"name": "N", "value": "pl", "expand": False}]
    assert all(s["mounts"] == [] for s in plan["steps"])


# --- bad Pipeline manifests -------------------------------------------------------------------------

def case(ident_: str, text: str, path: str, problem: str | re.Pattern[str], *, doc: int = 1,
         ident: str | None = "Pipeline/pl", xfail: str | None = None) -> pytest.param:
    """`ident` None: a document-level problem (found before the object is built, so no "(Kind/name)")."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(text, doc, ident, path, problem, id=ident_, marks=marks)


DNS_LABEL = "must be a DNS-1123 label"

CASES = [
    # --- the step DAG --------------------------------------------------------------------------------
    case("cycle-of-two", pipeline(step_list=steps("{name: a, command: [x], dependsOn: [b]}",
                                                 "{name: b, command: [x], dependsOn: [a]}")),
         "spec.steps", re.compile(r"^dependsOn forms a cycle through step '[ab]': (a -> b -> a|b -> a -> b)$")),
    case("cycle-of-three-after-a-root", pipeline(step_list=steps("{name: a, command: [x]}",
                                                                "{name: b, command: [x], dependsOn: [a, d]}",
                                                                "{name: c, command: [x], dependsOn: [b]}",
                                                                "{name: d, command: [x], dependsOn: [c]}")),
         "spec.steps", re.compile(r"cycle through step '[bcd]'")),
    case("cycle-behind-a-downstream-step", pipeline(step_list=steps("{name: after, command: [x], dependsOn: [b]}",
                                                                   "{name: b, command: [x], dependsOn: [c]}",
                                                                   "{name: c, command: [x], dependsOn: [b]}")),
         "spec.steps", re.compile(r"cycle through step '[bc]'")),
    case("unknown-depends-on", pipeline(step_list=steps("{name: decode, command: [x]}",
                                                       "{name: select, command: [x], dependsOn: [decod]}")),
         "spec.steps[1].dependsOn[0]", "unknown step 'decod'"),
    case("unknown-depends-on-second-entry", pipeline(step_list=steps("{name: a, command: [x]}",
                                                                    "{name: b, command: [x], dependsOn: [a, zz]}")),
         "spec.steps[1].dependsOn[1]", "unknown step 'zz'"),
    case("self-dependency", pipeline(step_list=steps("{name: a, command: [x]}",
                                                    "{name: b, command: [x], dependsOn: [a, b]}")),
         "spec.steps[1].dependsOn[1]", "a step cannot depend on itself"),
    case("depends-on-a-step-twice", pipeline(step_list=steps("{name: a, command: [x]}",
                                                            "{name: b, command: [x], dependsOn: [a, a]}")),
         "spec.steps[1].dependsOn[1]", "step 'a' is named twice"),
    case("only-step-depends-on-itself", pipeline(step_list=steps("{name: a, command: [x], dependsOn: [a]}")),
         "spec.steps[0].dependsOn[0]", "a step cannot depend on itself"),
    case("duplicate-step-name", pipeline(step_list=steps("{name: a, command: [x]}", "{name: b, command: [x]}",
                                                        "{name: a, command: [y]}")),
         "spec.steps[2].name", "duplicate step name 'a'"),
    case("step-name-upper-case", pipeline(step_list=steps("{name: Decode, command: [x]}")), "spec.steps[0].name",
         f"'Decode': {DNS_LABEL}"),
    case("step-name-with-dot", pipeline(step_list=steps("{name: a.b, command: [x]}")), "spec.steps[0].name",
         f"'a.b': {DNS_LABEL}"),
    case("step-name-shell-metacharacters", pipeline(step_list=steps("{name: 'a;$(id)', command: [x]}")),
         "spec.steps[0].name", DNS_LABEL),
    case("step-name-too-long", pipeline(step_list=steps(f"{{name: {'s' * 64}, command: [x]}}")),
         "spec.steps[0].name", "at most 63 characters"),
    case("step-name-missing", pipeline(step_list=steps("{command: [x]}")), "spec.steps[0].name",
         "required field is missing"),
    case("depends-on-invalid-name", pipeline(step_list=steps("{name: a, command: [x], dependsOn: [B_x]}")),
         "spec.steps[0].dependsOn[0]", f"invalid step name 'B_x': {DNS_LABEL}"),
    case("depends-on-a-string", pipeline(step_list=steps("{name: a, command: [x]}",
                                                        "{name: b, command: [x], dependsOn: a}")),
         "spec.steps[1].dependsOn", "Input should be a valid list"),
    case("no-steps", pipeline(step_list="  steps: []\n"), "spec.steps", "at least 1 item"),
    case("missing-steps", pipeline("  shards: 2\n", step_list=""), "spec.steps", "required field is missing"),
    case("step-checkpoint-not-major", pipeline(step_list=steps("{name: a, command: [x], checkpoint: minor}")),
         "spec.steps[0].checkpoint", "Input should be 'major'"),
    # --- shards, policies ----------------------------------------------------------------------------
    case("shards-zero", pipeline("  shards: 0\n"), "spec.shards", "greater than or equal to 1"),
    case("shards-negative", pipeline("  shards: -4\n"), "spec.shards", "greater than or equal to 1"),
    case("shards-too-many", pipeline("  shards: 10001\n"), "spec.shards", "less than or equal to 10000"),
    case("shards-a-string", pipeline("  shards: '3'\n"), "spec.shards", "Input should be a valid integer"),
    case("shards-a-bool", pipeline("  shards: true\n"), "spec.shards", "Input should be a valid integer"),
    case("shards-a-fraction", pipeline("  shards: 2.5\n"), "spec.shards", "Input should be a valid integer"),
    case("restart-policy-always", pipeline("  restartPolicy: Always\n"), "spec.restartPolicy",
         "Input should be 'OnFailure' or 'Never'"),
    case("backoff-limit-negative", pipeline("  backoffLimit: -1\n"), "spec.backoffLimit",
         "greater than or equal to 0"),
    case("active-deadline-zero", pipeline("  activeDeadlineSeconds: 0\n"), "spec.activeDeadlineSeconds",
         "greater than or equal to 1"),
    case("checkpoint-every-negative", pipeline("  checkpoint: {sharedEvery: -1}\n"), "spec.checkpoint.sharedEvery",
         "greater than or equal to 0"),
    case("checkpoint-every-absurd", pipeline("  checkpoint: {nodeLocalEvery: 1001}\n"),
         "spec.checkpoint.nodeLocalEvery", "less than or equal to 1000"),
    # --- workspace -----------------------------------------------------------------------------------
    case("workspace-medium-lower-case", pipeline("  workspace: {medium: memory}\n"), "spec.workspace.medium",
         "Input should be 'Memory' or 'Disk'"),
    case("workspace-medium-empty-dir-style", pipeline("  workspace: {medium: ''}\n"), "spec.workspace.medium",
         "Input should be 'Memory' or 'Disk'"),
    case("workspace-medium-unknown", pipeline("  workspace: {medium: Tmpfs}\n"), "spec.workspace.medium",
         "Input should be 'Memory' or 'Disk'"),
    case("workspace-size-negative", pipeline("  workspace: {sizeLimit: -1Gi}\n"), "spec.workspace.sizeLimit",
         "must not be negative, got '-1Gi'"),
    case("workspace-size-zero", pipeline("  workspace: {sizeLimit: 0}\n"), "spec.workspace.sizeLimit",
         "must be positive"),
    case("workspace-size-absurd", pipeline("  workspace: {sizeLimit: 9Ei}\n"), "spec.workspace.sizeLimit",
         "must be positive and sane"),
    case("workspace-size-malformed", pipeline("  workspace: {sizeLimit: 8 GB}\n"), "spec.workspace.sizeLimit",
         "invalid quantity '8 GB'"),
    case("workspace-size-a-bool", pipeline("  workspace: {sizeLimit: true}\n"), "spec.workspace.sizeLimit",
         "got bool"),
    case("workspace-a-string", pipeline("  workspace: Memory\n"), "spec.workspace", "valid dictionary"),
    # --- inputs and outputs --------------------------------------------------------------------------
    case("input-absolute-path", pipeline("  inputs: [{source: /data, path: /etc}]\n"), "spec.inputs[0].path",
         "path '/etc' must be a non-empty relative path"),
    case("input-dotdot-path", pipeline("  inputs: [{source: /data, path: a/../../x}]\n"), "spec.inputs[0].path",
         "path 'a/../../x' must not contain '..'"),
    case("input-empty-path", pipeline("  inputs: [{source: /data, path: ''}]\n"), "spec.inputs[0].path",
         "must be a non-empty relative path"),
    case("input-relative-source", pipeline("  inputs: [{source: data, path: in}]\n"), "spec.inputs[0].source",
         "'data' must be an absolute path"),
    case("input-dotdot-source", pipeline("  inputs: [{source: /data/../etc, path: in}]\n"), "spec.inputs[0].source",
         "without '..'"),
    case("input-without-source", pipeline("  inputs: [{path: in}]\n"), "spec.inputs[0]",
         "exactly one of source and dataset is required"),
    case("input-source-and-dataset", pipeline("  inputs: [{source: /data, path: a},"
                                               " {source: /data, dataset: events, path: in}]\n"),
         "spec.inputs[1]", "exactly one of source and dataset is required"),
    case("input-dataset-bad-name", pipeline("  inputs: [{dataset: Events_1, path: in}]\n"),
         "spec.inputs[0].dataset", "invalid dataset name 'Events_1'"),
    case("duplicate-input-path", pipeline("  inputs: [{source: /a, path: in}, {source: /b, path: in}]\n"),
         "spec.inputs[1].path", "duplicate path 'in'"),
    case("output-absolute-path", pipeline("  outputs: [{path: /out, destination: /results}]\n"),
         "spec.outputs[0].path", "path '/out' must be a non-empty relative path"),
    case("output-dotdot-path", pipeline("  outputs: [{path: ../out, destination: /results}]\n"),
         "spec.outputs[0].path", "must not contain '..'"),
    case("output-nul-in-path", pipeline('  outputs: [{path: "o\\0ut", destination: /results}]\n'),
         "spec.outputs[0].path", "must be a non-empty relative path"),
    case("output-relative-destination", pipeline("  outputs: [{path: out, destination: results}]\n"),
         "spec.outputs[0].destination", "'results' must be an absolute path"),
    case("output-dotdot-destination", pipeline("  outputs: [{path: out, destination: /r/../../etc}]\n"),
         "spec.outputs[0].destination", "without '..'"),
    case("output-without-destination", pipeline("  outputs: [{path: out}]\n"), "spec.outputs[0].destination",
         "required field is missing"),
    case("duplicate-output-path", pipeline("  outputs: [{path: out, destination: /r}, {path: out, destination: /s}]\n"),
         "spec.outputs[1].path", "duplicate path 'out'"),
    # --- what a step may not have ---------------------------------------------------------------------
    case("step-volume-mounts", pipeline(step_list=steps("{name: a, command: [x]}",
                                                       "{name: b, command: [x], volumeMounts: "
                                                       "[{name: v, mountPath: /v}]}")),
         "spec.steps[1].volumeMounts", "not supported in a Pipeline step"),
    case("step-relative-working-dir", pipeline(step_list=steps("{name: a, command: [x], workingDir: sub}")),
         "spec.steps[0].workingDir", "workingDir 'sub' must be an absolute path"),
    case("step-absurd-cpu", pipeline(step_list=steps("{name: a, command: [x], resources: {requests: {cpu: '1e9'}}}")),
         "spec.steps[0].resources.requests[cpu]", "'1e9' is absurdly large"),
    case("step-requests-above-limits", pipeline(step_list=steps("{name: a, command: [x], resources: "
                                                               "{requests: {memory: 2Gi}, limits: {memory: 1Gi}}}")),
         "spec.steps[0].resources.requests[memory]", "must be less than or equal to limits[memory]"),
    case("step-fractional-gpu", pipeline(step_list=steps("{name: a, command: [x], resources: "
                                                        "{limits: {nvidia.com/gpu: 0.5}}}")),
         "spec.steps[0].resources.limits[nvidia.com/gpu]", "whole numbers"),
    case("step-command-a-string", pipeline(step_list=steps("{name: a, command: echo hi}")), "spec.steps[0].command",
         "Input should be a valid list"),
    case("nul-in-command", pipeline(step_list=steps('{name: a, command: ["de\\0code"]}')),
         "spec.steps[0].command[0]", "must not contain NUL bytes"),
    case("nul-in-args", pipeline(step_list=steps('{name: a, command: [x], args: [ok, "a\\0b"]}')),
         "spec.steps[0].args[1]", "must not contain NUL bytes"),
    case("nul-in-env-value", pipeline(step_list=steps('{name: a, command: [x], env: [{name: A, value: "\\0"}]}')),
         "spec.steps[0].env[0].value", "must not contain NUL bytes"),
    case("nul-in-image", pipeline(step_list=steps('{name: a, command: [x], image: "busy\\0box"}')),
         "spec.steps[0].image", "NUL"),
    # --- unknown fields at every depth ---------------------------------------------------------------
    case("unknown-top-level-field", pipeline() + "extra: 1\n", "extra", "unknown field"),
    case("unknown-spec-field", pipeline("  shardz: 4\n"), "spec.shardz", "unknown field"),
    case("unknown-step-field", pipeline(step_list=steps("{name: a, command: [x], dependOn: [b]}")),
         "spec.steps[0].dependOn", "unknown field"),
    case("pod-field-in-a-step", pipeline(step_list=steps("{name: a, command: [x], volumes: []}")),
         "spec.steps[0].volumes", "unknown field"),
    case("unknown-workspace-field", pipeline("  workspace: {size: 1Gi}\n"), "spec.workspace.size", "unknown field"),
    case("unknown-checkpoint-field", pipeline("  checkpoint: {every: 2}\n"), "spec.checkpoint.every",
         "unknown field"),
    case("unknown-input-field", pipeline("  inputs: [{source: /d, path: in, readOnly: true}]\n"),
         "spec.inputs[0].readOnly", "unknown field"),
    case("unknown-output-field", pipeline("  outputs: [{path: out, destination: /r, mode: 0644}]\n"),
         "spec.outputs[0].mode", "unknown field"),
    case("pod-spec-field-next-to-steps", pipeline("  containers: [{name: c, command: [x]}]\n"), "spec.containers",
         "unknown field"),
    # --- document level ------------------------------------------------------------------------------
    case("wrong-api-version", pipeline().replace("podline.io/v1alpha1", "podline.io/v1"), "apiVersion",
         "unsupported apiVersion 'podline.io/v1' for kind Pipeline (use podline.io/v1alpha1)"),
    case("pipeline-name-shell-metacharacters", pipeline(name="'x; rm -rf ~'"), "metadata.name",
         "must be a DNS-1123 subdomain", ident="Pipeline/x; rm -rf ~"),
    case("pipeline-name-missing", pipeline().replace("  name: pl\n", "  labels: {a: b}\n"), "metadata.name",
         "required: every object needs a name", ident="Pipeline/<no name>"),
    case("disallowed-slurm-flag", pipeline(meta="  annotations: {slurm.hpk.io/flags: '--wrap=id'}\n"),
         "metadata.annotations[slurm.hpk.io/flags]", "sbatch option '--wrap' is not allowed"),
    case("duplicate-key", pipeline("  shards: 2\n  shards: 3\n"), "spec.shards", "duplicate key", ident=None),
    case("second-document-bad", pipeline(name="ok") + "---\n" + pipeline("  shards: 0\n"), "spec.shards",
         "greater than or equal to 1", doc=2),
    case("duplicate-pipeline", pipeline() + "---\n" + pipeline(), "metadata.name",
         "duplicate object: also defined in bad.yaml: document 1 (Pipeline/pl)", doc=2),
    # --- Datasets -----------------------------------------------------------------------------------------
    case("dataset-gs", dataset("source: gs://bucket/run42"), "spec.source",
         "gs:// sources are not supported", ident="Dataset/d"),
    case("dataset-https-credentials", dataset("source: 'https://me:pw@example.org/data/'"), "spec.source",
         "and no credentials: they would be logged", ident="Dataset/d"),
    case("dataset-relative", dataset("source: data/run42"), "spec.source", "must be an absolute path",
         ident="Dataset/d"),
    case("dataset-dotdot", dataset("source: /data/../etc"), "spec.source", "without '..'", ident="Dataset/d"),
    case("dataset-no-source", dataset("include: ['*']"), "spec.source", "required field is missing",
         ident="Dataset/d"),
    case("dataset-shard-by", dataset("source: /d\n  shardBy: lines"), "spec.shardBy", "'files' or 'none'",
         ident="Dataset/d"),
    case("dataset-unknown-field", dataset("source: /d\n  target: ram"), "spec.target", "unknown field",
         ident="Dataset/d"),
    case("dataset-empty-pattern", dataset("source: /d\n  include: ['']"), "spec.include[0]",
         "not a usable glob", ident="Dataset/d"),
    case("dataset-pattern-not-a-list", dataset("source: /d\n  exclude: '*.tmp'"), "spec.exclude",
         "list", ident="Dataset/d"),
]


@pytest.mark.parametrize(("text", "document", "ident", "path", "problem"), CASES)
def test_bad_pipeline_names_document_field_path_and_problem(
        text: str, document: int, ident: str | None, path: str, problem: str | re.Pattern[str]) -> None:
    started = time.perf_counter()
    with pytest.raises(ManifestError) as caught:
        load_text(text, SOURCE)
    elapsed = time.perf_counter() - started
    error = caught.value
    message = str(error)
    assert len(message.splitlines()) == 1, f"not one line: {message!r}"
    prefix = f"{SOURCE}: document {document}{f' ({ident})' if ident else ''}: {path}: "
    assert message.startswith(prefix), f"expected {prefix!r}...\n     got {message!r}"
    assert (error.path, error.document, error.kind) == (path, document, ident.split("/")[0] if ident else None)
    rest = message[len(prefix):]
    if isinstance(problem, re.Pattern):
        assert problem.search(rest), f"problem {problem.pattern!r} not in {rest!r}"
    else:
        assert problem in rest, f"problem {problem!r} not in {rest!r}"
    assert elapsed < 1.0, f"took {elapsed:.2f}s"


def test_table_covers_enough_cases() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


def test_every_template_in_the_table_is_itself_accepted() -> None:
    """The cases break one thing each: what they start from loads cleanly."""
    assert load_one(pipeline()).spec.steps[0].name == "a"
    good_dag = steps("{name: a, command: [x]}", "{name: b, command: [x], dependsOn: [a]}",
                     "{name: c, command: [x], dependsOn: [a, b]}")
    assert [s.name for s in load_one(pipeline(step_list=good_dag)).spec.steps] == ["a", "b", "c"]
    io = ("  inputs: [{source: /a, path: in}, {source: /b, path: in2}]\n"
          "  outputs: [{path: out, destination: /r}, {path: in, destination: /s}]\n")
    assert len(load_one(pipeline(io)).spec.outputs) == 2  # an input path may also be an output
    assert load_one(pipeline(meta="  annotations: {slurm.hpk.io/flags: '--exclusive'}\n")).metadata.annotations


# --- through the real CLI -------------------------------------------------------------------------------

def podline(home: Path, *args: str, input: str | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PODLINE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "podline.cli", *args], input=input, text=True, capture_output=True,
                          env=env, timeout=60, cwd=cwd)


CYCLE = pipeline(step_list=steps("{name: a, command: [touch, MARKER], dependsOn: [b]}",
                                 "{name: b, command: [touch, MARKER], dependsOn: [a]}"))
GOOD_THEN_BOTH = (pipeline(name="good", step_list=steps("{name: a, command: [touch, MARKER]}")) + "---\n"
                  + pipeline("  inputs: [{dataset: events, source: /data, path: in}]\n"))
VOLUME_MOUNT = pipeline(step_list=steps("{name: a, command: [touch, MARKER], "
                                        "volumeMounts: [{name: v, mountPath: /v}]}"))


@pytest.mark.parametrize(("verb", "text", "stdin", "where"), [
    pytest.param(["apply"], CYCLE, False, "document 1 (Pipeline/pl): spec.steps: dependsOn forms a cycle", id="cycle"),
    pytest.param(["apply"], GOOD_THEN_BOTH, True,
                 "document 2 (Pipeline/pl): spec.inputs[0]: exactly one of source and dataset is required",
                 id="stdin-good-then-input-with-source-and-dataset"),
    pytest.param(["apply"], VOLUME_MOUNT, False, "document 1 (Pipeline/pl): spec.steps[0].volumeMounts: not supported",
                 id="volume-mount"),
    pytest.param(["render", "--target", "kubernetes"], CYCLE, False, "document 1 (Pipeline/pl): spec.steps: ",
                 id="render-cycle"),
])
def test_cli_refuses_bad_pipeline_with_exit_2_one_line_and_no_state(
        tmp_path: Path, verb: list[str], text: str, stdin: bool, where: str) -> None:
    home, marker = tmp_path / "home", tmp_path / "ran"
    text = text.replace("MARKER", str(marker))
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(text)
    source = "-" if stdin else str(manifest)
    proc = podline(home, *verb, "-f", source, input=text if stdin else None, cwd=tmp_path)
    try:
        assert proc.returncode == 2, f"exit {proc.returncode}\nstderr: {proc.stderr}"
        assert proc.stdout == ""
        assert len(proc.stderr.splitlines()) == 1, f"expected one stderr line, got {proc.stderr!r}"
        expected = f"error: {'<stdin>' if stdin else source}: {where}"
        assert proc.stderr.startswith(expected), f"expected {expected!r}..., got {proc.stderr!r}"
        assert not home.exists(), "a refused command created $PODLINE_HOME"
        assert not marker.exists()
    finally:
        if (home / "controller.pid").exists():  # only if something was (wrongly) stored
            podline(home, "down")


def test_a_steps_own_value_for_a_shard_variable_is_warned_about() -> None:
    """It replaces podline's (as a later env entry does in Kubernetes): allowed, never silently (helper-83)."""
    from podline.api.loader import load_text

    (doc,) = load_text("apiVersion: podline.io/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  steps:\n"
                       "  - {name: a, command: [a],\n"
                       "     env: [{name: X, value: '1'}, {name: PODLINE_SHARDS, value: '99'}]}\n", "p.yaml")
    assert doc.warnings == ["spec.steps[0].env[1]: PODLINE_SHARDS is set by podline for each shard; this value "
                            "replaces it"]
