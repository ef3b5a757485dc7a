"""`render --target kubernetes` of a Pipeline keeps podline's meaning where Kubernetes' defaults differ.

Each case pins the rendered values and validates the Job against the Kubernetes schema (as
test_render_kubernetes does): a Pipeline named by generateName, a GPU request without a limit (and the
refusal of one unequal to its limit, which Kubernetes refuses too), a RAM workspace in the steps' memory,
and backoffLimit per shard.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from podline.api.base import check_label_key, check_label_value
from podline.api.errors import ManifestError
from podline.api.loader import load_text
from podline.cli.common import State
from podline.cli.main import cli
from podline.plan.kubernetes import pipeline_array_job, pipeline_job
from podline.plan.slurm import Placement, render_indexed_job
from podline.store import Store
from tests.unit.test_render_kubernetes import ALL, load_pipeline, pipeline, podline, steps, validate


def api_server_rules(job: dict[str, Any]) -> None:
    """What the API server refuses that the OpenAPI schema lets through (kubernetes_validate takes `name: null`
    and a GPU request without a limit): a name or generateName, no nulls, valid labels, GPU limits equal to their
    requests, and backoffLimitPerIndex only in an Indexed Job of restartPolicy Never."""
    meta = job["metadata"]
    assert isinstance(meta.get("name") or meta.get("generateName"), str), f"neither name nor generateName: {meta}"

    def walk(value: object, where: str) -> None:
        assert value is not None, f"null at {where}"
        for key, item in (value.items() if isinstance(value, dict) else
                          enumerate(value) if isinstance(value, list) else ()):
            walk(item, f"{where}.{key}")
    walk(job, "")
    for labels in (meta.get("labels", {}), job["spec"]["template"].get("metadata", {}).get("labels", {})):
        for key, value in labels.items():
            check_label_key(key)
            check_label_value(value)
    pod = pod_of(job)
    for container in pod.get("initContainers", []) + pod["containers"]:
        resources = container.get("resources", {})
        for key, value in resources.get("requests", {}).items():
            if key == "nvidia.com/gpu":
                assert resources.get("limits", {}).get(key) == value, f"{container['name']}: {key} limit != request"
    if "backoffLimitPerIndex" in job["spec"]:
        assert job["spec"]["completionMode"] == "Indexed" and pod["restartPolicy"] == "Never", \
            "backoffLimitPerIndex needs an Indexed Job and restartPolicy Never"


def render(text: str) -> dict[str, Any]:
    job = pipeline_job(load_pipeline(text).dump())
    validate(job)
    api_server_rules(job)
    return job


def pod_of(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def resources_by_step(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = pod_of(job)
    return {c["name"]: c["resources"] for c in pod.get("initContainers", []) + pod["containers"]}


# --- generateName ------------------------------------------------------------------------------------

GENERATED = ("apiVersion: podline.io/v1alpha1\nkind: Pipeline\nmetadata:\n  generateName: run-\n  labels: {app: x}\n"
             "spec:\n" + steps("{name: a, command: [a]}"))
GENERATED_BARE = GENERATED.replace("  labels: {app: x}\n", "")


def test_a_pipeline_named_by_generate_name_keeps_it_and_has_no_empty_label() -> None:
    job = render(GENERATED)
    assert job["metadata"] == {"generateName": "run-", "namespace": "default", "labels": {"app": "x"}}
    assert job["spec"]["template"]["metadata"] == {"labels": {"app": "x"}}
    bare = render(GENERATED_BARE)
    assert bare["metadata"] == {"generateName": "run-", "namespace": "default"}
    assert "metadata" not in bare["spec"]["template"]
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        for value in labels.values():
            check_label_value(value)


def test_a_named_pipeline_has_no_generate_name() -> None:
    text = GENERATED.replace("  generateName: run-\n", "  name: run-1\n  generateName: run-\n")
    job = render(text)
    assert job["metadata"]["name"] == "run-1" and "generateName" not in job["metadata"]
    assert job["metadata"]["labels"] == {"app": "x", "podline.io/pipeline": "run-1"}


@pytest.mark.parametrize("text", [*ALL, pytest.param(GENERATED, id="generate-name"),
                                  pytest.param(GENERATED_BARE, id="generate-name-without-labels")])
def test_every_rendered_job_passes_the_api_servers_rules(text: str) -> None:
    render(text)


@pytest.mark.parametrize(("mutate", "where"), [
    pytest.param(lambda job: job.update(metadata={"name": None, "namespace": "default", "labels": {
        "podline.io/pipeline": ""}}), "neither name nor generateName",
                 id="name-null-as-rendered-before"),
    pytest.param(lambda job: job["metadata"].update(labels={"podline.io/pipeline": "run-"}),
                 "invalid label value 'run-'", id="generate-name-as-label"),
    pytest.param(lambda job: job["spec"]["template"]["spec"]["containers"][0]["resources"].update(
        requests={"nvidia.com/gpu": 1}, limits={}), "a: nvidia.com/gpu limit != request",
                 id="gpu-request-without-limit-as-rendered-before"),
    pytest.param(lambda job: job["spec"]["template"]["spec"].update(restartPolicy="OnFailure"),
                 "backoffLimitPerIndex needs", id="per-index-with-on-failure"),
    pytest.param(lambda job: job["metadata"].update(namespace=None), "null at .metadata.namespace", id="a-null"),
])
def test_the_api_server_rules_catch_what_the_schema_lets_through(mutate: Any, where: str) -> None:
    """Each broken Job passes the schema but not the rules, so `api_server_rules` means something."""
    broken = copy.deepcopy(render(pipeline("never", "  restartPolicy: Never\n", steps("{name: a, command: [a]}"))))
    mutate(broken)
    validate(broken)
    with pytest.raises((AssertionError, ValueError), match=re.escape(where)):
        api_server_rules(broken)


def test_cli_render_kubernetes_of_a_generate_name(tmp_path: Path) -> None:
    manifest = tmp_path / "gen.yaml"
    manifest.write_text(GENERATED.replace("{name: a, command: [a]}", "{name: a, image: busybox, command: [a]}"))
    proc = podline(tmp_path, "render", "-f", str(manifest), "--target", "kubernetes")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    manifest.write_text(GENERATED)  # a step with no image (podline runs it on the host): rendered with busybox, said
    proc = podline(tmp_path, "render", "-f", str(manifest), "--target", "kubernetes")
    assert proc.returncode == 0 and "spec.steps[0] (a) names no image: rendered with busybox" in proc.stderr
    [doc] = yaml.safe_load_all(proc.stdout)
    validate(doc)
    assert doc["metadata"]["generateName"] == "run-" and "name" not in doc["metadata"]
    assert "podline.io/pipeline" not in proc.stdout and "null" not in proc.stdout


# --- GPUs: Kubernetes requires a limit, equal to the request -----------------------------------------

def test_a_gpu_request_without_a_limit_gets_the_limit() -> None:
    job = render(pipeline("gpu", "  workspace: {medium: Disk}\n", steps(
        "{name: a, command: [a], resources: {requests: {nvidia.com/gpu: 1, cpu: 2}}}",
        "{name: b, command: [b], dependsOn: [a], resources: {limits: {nvidia.com/gpu: 2}}}",
        "{name: c, command: [c], dependsOn: [b]}")))
    assert resources_by_step(job) == {
        "a": {"requests": {"nvidia.com/gpu": 1, "cpu": 2}, "limits": {"nvidia.com/gpu": 1}},
        "b": {"requests": {}, "limits": {"nvidia.com/gpu": 2}},  # Kubernetes defaults the request to the limit
        "c": {"requests": {}, "limits": {}}}
    script = render_indexed_job(pipeline_array_job(load_pipeline(pipeline("gpu", "", steps(
        "{name: a, command: [a], resources: {requests: {nvidia.com/gpu: 3}}}"))).dump()), "u", "/x", Placement())
    assert "#SBATCH --gres=gpu:3\n" in script  # Slurm asks for the same GPUs


POD_GPU = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    command: [x]\n"
           "    resources: {requests: {nvidia.com/gpu: REQ}, limits: {nvidia.com/gpu: LIM}}\n")
JOB_GPU = ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n"
           "      restartPolicy: Never\n      containers:\n      - name: c\n        command: [x]\n"
           "        resources: {requests: {nvidia.com/gpu: REQ}, limits: {nvidia.com/gpu: LIM}}\n")
STEP_GPU = pipeline("pl", "", steps("{name: a, command: [a]}", "{name: b, command: [b], dependsOn: [a], "
                                    "resources: {requests: {nvidia.com/gpu: REQ}, limits: {nvidia.com/gpu: LIM}}}"))
GPU_CASES = [pytest.param(POD_GPU, "Pod/p", "spec.containers[0]", id="pod"),
             pytest.param(JOB_GPU, "Job/j", "spec.template.spec.containers[0]", id="job"),
             pytest.param(STEP_GPU, "Pipeline/pl", "spec.steps[1]", id="pipeline-step")]


@pytest.mark.parametrize(("request_", "limit"), [("1", "2"), ("2", "1"), ("0", "1")])
@pytest.mark.parametrize(("text", "ident", "where"), GPU_CASES)
def test_a_gpu_request_unequal_to_its_limit_is_refused(text: str, ident: str, where: str, request_: str,
                                                       limit: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_text(text.replace("REQ", request_).replace("LIM", limit), "gpu.yaml")
    assert str(caught.value) == (
        f"gpu.yaml: document 1 ({ident}): {where}.resources.requests[nvidia.com/gpu]: must be equal to "
        f"limits[nvidia.com/gpu] ({int(request_)!r} requested, {int(limit)!r} limit): an extended resource is "
        "never overcommitted")


@pytest.mark.parametrize(("text", "ident", "where"), GPU_CASES)
def test_a_gpu_request_equal_to_its_limit_is_accepted(text: str, ident: str, where: str) -> None:
    [loaded] = load_text(text.replace("REQ", "2").replace("LIM", "'2'"), "gpu.yaml")
    assert f"{loaded.obj.kind}/{loaded.obj.metadata.name}" == ident
    if loaded.obj.kind == "Pipeline":
        assert resources_by_step(render(text.replace("REQ", "2").replace("LIM", "2")))["b"] == {
            "requests": {"nvidia.com/gpu": 2}, "limits": {"nvidia.com/gpu": 2}}


def no_controller(self: State) -> None:
    raise AssertionError("a refused apply must not start the background controller")


@pytest.mark.parametrize(("text", "ident", "where"), GPU_CASES)
def test_apply_of_a_gpu_request_unequal_to_its_limit_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             text: str, ident: str, where: str) -> None:
    monkeypatch.setenv("PODLINE_HOME", str(tmp_path))
    monkeypatch.setattr(State, "ensure_controller", no_controller)
    result = CliRunner().invoke(cli, ["apply", "-f", "-"], input=text.replace("REQ", "1").replace("LIM", "2"))
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert result.stderr == (f"error: <stdin>: document 1 ({ident}): {where}.resources.requests[nvidia.com/gpu]: "
                             "must be equal to limits[nvidia.com/gpu] (1 requested, 2 limit): an extended resource "
                             "is never overcommitted\n")
    assert Store(tmp_path / "state.db").list() == []


# --- a RAM workspace is part of every step's memory --------------------------------------------------

RAM_STEPS = steps("{name: a, command: [a], resources: {limits: {memory: 1Gi}}}",
                  "{name: b, command: [b], dependsOn: [a], resources: {requests: {memory: 512Mi}}}",
                  "{name: c, command: [c], dependsOn: [b], resources: {requests: {memory: 1G, cpu: 1}, "
                  "limits: {memory: 2Gi}}}",
                  "{name: d, command: [d], dependsOn: [c]}")


def test_a_memory_workspace_is_added_to_every_steps_memory() -> None:
    job = render(pipeline("ram", "  workspace: {medium: Memory, sizeLimit: 4Gi}\n", RAM_STEPS))
    assert resources_by_step(job) == {
        "a": {"requests": {"memory": "5Gi"}, "limits": {"memory": "5Gi"}},  # 1Gi filling 4Gi is not OOM-killed
        "b": {"requests": {"memory": "4608Mi"}, "limits": {}},
        "c": {"requests": {"memory": str(10**9 + 4 * 2**30), "cpu": 1}, "limits": {"memory": "6Gi"}},
        "d": {"requests": {"memory": "4Gi"}, "limits": {}}}
    assert pod_of(job)["volumes"] == [{"name": "workspace", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}}]


@pytest.mark.parametrize("workspace", ["{medium: Disk, sizeLimit: 4Gi}", "{medium: Memory}", "{medium: Disk}"])
def test_a_disk_workspace_or_one_without_size_limit_leaves_memory_alone(workspace: str) -> None:
    job = render(pipeline("ram", f"  workspace: {workspace}\n", RAM_STEPS))
    assert resources_by_step(job) == {
        "a": {"requests": {}, "limits": {"memory": "1Gi"}},
        "b": {"requests": {"memory": "512Mi"}, "limits": {}},
        "c": {"requests": {"memory": "1G", "cpu": 1}, "limits": {"memory": "2Gi"}},
        "d": {"requests": {}, "limits": {}}}


def test_slurm_and_kubernetes_count_the_workspace_once() -> None:
    manifest = load_pipeline(pipeline("ram", "  workspace: {sizeLimit: 4Gi}\n", RAM_STEPS)).dump()
    assert pipeline_array_job(manifest) == pipeline_job(manifest)
    script = render_indexed_job(pipeline_array_job(manifest), "u", "/x", Placement())
    assert "#SBATCH --mem=6144M\n" in script  # the largest step (c: 2Gi limit) and the 4Gi workspace, once


# --- backoffLimit counts per shard ---------------------------------------------------------------------

def test_restart_policy_never_renders_backoff_limit_per_index() -> None:
    job = render(pipeline("never", "  shards: 4\n  restartPolicy: Never\n  backoffLimit: 3\n",
                          steps("{name: a, command: [a]}")))
    spec = job["spec"]
    assert spec["backoffLimitPerIndex"] == 3 and spec["completionMode"] == "Indexed"
    assert "backoffLimit" not in spec  # the API server defaults it to 2147483647 beside backoffLimitPerIndex
    assert "maxFailedIndexes" not in spec  # every shard runs, as in podline
    assert pod_of(job)["restartPolicy"] == "Never"  # which backoffLimitPerIndex requires


def test_a_rendered_job_applied_to_podline_keeps_the_per_shard_limit() -> None:
    """The rendered Job, applied to podline itself, counts failures per index as the Pipeline did per shard
    (podline once ignored backoffLimitPerIndex and fell back to a Job-wide limit of 6)."""
    job = render(pipeline("never", "  shards: 4\n  restartPolicy: Never\n  backoffLimit: 3\n",
                          steps("{name: a, command: [a]}")))
    loaded = load_text(yaml.safe_dump(job), "rendered.yaml")[0]
    assert not [w for w in loaded.warnings if "backoffLimit" in w], loaded.warnings
    spec = loaded.obj.spec  # type: ignore[attr-defined]
    assert (spec.backoff_limit_per_index, spec.backoff_limit, spec.completions) == (3, 2**31 - 1, 4)


@pytest.mark.parametrize(("shards", "limit", "job_wide"), [(1, 2, 2), (4, 2, 8), (3, 0, 0), (4, 6, 24)])
def test_restart_policy_on_failure_renders_every_shards_budget_job_wide(shards: int, limit: int,
                                                                        job_wide: int) -> None:
    job = render(pipeline("onf", f"  shards: {shards}\n  backoffLimit: {limit}\n", steps("{name: a, command: [a]}")))
    assert job["spec"]["backoffLimit"] == job_wide and "backoffLimitPerIndex" not in job["spec"]
    assert pod_of(job)["restartPolicy"] == "OnFailure"


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda spec: spec.update(backoffLimitPerIndex="3"), id="a-string"),
    pytest.param(lambda spec: spec.update(backoffLimitPerShard=spec.pop("backoffLimitPerIndex")), id="misspelt"),
])
def test_the_validator_checks_backoff_limit_per_index(mutate: Any) -> None:
    job = render(pipeline("never", "  restartPolicy: Never\n", steps("{name: a, command: [a]}")))
    broken = copy.deepcopy(job)
    mutate(broken["spec"])
    with pytest.raises(kubernetes_validate.ValidationError, match="backoffLimitPer"):
        validate(broken)


# --- a RAM workspace's size and Slurm's --mem (a limit there, not only a request) ---------------------------

def test_a_ram_workspace_alone_sets_no_slurm_memory_but_adds_to_a_steps() -> None:
    def script(*step_specs: str) -> str:
        text = pipeline("ram", "  workspace: {medium: Memory, sizeLimit: 8Mi}\n", steps(*step_specs))
        return render_indexed_job(pipeline_array_job(load_pipeline(text).dump()), "u", "/x", Placement())
    assert "--mem" not in script("{name: a, command: [a]}", "{name: b, command: [b], dependsOn: [a]}")
    assert "#SBATCH --mem=108M\n" in script("{name: a, command: [a]}", "{name: b, command: [b], dependsOn: [a], "
                                            "resources: {requests: {memory: 100Mi}}}")
    job = render(pipeline("ram", "  workspace: {medium: Memory, sizeLimit: 8Mi}\n", steps("{name: a, command: [a]}")))
    assert resources_by_step(job) == {"a": {"requests": {"memory": "8Mi"}, "limits": {}}}  # a request, no limit


def test_a_steps_env_from_and_termination_message_settings_reach_its_container() -> None:
    """What the step runs with here, it runs with on Kubernetes (helper-83: they were dropped)."""
    job = render(pipeline("env", "", steps(
        "{name: a, image: busybox, command: [a], envFrom: [{configMapRef: {name: cfg}, prefix: C_}],"
        " terminationMessagePolicy: FallbackToLogsOnError}")))
    pod = job["spec"]["template"]["spec"]
    [container] = pod.get("initContainers", []) + pod["containers"]  # a one-step pipeline's step is the container
    assert container["envFrom"] == [{"prefix": "C_", "configMapRef": {"name": "cfg", "optional": False}}]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
