"""Pure functions of the api and plan layers: quantities, $(VAR) expansion, good manifests, defaults."""

from __future__ import annotations

from decimal import Decimal

import pytest

from podline.api.batch import Job
from podline.api.core import EPHEMERAL_WARNING, Pod
from podline.api.errors import ManifestError
from podline.api.kinds import MODELS
from podline.api.loader import load_text
from podline.api.names import KNOWN_KINDS, resolve_kind
from podline.api.quantity import cpu_millis, memory_bytes, parse_quantity
from podline.plan.pod import pod_requests
from podline.runtime.expand import expand


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Decimal("0.5")), ("2", Decimal(2)), (2, Decimal(2)), (0.25, Decimal("0.25")),
    ("4Gi", Decimal(4 * 2**30)), ("1G", Decimal(10**9)), ("1e3", Decimal(1000)), ("1.5Ki", Decimal(1536)),
    (".5", Decimal("0.5")), ("-1", Decimal(-1)),
])
def test_parse_quantity(text: object, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "5 Gi", "1Q", True, None, "1e", "--1"])
def test_parse_quantity_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_units() -> None:
    assert cpu_millis("250m") == 250 and cpu_millis(1) == 1000 and cpu_millis("0.0001") == 1
    assert memory_bytes("1Mi") == 1048576


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)", "x"), ("$(A)/$(B)", "x/$(A)"), ("$$(A)", "$(A)"), ("$(MISSING)", "$(MISSING)"),
    ("$", "$"), ("a$b", "a$b"), ("$(A", "$(A"), ("$$$(A)", "$x"), ("plain", "plain"), ("$$", "$"),
])
def test_expand_like_kubernetes(text: str, expected: str) -> None:
    assert expand(text, {"A": "x", "B": "$(A)"}) == expected


def test_kind_aliases() -> None:
    assert resolve_kind("po") == resolve_kind("pods") == resolve_kind("Pod") == "Pod"
    assert resolve_kind("job.batch") == "Job"
    with pytest.raises(ValueError):
        resolve_kind("deployment")


def test_the_cli_knows_exactly_the_kinds_that_have_models() -> None:
    assert KNOWN_KINDS == {kind for _, kind in MODELS}
    assert all(resolve_kind(kind) == kind for kind in KNOWN_KINDS)


def test_valid_manifest_round_trip_and_defaults() -> None:
    [loaded] = load_text("""
apiVersion: batch/v1
kind: Job
metadata: {name: j, labels: {app.kubernetes.io/name: demo}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, tolerations: []}]
""".replace("tolerations: []", "command: [x]"), "ok.yaml")
    job = loaded.obj
    assert isinstance(job, Job)
    assert job.spec.completions == 1 and job.spec.parallelism == 1 and job.spec.backoff_limit == 6
    assert job.metadata.namespace == "default"
    dumped = job.dump()
    assert dumped["spec"]["template"]["spec"]["containers"][0]["command"] == ["x"]
    assert Job.model_validate(dumped).dump() == dumped


def test_work_queue_job_keeps_completions_unset() -> None:
    [loaded] = load_text("""
apiVersion: batch/v1
kind: Job
metadata: {name: q}
spec: {parallelism: 3, template: {spec: {restartPolicy: OnFailure, containers: [{name: c, command: [x]}]}}}
""", "q.yaml")
    assert loaded.obj.spec.completions is None and loaded.obj.spec.parallelism == 3


def test_ignored_fields_warn_and_server_fields_are_silent() -> None:
    [loaded] = load_text("""
apiVersion: v1
kind: Pod
metadata: {name: p, uid: abc, resourceVersion: "3", creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  nodeSelector: {a: b}
  containers: [{name: c, command: [x], livenessProbe: {exec: {command: [true]}}}]
status: {phase: Running}
""", "p.yaml")
    assert loaded.warnings == ["PodSpec.nodeSelector is not supported by podline and is ignored",
                               "Container.livenessProbe is not supported by podline and is ignored"]


def test_ephemeral_storage_is_accepted_with_one_warning_per_object() -> None:
    [loaded] = load_text("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - {name: c, command: [x], resources: {requests: {ephemeral-storage: 1Gi}}}
  - {name: d, command: [x], resources: {limits: {ephemeral-storage: 2Gi}}}
""", "p.yaml")
    assert loaded.warnings == [EPHEMERAL_WARNING] and "--tmp" in EPHEMERAL_WARNING
    plain_pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, command: [x]}]}\n"
    [plain] = load_text(plain_pod, "q.yaml")
    assert plain.warnings == []


def test_list_kind_is_flattened() -> None:
    loaded = load_text("""
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {k: v}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
""", "l.yaml")
    assert [x.obj.metadata.name for x in loaded] == ["a", "b"]


def test_an_item_of_a_list_is_named_by_its_place_in_it() -> None:
    with pytest.raises(ManifestError) as refused:
        load_text("""
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {k: v}}
- {apiVersion: v1, kind: Pod, metadata: {name: b}, spec: {containers: [{name: c, image: 3}]}}
""", "l.yaml")
    assert str(refused.value).startswith("l.yaml: document 1 (Pod/b): items[1].spec.containers[0].image: ")


def test_pod_requests_take_max_of_init_and_sum_of_containers() -> None:
    pod = Pod.model_validate({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "3"}}}],
                 "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                                {"name": "b", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}]}})
    assert pod_requests(pod) == {"cpu": 3000, "memory": 2 * 2**30, "gpu": 0}
