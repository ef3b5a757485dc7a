"""Hostile input helper-80 found accepted: each is exit 2 with one line and stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.store import Store
from tests.unit.inprocess_cli import empty_home, pipeline, pod, refused, run


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    return empty_home(tmp_path, monkeypatch)


@pytest.mark.parametrize("destination", ["/.", "//.", "/./", "///"])
def test_a_destination_that_is_the_root_in_other_words_is_refused(store: Store, destination: str) -> None:
    """`/.` published the outputs into / (a plain `/` was refused)."""
    refused(store, pipeline(f"  outputs: [{{path: o, destination: '{destination}'}}]\n"), "Pipeline/pl",
            "spec.outputs[0].destination", "must name a directory below '/'")


def refused_by_the_reader(store: Store, text: str, path: str, problem: str) -> None:
    """As `refused`, for what the YAML reader refuses before any object is made (no Kind/name yet)."""
    result = run("apply", "-f", "-", stdin=text)
    assert result.exit_code == 2 and result.stdout == "", (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"error: <stdin>: document 1: {path}: {problem}"), result.stderr
    assert store.list() == []


@pytest.mark.parametrize(("text", "path"), [
    (pod(meta='  annotations: {note: "a\\ud800b"}\n'), "metadata.annotations.note"),
    (pod(container='    args: ["x", "\\udfff"]\n'), "spec.containers[0].args[1]"),
    ('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {"k": "\\ud800"}\n', "data.k"),
], ids=["annotation", "arg", "configmap-value"])
def test_a_lone_surrogate_escape_is_refused(store: Store, text: str, path: str) -> None:
    """A `"\\ud800"` escape made a string no UTF-8 can hold: describe crashed, the pod never started."""
    refused_by_the_reader(store, text, path, "not valid Unicode: a lone surrogate")


@pytest.mark.parametrize("value", ["/in\nput", "/a\x1b[2Jb", "/x\x7f"], ids=["newline", "escape", "delete"])
def test_control_characters_in_pipeline_paths_are_refused(store: Store, value: str) -> None:
    text = pipeline(f"  inputs: [{{source: {value!r}, path: in}}]\n".replace("'", '"'))
    refused(store, text.replace("\\x7f", "\\u007f").replace("\\x1b", "\\u001b"), "Pipeline/pl",
            "spec.inputs[0].source", "control characters are not allowed in a path")


def test_two_merge_keys_in_one_mapping_are_a_duplicate_key(store: Store) -> None:
    """One of them was lost without a word (configmap/second was made)."""
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {<<: {name: first}, <<: {name: second}}\n"
    refused_by_the_reader(store, text, "metadata.<<", "duplicate key")


@pytest.mark.parametrize("image", ["busybox(x)", "busy*box?", "busybox{a,b}", "busybox!x", "busybox#x", "-x",
                                   "BusyBox:Latest", "busybox@sha256:zz", "oci:../../../../etc"])
def test_an_image_that_is_no_reference_is_refused_at_apply(store: Store, image: str) -> None:
    """They were stored and ran on the host runtime (the reference parser ran only at pull time)."""
    refused(store, pod(container=f"    image: '{image}'\n"), "Pod/p", "spec.containers[0].image",
            "invalid image reference")


@pytest.mark.parametrize("image", ["busybox", "127.0.0.1:5000/a/b:1.0", "oci-archive:/images/t.tar",
                                   "docker.io/library/busybox@sha256:" + "a" * 64, "{{inputs.parameters.image}}",
                                   "/images/tools.sif"])
def test_references_the_runtime_can_take_are_accepted(image: str) -> None:
    from podline.api.loader import load_text

    assert load_text(pod(container=f"    image: '{image}'\n"), "ok")


@pytest.mark.parametrize("quantity", ["1e3Gi", "5e-1Gi", "2E2Mi", "1e3m"])
def test_a_quantity_with_an_exponent_and_a_suffix_is_refused(store: Store, quantity: str) -> None:
    """Kubernetes allows one suffix (1e3Gi rendered --mem=1024000M)."""
    refused(store, pod(container=f"    resources: {{limits: {{memory: '{quantity}'}}}}\n"), "Pod/p",
            "spec.containers[0].resources.limits[memory]", "invalid quantity")


@pytest.mark.parametrize(("meta", "container"), [
    ("  namespace: ''\n", ""), ("  generateName: ''\n", ""), ("", "    workingDir: ''\n"),
    ("", "    imagePullPolicy: ''\n"),
], ids=["namespace", "generateName", "workingDir", "imagePullPolicy"])
def test_an_empty_string_kubernetes_reads_as_unset_is_accepted(meta: str, container: str) -> None:
    """Helm writes them; they were refused (helper-80)."""
    from podline.api.loader import load_text

    (doc,) = load_text(pod(meta=meta, container=container), "ok")
    assert doc.obj.metadata.namespace == "default"


def test_an_empty_sub_path_is_the_whole_volume() -> None:
    from podline.api.loader import load_text

    text = pod(spec="  volumes: [{name: v, emptyDir: {}}]\n", container="    volumeMounts: [{name: v, mountPath: /v, "
               "subPath: ''}]\n")
    (doc,) = load_text(text, "ok")
    assert doc.obj.spec.containers[0].volume_mounts[0].sub_path is None


def test_the_mpi_flags_annotation_is_not_silently_ignored() -> None:
    """The SPEC names it; podline launches no MPI: a warning, never silence (helper-80)."""
    from podline.api.loader import load_text

    (doc,) = load_text(pod(meta="  annotations: {slurm-job.vk.io/mpi-flags: '--np 4'}\n"), "ok")
    assert doc.warnings == ["metadata.annotations[slurm-job.vk.io/mpi-flags] is not supported by podline and is "
                            "ignored: run the MPI launcher (srun, mpiexec) in the container's command"]
