"""Bad input once accepted (or crashing): unbounded reads, non-ASCII or padded numbers, pipeline paths
that differ only in spelling, containers that could never start, and names referring to other objects.

Each refusal goes through `podline apply -f` in process (`inprocess_cli.refused`): exit 2, one line naming the
document, object and exact field path, and nothing stored.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from podline.api.loader import load_text
from podline.store import Store
from tests.unit.inprocess_cli import empty_home, pipeline, pod, refused, run


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    return empty_home(tmp_path, monkeypatch)


# --- 1: a file is read to the limit and one byte more, never further -------------------------------------

def test_an_endless_device_is_refused_as_too_large(store: Store) -> None:
    result = run("apply", "-f", "/dev/zero")
    assert result.exit_code == 2, (result.exit_code, result.exception)
    assert result.stderr == "error: /dev/zero: file is larger than 8 MiB\n"
    assert store.list() == []


def test_an_endless_pipe_is_refused_as_too_large(store: Store, tmp_path: Path) -> None:
    fifo = tmp_path / "endless"
    os.mkfifo(fifo)
    stop = threading.Event()

    def write() -> None:  # as `<(yes 'k: v')`: writes until the reader goes away
        try:
            with open(fifo, "wb") as out:
                while not stop.is_set():
                    out.write(b"k: v\n" * 4096)
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        result = run("apply", "-f", str(fifo))
    finally:
        stop.set()
    writer.join(timeout=10)
    assert result.exit_code == 2, (result.exit_code, result.exception)
    assert result.stderr == f"error: {fifo}: file is larger than 8 MiB\n"
    assert store.list() == []


# --- 2: numbers are ASCII digits, with nothing around them ------------------------------------------------

@pytest.mark.parametrize(("text", "path", "problem"), [
    (pod(container='    resources: {requests: {cpu: "\u0663"}}\n'), "spec.containers[0].resources.requests[cpu]",
     "invalid quantity '\u0663'"),
    (pod(container='    resources: {requests: {cpu: " 2 "}}\n'), "spec.containers[0].resources.requests[cpu]",
     "invalid quantity ' 2 '"),
    (pod(container='    resources: {limits: {memory: "\uff14Gi"}}\n'), "spec.containers[0].resources.limits[memory]",
     "invalid quantity"),
    (pod(container='    resources: {limits: {memory: "4Gi\\n"}}\n'), "spec.containers[0].resources.limits[memory]",
     "invalid quantity"),
    (pod(meta="  annotations: {slurm.hpk.io/flags: '--ntasks=\u0663'}\n"), "metadata.annotations[slurm.hpk.io/flags]",
     "invalid value '\u0663' for sbatch option --ntasks"),
    (pod(meta="  annotations: {slurm-job.vk.io/flags: '--time=\u0661:00'}\n"),
     "metadata.annotations[slurm-job.vk.io/flags]", "for sbatch option --time"),
], ids=["arabic-indic-cpu", "padded-cpu", "fullwidth-memory", "newline-after-memory", "arabic-indic-ntasks",
        "arabic-indic-time"])
def test_non_ascii_or_padded_numbers_are_refused(store: Store, text: str, path: str, problem: str) -> None:
    refused(store, text, "Pod/p", path, problem)


def test_ascii_quantities_are_still_accepted() -> None:
    text = pod(container="    resources: {requests: {cpu: 500m, memory: 1e3}, limits: {cpu: '2', memory: 4Gi}}\n",
               meta="  annotations: {slurm.hpk.io/flags: '--ntasks=3 --time=1:00'}\n")
    assert load_text(text, "ok.yaml")[0].obj.kind == "Pod"


# --- 3: pipeline paths compared as the places they name -------------------------------------------------

@pytest.mark.parametrize(("spec", "path", "problem"), [
    ("  inputs: [{source: /d, path: in}, {source: /e, path: in/}]\n", "spec.inputs[1].path",
     "duplicate path 'in/' (the same as 'in')"),
    ("  inputs: [{source: /d, path: in}, {source: /e, path: ./in}]\n", "spec.inputs[1].path",
     "duplicate path './in'"),
    ("  inputs: [{source: /d, path: in}, {source: /e, path: a}, {source: /f, path: in/sub}]\n",
     "spec.inputs[2].path", "path 'in/sub' overlaps 'in'"),
    ("  inputs: [{source: /d, path: in/sub/x}, {source: /e, path: in/.}]\n", "spec.inputs[1].path",
     "path 'in/.' overlaps 'in/sub/x'"),
    ("  outputs: [{path: o, destination: /x/y}, {path: p, destination: /x/y/}]\n", "spec.outputs[1].destination",
     "duplicate destination '/x/y/' (the same as '/x/y')"),
    ("  outputs: [{path: o, destination: /x/y}, {path: p, destination: /x/y}]\n", "spec.outputs[1].destination",
     "duplicate destination '/x/y'"),
    ("  outputs: [{path: o, destination: /x/y}, {path: p, destination: //x/./y/z}]\n",
     "spec.outputs[1].destination", "destination '//x/./y/z' overlaps '/x/y'"),
    ("  outputs: [{path: o, destination: /x/y/z}, {path: p, destination: /x/y}]\n", "spec.outputs[1].destination",
     "destination '/x/y' overlaps '/x/y/z'"),
    ("  outputs: [{path: o, destination: /x}, {path: o/, destination: /z}]\n", "spec.outputs[1].path",
     "duplicate path 'o/' (the same as 'o')"),
], ids=["input-trailing-slash", "input-dot-slash", "input-inside-earlier", "input-around-earlier",
        "destination-trailing-slash", "destination-identical", "destination-inside-earlier",
        "destination-around-earlier", "output-path-trailing-slash"])
def test_pipeline_paths_that_are_one_place_are_refused(store: Store, spec: str, path: str, problem: str) -> None:
    refused(store, pipeline(spec), "Pipeline/pl", path, problem)


def test_pipeline_paths_that_only_share_a_prefix_are_accepted() -> None:
    text = pipeline("  inputs: [{source: /d, path: in}, {source: /e, path: inb}, {source: /f, path: x/in}]\n"
                    "  outputs: [{path: o, destination: /x/y}, {path: o/a, destination: /x/yz}]\n")
    assert load_text(text, "ok.yaml")[0].obj.kind == "Pipeline"


def test_many_pipeline_inputs_are_checked_quickly() -> None:
    inputs = ", ".join(f"{{source: /d, path: in/{i}/data}}" for i in range(5000))
    started = time.perf_counter()
    assert load_text(pipeline(f"  inputs: [{inputs}]\n"), "ok.yaml")[0].obj.kind == "Pipeline"
    assert time.perf_counter() - started < 5.0  # generous for a shared machine; a quadratic check takes far longer


# --- 4: a container that could never start --------------------------------------------------------------

def test_a_pipeline_step_without_image_or_command_is_refused_as_a_pod_container_is(store: Store) -> None:
    text = ("apiVersion: podline.io/v1alpha1\nkind: Pipeline\nmetadata: {name: pl}\nspec:\n"
            "  steps: [{name: a, command: [x]}, {name: b, dependsOn: [a]}]\n")
    line = refused(store, text, "Pipeline/pl", "spec.steps[1].image", "required field is missing")
    as_pod = run("apply", "-f", "-", stdin="apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                                           "spec: {containers: [{name: c}]}\n")
    assert as_pod.stderr.split("image: ", 1)[1] == line.split("image: ", 1)[1] + "\n"  # the same problem
    assert store.list() == []


@pytest.mark.parametrize("step", ["{name: a, image: busybox}", "{name: a, args: [x]}", "{name: a, command: [x]}"])
def test_a_pipeline_step_with_an_image_or_something_to_run_is_accepted(step: str) -> None:
    text = f"apiVersion: podline.io/v1alpha1\nkind: Pipeline\nmetadata: {{name: pl}}\nspec:\n  steps: [{step}]\n"
    assert load_text(text, "ok.yaml")[0].obj.kind == "Pipeline"


# --- 5: names and keys that refer to other objects ------------------------------------------------------

@pytest.mark.parametrize(("text", "path", "problem"), [
    (pod("  volumes: [{name: v, configMap: {name: '../../etc'}}]\n"), "spec.volumes[0].configMap.name",
     "invalid name '../../etc': must be a DNS-1123 subdomain"),
    (pod("  volumes: [{name: v, secret: {secretName: '../../etc'}}]\n"), "spec.volumes[0].secret.secretName",
     "invalid name '../../etc': must be a DNS-1123 subdomain"),
    (pod("  volumes: [{name: v, configMap: {name: c, items: [{key: '../k', path: k}]}}]\n"),
     "spec.volumes[0].configMap.items[0].key", "invalid key '../k'"),
    (pod(container="    env: [{name: A, valueFrom: {secretKeyRef: {name: '../x', key: k}}}]\n"),
     "spec.containers[0].env[0].valueFrom.secretKeyRef.name", "invalid name '../x'"),
    (pod(container="    env: [{name: A, valueFrom: {secretKeyRef: {name: x, key: '../k'}}}]\n"),
     "spec.containers[0].env[0].valueFrom.secretKeyRef.key", "invalid key '../k'"),
    (pod(container="    env: [{name: A, valueFrom: {configMapKeyRef: {name: 'A B', key: k}}}]\n"),
     "spec.containers[0].env[0].valueFrom.configMapKeyRef.name", "invalid name 'A B'"),
    (pod(container="    env: [{name: A, valueFrom: {configMapKeyRef: {name: c, key: '..k'}}}]\n"),
     "spec.containers[0].env[0].valueFrom.configMapKeyRef.key", "must not be '.' or '..', nor start with '..'"),
    (pod(container="    envFrom: [{prefix: '1;rm', configMapRef: {name: c}}]\n"),
     "spec.containers[0].envFrom[0].prefix", "invalid prefix '1;rm'"),
    (pod(container="    envFrom: [{prefix: P_, configMapRef: {name: 'A B'}}]\n"),
     "spec.containers[0].envFrom[0].configMapRef.name", "invalid name 'A B'"),
    (pod(container="    envFrom: [{secretRef: {name: '../s'}}]\n"),
     "spec.containers[0].envFrom[0].secretRef.name", "invalid name '../s'"),
], ids=["configmap-volume-name", "secret-volume-name", "volume-item-key", "secret-key-ref-name",
        "secret-key-ref-key", "configmap-key-ref-name", "configmap-key-ref-dotdot-key", "env-from-prefix",
        "env-from-configmap-name", "env-from-secret-name"])
def test_references_must_be_names_and_keys_that_could_exist(store: Store, text: str, path: str,
                                                           problem: str) -> None:
    refused(store, text, "Pod/p", path, problem)


def test_a_dataset_key_secret_must_be_a_secret_name(store: Store) -> None:
    text = ("apiVersion: podline.io/v1alpha1\nkind: Dataset\nmetadata: {name: d}\nspec:\n  source: s3://bucket/x\n"
            "  accessKeySecret: {name: '../x', key: a}\n  secretKeySecret: {name: s, key: b}\n")
    refused(store, text, "Dataset/d", "spec.accessKeySecret.name", "invalid name '../x'")


def test_valid_references_are_accepted() -> None:
    text = pod("  volumes: [{name: v, configMap: {name: my.config, items: [{key: a.conf, path: a}]}},"
               " {name: w, secret: {secretName: s-1}}]\n",
               "    env: [{name: A, valueFrom: {secretKeyRef: {name: s-1, key: _K-1.x}}}]\n"
               "    envFrom: [{prefix: P_, configMapRef: {name: my.config}}, {secretRef: {name: s-1}}]\n")
    assert load_text(text, "ok.yaml")[0].obj.kind == "Pod"
