"""Bad input once accepted, continued: Workflow containers that could never start, parameter enums,
durations beyond activeDeadlineSeconds' bound, sbatch flags in templateDefaults, `kind: List` itself and
duplicates inside it, ConfigMap keys in both maps, Dataset paths with control characters; and `render` of a Job
of no completions.

Each refusal goes through `podline apply -f` in process (`inprocess_cli.refused`): exit 2, one line naming the
document, object and exact field path, and nothing stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.api.loader import load_text
from podline.plan.slurm import Placement, render_indexed_job
from podline.store import Store
from tests.unit.inprocess_cli import empty_home, refused, run, workflow


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    return empty_home(tmp_path, monkeypatch)


# --- 4: an Argo container template with neither image nor command ---------------------------------------

@pytest.mark.parametrize(("template", "path"), [
    ("    container: {}\n", "spec.templates[0].container.image"),
    ("    container: {resources: {requests: {cpu: 1}}}\n", "spec.templates[0].container.image"),
    ("    steps: [[{name: s, inline: {container: {}}}]]\n", "spec.templates[0].steps[0][0].inline.container.image"),
    ("    dag: {tasks: [{name: t, inline: {container: {env: []}}}]}\n",
     "spec.templates[0].dag.tasks[0].inline.container.image"),
], ids=["empty", "resources-only", "inline-step", "inline-task"])
def test_a_workflow_container_that_could_never_start_is_refused(store: Store, template: str, path: str) -> None:
    refused(store, workflow(template=template), "Workflow/w", path,
            "required field is missing (a container without command or args needs an image)")


@pytest.mark.parametrize(("spec", "template"), [
    ("", "    container: {args: [x]}\n"),
    ("", "    container: {command: [x]}\n"),
    ("  templateDefaults: {container: {image: busybox}}\n", "    container: {}\n"),
])
def test_a_workflow_container_with_an_image_or_something_to_run_is_accepted(spec: str, template: str) -> None:
    assert load_text(workflow(spec, template), "ok.yaml")[0].obj.kind == "Workflow"


# --- 6: parameter enums ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "path", "problem"), [
    ("  arguments: {parameters: [{name: a, value: z, enum: [x, y]}]}\n", "spec.arguments.parameters[0].value",
     "'z' is not one of the enum values ('x', 'y')"),
    ("  arguments: {parameters: [{name: b, value: x}, {name: a, value: 3, enum: [1, 2]}]}\n",
     "spec.arguments.parameters[1].value", "'3' is not one of the enum values ('1', '2')"),
    ("  arguments: {parameters: [{name: a, value: x, enum: []}]}\n", "spec.arguments.parameters[0].enum",
     "must list at least one value"),
], ids=["value-not-in-enum", "number-not-in-enum", "empty-enum"])
def test_a_workflow_argument_outside_its_enum_is_refused(store: Store, spec: str, path: str, problem: str) -> None:
    refused(store, workflow(spec), "Workflow/w", path, problem)


@pytest.mark.parametrize("parameter", ["{name: a, value: y, enum: [x, y]}", "{name: a, value: 2, enum: [1, 2]}",
                                       "{name: a, value: '{{workflow.name}}', enum: [x]}"])
def test_a_workflow_argument_within_its_enum_is_accepted(parameter: str) -> None:
    text = workflow(f"  arguments: {{parameters: [{parameter}]}}\n")
    assert load_text(text, "ok.yaml")[0].obj.kind == "Workflow"


# --- 7: durations are bounded as activeDeadlineSeconds is -----------------------------------------------

@pytest.mark.parametrize(("template", "path"), [
    ("    timeout: '99999999999999999999999h'\n", "spec.templates[0].timeout"),
    ("    timeout: '1000000001'\n", "spec.templates[0].timeout"),
    ("    timeout: '277777h46m41s'\n", "spec.templates[0].timeout"),
    ("    retryStrategy: {limit: 1, backoff: {duration: 300000h}}\n",
     "spec.templates[0].retryStrategy.backoff.duration"),
    ("    retryStrategy: {limit: 1, backoff: {duration: 1s, maxDuration: 300000h}}\n",
     "spec.templates[0].retryStrategy.backoff.maxDuration"),
], ids=["huge-hours", "seconds-above-bound", "just-above-bound", "backoff-duration", "backoff-max-duration"])
def test_a_duration_beyond_the_deadline_bound_is_refused(store: Store, template: str, path: str) -> None:
    refused(store, workflow(template="    container: {image: busybox}\n" + template), "Workflow/w", path,
            "is too long: at most 1000000000 seconds")


def test_a_suspend_beyond_the_deadline_bound_is_refused(store: Store) -> None:
    refused(store, workflow(template="    suspend: {duration: 99999999999999h}\n"), "Workflow/w",
            "spec.templates[0].suspend.duration", "is too long: at most 1000000000 seconds")


@pytest.mark.parametrize(("template", "path"), [
    ("    timeout: '\u0663s'\n", "spec.templates[0].timeout"),
    ("    retryStrategy: {limit: '\u0663'}\n", "spec.templates[0].retryStrategy.limit"),
    ("    retryStrategy: {limit: ' 3'}\n", "spec.templates[0].retryStrategy.limit"),
], ids=["arabic-indic-timeout", "arabic-indic-limit", "padded-limit"])
def test_non_ascii_or_padded_workflow_numbers_are_refused(store: Store, template: str, path: str) -> None:
    refused(store, workflow(template="    container: {image: busybox}\n" + template), "Workflow/w", path, "")


@pytest.mark.parametrize("timeout", ["'1000000000'", "277777h46m40s", "1.5h", "90m", "500ms"])
def test_a_duration_within_the_bound_is_accepted(timeout: str) -> None:
    text = workflow(template=f"    container: {{image: busybox}}\n    timeout: {timeout}\n")
    assert load_text(text, "ok.yaml")[0].obj.kind == "Workflow"


# --- 8: render of an Indexed Job of no completions ------------------------------------------------------

JOB0 = ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  completionMode: Indexed\n  completions: 0\n"
        "  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, command: [x]}]\n")


def test_render_of_a_job_of_no_completions_prints_no_script_and_says_so(store: Store, tmp_path: Path) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(JOB0 + "---\n" + JOB0.replace("name: j", "name: k").replace("  completionMode: Indexed\n", "")
                        + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, "
                        "command: [x]}]}\n")
    result = run("render", "-f", str(manifest))
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "--array" not in result.stdout and "Job/" not in result.stdout
    assert result.stdout.startswith(f"# ---- {manifest}: document 3 (Pod/p)\n#!")
    assert result.stderr.splitlines() == [
        f"warning: {manifest}: document {n} (Job/{name}): completions is 0: the Job completes at once and runs no "
        "pod; no script" for n, name in ((1, "j"), (2, "k"))]
    assert store.list() == []


def test_an_array_of_no_indexes_is_never_rendered() -> None:
    manifest = load_text(JOB0, "j.yaml")[0].obj.dump()
    with pytest.raises(ValueError, match="no indexes to render"):
        render_indexed_job(manifest, "uid", "/tmp/base", Placement(None, None, None, None, "python"))


# --- 9: sbatch flags in templateDefaults ----------------------------------------------------------------

def test_sbatch_flags_in_template_defaults_are_checked_as_a_templates_are(store: Store) -> None:
    spec = "  templateDefaults: {metadata: {annotations: {slurm.hpk.io/flags: '--wrap=id --output=/etc/x'}}}\n"
    refused(store, workflow(spec), "Workflow/w", "spec.templateDefaults.metadata.annotations[slurm.hpk.io/flags]",
            "sbatch option '--wrap' is not allowed")
    allowed = "  templateDefaults: {metadata: {annotations: {slurm.hpk.io/flags: '--exclusive'}}}\n"
    assert load_text(workflow(allowed), "ok.yaml")[0].obj.kind == "Workflow"


# --- 10: kind List, ConfigMap keys, Dataset paths -------------------------------------------------------

CM = "- {apiVersion: v1, kind: ConfigMap, metadata: {name: %s}}\n"


def test_a_duplicate_inside_a_list_names_its_item(store: Store) -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n" + CM % "a" + CM % "b" + CM % "a"
    refused(store, text, "ConfigMap/a", "items[2].metadata.name",
            "duplicate object: also defined in <stdin>: document 1 (ConfigMap/a) at items[0]")
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems:\n" + CM % "a"
    refused(store, text, "ConfigMap/a", "items[0].metadata.name",
            "duplicate object: also defined in <stdin>: document 1 (ConfigMap/a)", document=2)


@pytest.mark.parametrize(("head", "path", "problem"), [
    ("apiVersion: v2\nkind: List\n", "apiVersion", "unsupported apiVersion 'v2' for kind List (use v1)"),
    ("kind: List\n", "apiVersion", "required field is missing"),
    ("apiVersion: v1\nkind: List\nextra: 1\n", "extra", "unknown field"),
    ("apiVersion: v1\nkind: List\nmetadata: [x]\n", "metadata", "must be a mapping"),
], ids=["apiversion-v2", "no-apiversion", "unknown-field", "metadata-not-a-mapping"])
def test_a_list_itself_is_v1_with_known_fields(store: Store, head: str, path: str, problem: str) -> None:
    refused(store, head + "items:\n" + CM % "a", "List/<no name>", path, problem)


def test_a_list_as_kubectl_prints_it_is_accepted() -> None:
    text = "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: ''}\nitems:\n" + CM % "a" + CM % "b"
    assert [x.obj.metadata.name for x in load_text(text, "ok.yaml")] == ["a", "b"]


def test_a_configmap_key_in_data_and_binary_data_is_refused(store: Store) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: x, k: v}\nbinaryData: {k: YQ==}\n"
    refused(store, text, "ConfigMap/cm", "binaryData[k]", "duplicate of key present in data")


@pytest.mark.parametrize("source", ['"/data/a\\nb"', '"/data/a\\tb"', '"file:///data/a\\rb"', '"/data/a\\u2028b"',
                                    '"/data/\\x7f"'])
def test_a_local_dataset_source_with_control_characters_is_refused(store: Store, source: str) -> None:
    text = f"apiVersion: podline.io/v1alpha1\nkind: Dataset\nmetadata: {{name: d}}\nspec: {{source: {source}}}\n"
    refused(store, text, "Dataset/d", "spec.source", "must be a path without control characters or line breaks")


def test_a_local_dataset_source_with_blanks_and_letters_is_accepted() -> None:
    text = "apiVersion: podline.io/v1alpha1\nkind: Dataset\nmetadata: {name: d}\nspec: {source: '/data/run 42/é'}\n"
    assert load_text(text, "ok.yaml")[0].obj.spec.source == "/data/run 42/é"
