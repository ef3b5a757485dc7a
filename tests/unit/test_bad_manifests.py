"""Bad manifests are refused by the loader with the exact document, object, field path and problem.

Every case below goes through `load_text(text, "bad.yaml")` and must raise a `ManifestError` whose
one-line message is `bad.yaml: document N (Kind/name): <field.path>: <problem>` (document-level problems
such as malformed YAML have neither object nor field path). The expected path is always the precise one;
a case that podline gets wrong may be marked a strict xfail whose reason names the bug (none is, today).
"""

from __future__ import annotations

import re
import string
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from podline.api.errors import ManifestError
from podline.api.loader import load_paths, load_text

SOURCE = "bad.yaml"
ANY = object()  # `ident` for a document whose "(Kind/name)" part is not pinned down


def pod(spec: str = "", container: str = "", *, name: str = "p", meta: str = "") -> str:
    """A valid Pod; `spec` lines are indented 2, `container`/`meta` lines 4/2, all newline-terminated."""
    return ("apiVersion: v1\nkind: Pod\nmetadata:\n"
            f"  name: {name}\n{meta}"
            f"spec:\n{spec}"
            "  containers:\n"
            "  - name: c\n"
            "    command: [x]\n"
            f"{container}")


def job(spec: str = "", template_spec: str = "      restartPolicy: Never\n") -> str:
    """A valid Job; `spec` lines are indented 2, `template_spec` lines 6."""
    return ("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n"
            f"{spec}"
            "  template:\n"
            "    spec:\n"
            f"{template_spec}"
            "      containers: [{name: c, command: [x]}]\n")


def configmap(data: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n{data}"


def secret(data: str) -> str:
    return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n{data}"


def volumes(*lines: str) -> str:
    return "  volumes:\n" + "".join(f"  - {line}\n" for line in lines)


def billion_laughs(levels: int = 9, width: int = 10) -> str:
    """`width ** levels` leaves if expanded: refused by counting, never built."""
    out = "l0: &l0 [" + ", ".join(["lol"] * width) + "]\n"
    for i in range(1, levels):
        out += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]\n"
    return out


GOOD = pod()
assert GOOD.count("\n") == 8  # line numbers in the malformed-YAML cases below depend on it
GOOD_Q = pod(name="q")


def case(ident_: str, text: str, path: str, problem: str | re.Pattern[str], *, doc: int = 1,
         ident: object = "Pod/p", xfail: str | None = None) -> pytest.param:
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(text, doc, ident, path, problem, id=ident_, marks=marks)


CASES = [
    # --- kind and apiVersion -------------------------------------------------------------------------
    case("unknown-kind", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n", "kind",
         "unknown kind 'Deployment' (known: ClusterWorkflowTemplate, ConfigMap, Dataset, Job, Pipeline, Pod, Secret, "
         "Workflow, WorkflowTemplate)",
         ident="Deployment/d"),
    case("unknown-apiversion-for-pod", GOOD.replace("apiVersion: v1", "apiVersion: apps/v1"), "apiVersion",
         "unsupported apiVersion 'apps/v1' for kind Pod (use v1)"),
    case("job-with-core-apiversion", job().replace("batch/v1", "v1"), "apiVersion",
         "unsupported apiVersion 'v1' for kind Job (use batch/v1)", ident="Job/j"),
    case("missing-apiversion", GOOD.replace("apiVersion: v1\n", ""), "apiVersion", "required field is missing"),
    case("missing-kind", GOOD.replace("kind: Pod\n", ""), "kind", "required field is missing",
         ident="<no kind>/p"),
    case("kind-not-a-string", GOOD.replace("kind: Pod", "kind: 5"), "kind", "string", ident="<no kind>/p"),
    # --- metadata ------------------------------------------------------------------------------------
    case("missing-metadata", GOOD.replace("metadata:\n  name: p\n", ""), "metadata", "required field is missing",
         ident="Pod/<no name>"),
    case("missing-name", GOOD.replace("  name: p\n", "  labels: {a: b}\n"), "metadata.name",
         "required: every object needs a name", ident="Pod/<no name>"),
    case("null-name", GOOD.replace("name: p", "name: null"), "metadata.name", "required",
         ident="Pod/<no name>"),
    case("empty-name", GOOD.replace("name: p", "name: ''"), "metadata.name", "invalid name ''",
         ident="Pod/<no name>"),
    case("name-upper-case", pod(name="MyPod"), "metadata.name", "invalid name 'MyPod': must be a DNS-1123 subdomain",
         ident="Pod/MyPod"),
    case("name-underscore", pod(name="my_pod"), "metadata.name", "invalid name 'my_pod'", ident="Pod/my_pod"),
    case("name-too-long", pod(name="a" * 254), "metadata.name", "at most 253 characters", ident=f"Pod/{'a' * 254}"),
    case("name-shell-metacharacters", pod(name="'x; rm -rf ~ $(id) `id` | cat > /etc/passwd'"), "metadata.name",
         "must be a DNS-1123 subdomain", ident="Pod/x; rm -rf ~ $(id) `id` | cat > /etc/passwd"),
    case("name-not-a-string", pod(name="5"), "metadata.name", "Input should be a valid string",
         ident="Pod/<no name>"),
    case("name-trailing-newline", pod(name='"p\\n"'), "metadata.name", "DNS-1123 subdomain",
         ident=ANY),
    case("namespace-upper-case", pod(meta="  namespace: Prod\n"), "metadata.namespace",
         "invalid namespace 'Prod': must be a DNS-1123 label"),
    case("namespace-with-dot", pod(meta="  namespace: a.b\n"), "metadata.namespace", "DNS-1123 label"),
    case("namespace-too-long", pod(meta=f"  namespace: {'n' * 64}\n"), "metadata.namespace", "at most 63"),
    case("namespace-trailing-newline", pod(meta='  namespace: "ns\\n"\n'), "metadata.namespace", "DNS-1123 label"),
    case("label-value-invalid", pod(meta="  labels: {a: 'x y'}\n"), "metadata.labels[a]",
         "invalid label value 'x y'"),
    case("label-value-not-a-string", pod(meta="  labels: {a: 1}\n"), "metadata.labels[a]",
         "Input should be a valid string"),
    case("label-key-invalid-prefix", pod(meta="  labels: {'Bad_/x': y}\n"), "metadata.labels[Bad_/x]",
         "invalid label prefix 'Bad_'"),
    case("annotation-key-invalid", pod(meta="  annotations: {'a b': y}\n"), "metadata.annotations[a b]",
         "invalid key 'a b'"),
    case("labels-is-a-list", pod(meta="  labels: [a, b]\n"), "metadata.labels", "Input should be a valid dictionary"),
    case("unknown-metadata-field", pod(meta="  nmae: q\n"), "metadata.nmae", "unknown field"),
    # --- wrong types ---------------------------------------------------------------------------------
    case("containers-is-a-map", GOOD.replace("  containers:\n  - name: c\n    command: [x]\n",
                                             "  containers: {name: c}\n"),
         "spec.containers", "Input should be a valid list"),
    case("command-is-a-string", GOOD.replace("command: [x]", "command: echo hello"), "spec.containers[0].command",
         "Input should be a valid list"),
    case("command-item-is-an-int", GOOD.replace("command: [x]", "command: [sleep, 5]"),
         "spec.containers[0].command[1]", "Input should be a valid string"),
    case("env-is-a-map", pod(container="    env: {A: b}\n"), "spec.containers[0].env", "Input should be a valid list"),
    case("resources-is-a-list", pod(container="    resources: [cpu]\n"), "spec.containers[0].resources",
         "valid dictionary"),
    case("cpu-is-a-bool", pod(container="    resources: {requests: {cpu: true}}\n"),
         "spec.containers[0].resources.requests[cpu]", "got bool"),
    case("image-is-an-int", pod(container="    image: 5\n"), "spec.containers[0].image", "valid string"),
    case("completions-is-a-string", job("  completions: '5'\n"), "spec.completions", "valid integer",
         ident="Job/j"),
    case("restart-policy-typo", pod("  restartPolicy: Sometimes\n"), "spec.restartPolicy",
         "'Always', 'OnFailure' or 'Never'"),
    case("no-spec", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", "spec", "required field is missing"),
    case("empty-containers", GOOD.replace("  containers:\n  - name: c\n    command: [x]\n", "  containers: []\n"),
         "spec.containers", "at least 1 item"),
    # --- unknown fields at every depth ---------------------------------------------------------------
    case("unknown-top-level-field", GOOD + "extra: 1\n", "extra", "unknown field"),
    case("unknown-spec-field", pod("  hostAliasez: []\n"), "spec.hostAliasez", "unknown field"),
    case("unknown-container-field", pod(container="    imagePull: x\n"), "spec.containers[0].imagePull",
         "unknown field"),
    case("unknown-volume-field", pod(volumes("{name: v, emptyDir: {}, nfs: {server: x, path: /}}")),
         "spec.volumes[0].nfs", "unknown field"),
    case("claim-name-not-dns", pod(volumes("{name: v, persistentVolumeClaim: {claimName: 'a b'}}")),
         "spec.volumes[0].persistentVolumeClaim.claimName", "DNS-1123"),
    case("unknown-volume-source-field", pod(volumes("{name: v, emptyDir: {mediumm: Memory}}")),
         "spec.volumes[0].emptyDir.mediumm", "unknown field"),
    case("unknown-env-field", pod(container="    env: [{name: A, valu: x}]\n"), "spec.containers[0].env[0].valu",
         "unknown field"),
    case("unknown-job-template-container-field",
         job(template_spec="      restartPolicy: Never\n").replace("command: [x]", "command: [x], foo: 1"),
         "spec.template.spec.containers[0].foo", "unknown field", ident="Job/j"),
    # --- resources -----------------------------------------------------------------------------------
    case("negative-cpu", pod(container="    resources: {requests: {cpu: '-1'}}\n"),
         "spec.containers[0].resources.requests[cpu]", "must not be negative"),
    case("negative-memory", pod(container="    resources: {limits: {memory: -5Gi}}\n"),
         "spec.containers[0].resources.limits[memory]", "must not be negative"),
    case("absurd-cpu", pod(container="    resources: {requests: {cpu: '1e9'}}\n"),
         "spec.containers[0].resources.requests[cpu]", "'1e9' is absurdly large"),
    case("absurd-memory", pod(container="    resources: {limits: {memory: 9Ei}}\n"),
         "spec.containers[0].resources.limits[memory]", "absurdly large"),
    case("absurd-gpu", pod(container="    resources: {limits: {nvidia.com/gpu: 100000}}\n"),
         "spec.containers[0].resources.limits[nvidia.com/gpu]", "absurdly large"),
    case("malformed-quantity", pod(container="    resources: {requests: {memory: 4 GB}}\n"),
         "spec.containers[0].resources.requests[memory]", "invalid quantity '4 GB'"),
    case("quantity-overflows-decimal", pod(container="    resources: {requests: {memory: 1e999999Ei}}\n"),
         "spec.containers[0].resources.requests[memory]", re.compile("invalid quantity|absurdly large")),
    case("unsupported-resource", pod(container="    resources: {requests: {hugepages-2Mi: 1}}\n"),
         "spec.containers[0].resources.requests[hugepages-2Mi]", "Input should be"),
    case("requests-above-limits", pod(container="    resources: {requests: {cpu: 2}, limits: {cpu: 1}}\n"),
         "spec.containers[0].resources.requests[cpu]", "must be less than or equal to limits[cpu]"),
    case("negative-empty-dir-size", pod(volumes("{name: v, emptyDir: {sizeLimit: -1}}")),
         "spec.volumes[0].emptyDir.sizeLimit", "must not be negative"),
    # --- YAML itself ---------------------------------------------------------------------------------
    case("malformed-yaml-tab", "apiVersion: v1\nkind: Pod\nmetadata:\n\tname: p\n", "",
         "malformed YAML: found character '\\t' that cannot start any token at line 4, column 1", ident=None),
    case("malformed-yaml-unclosed-flow", "apiVersion: v1\nkind: Pod\nmetadata: {name: p\nspec: x\n", "",
         re.compile(r"^malformed YAML: .* at line [45], column \d+$"), ident=None),
    case("malformed-yaml-in-document-2", GOOD + "---\napiVersion: v1\nkind: Pod\n  bad: indent\n", "",
         "malformed YAML: mapping values are not allowed here at line 12, column 6", doc=2, ident=None),
    case("control-character-in-document-2", GOOD + "---\n" + GOOD_Q.replace("command: [x]", "command: [a\x07]"),
         "", re.compile(r"malformed YAML: .*#x0007.* at line 17, column \d+"), doc=2, ident=None),
    case("python-tag", GOOD.replace("command: [x]", "command: !!python/object/apply:os.system [id]"), "",
         "malformed YAML: could not determine a constructor for the tag "
         "'tag:yaml.org,2002:python/object/apply:os.system' at line 8, column 14", ident=None),
    case("undefined-alias", GOOD.replace("[x]", "*nope"), "", "malformed YAML: found undefined alias 'nope'",
         ident=None),
    case("duplicate-key", pod("  restartPolicy: Never\n  restartPolicy: Always\n"), "spec.restartPolicy",
         "duplicate", ident=ANY),
    case("billion-laughs", billion_laughs(), "", "document too large: expands to more than 100000 nodes",
         ident=None),
    case("billion-laughs-in-document-2", GOOD + "---\n" + billion_laughs(), "", "alias bomb", doc=2, ident=None),
    case("deep-nesting", "a: " + "[" * 70 + "]" * 70 + "\n", "", "nesting deeper than 64 levels", ident=None),
    case("very-deep-nesting", "a: " + "[" * 5000 + "]" * 5000 + "\n", "", "nesting deeper than 64 levels",
         ident=None),
    case("list-document", "- apiVersion: v1\n- kind: Pod\n", "", "expected a mapping (an object), got list",
         ident=None),
    case("scalar-document", "just a string\n", "", "expected a mapping (an object), got str", ident=None),
    # --- containers, volumes, mounts -----------------------------------------------------------------
    case("duplicate-init-and-main-container", pod("  initContainers: [{name: c, command: [x]}]\n"),
         "spec.containers[0].name", "duplicate container name 'c'"),
    case("duplicate-volume", pod(volumes("{name: v, emptyDir: {}}", "{name: v, emptyDir: {}}")),
         "spec.volumes[1].name", "duplicate volume name 'v'"),
    case("volume-two-sources", pod(volumes("{name: v, emptyDir: {}, hostPath: {path: /tmp}}")), "spec.volumes[0]",
         "exactly one volume source"),
    case("volume-no-source", pod(volumes("{name: v}")), "spec.volumes[0]", "exactly one volume source"),
    case("undeclared-volume-mount", pod(container="    volumeMounts: [{name: data, mountPath: /data}]\n"),
         "spec.containers[0].volumeMounts[0].name", "volume 'data' is not declared in spec.volumes"),
    case("relative-mount-path", pod(volumes("{name: v, emptyDir: {}}"),
                                    "    volumeMounts: [{name: v, mountPath: data}]\n"),
         "spec.containers[0].volumeMounts[0].mountPath", "must be an absolute path"),
    case("root-mount-path", pod(volumes("{name: v, emptyDir: {}}"), "    volumeMounts: [{name: v, mountPath: /}]\n"),
         "spec.containers[0].volumeMounts[0].mountPath", "would cover the container's whole filesystem"),
    case("dot-item-path", pod(volumes("{name: v, downwardAPI: {items: [{path: ., fieldRef: {fieldPath: "
                                      "metadata.name}}]}}")),
         "spec.volumes[0].downwardAPI.items[0].path", "not the directory itself"),
    case("dotdot-mount-path", pod(volumes("{name: v, emptyDir: {}}"),
                                  "    volumeMounts: [{name: v, mountPath: /a/../etc}]\n"),
         "spec.containers[0].volumeMounts[0].mountPath", "without '..'"),
    case("dotdot-sub-path", pod(volumes("{name: v, emptyDir: {}}"),
                                "    volumeMounts: [{name: v, mountPath: /d, subPath: a/../../etc}]\n"),
         "spec.containers[0].volumeMounts[0].subPath", "must not contain '..'"),
    case("absolute-sub-path", pod(volumes("{name: v, emptyDir: {}}"),
                                  "    volumeMounts: [{name: v, mountPath: /d, subPath: /etc}]\n"),
         "spec.containers[0].volumeMounts[0].subPath", "must be a non-empty relative path"),
    case("absolute-configmap-item-path", pod(volumes("{name: v, configMap: {name: c, items: [{key: k, path: /x}]}}")),
         "spec.volumes[0].configMap.items[0].path", "path '/x' must be a non-empty relative path"),
    case("dotdot-secret-item-path", pod(volumes("{name: v, secret: {secretName: s, items: [{key: k, path: ../x}]}}")),
         "spec.volumes[0].secret.items[0].path", "must not contain '..'"),
    case("dotdot-downward-api-item-path",
         pod(volumes("{name: v, downwardAPI: {items: [{path: a/../../x, fieldRef: {fieldPath: metadata.name}}]}}")),
         "spec.volumes[0].downwardAPI.items[0].path", "must not contain '..'"),
    case("absolute-downward-api-item-path",
         pod(volumes("{name: v, downwardAPI: {items: [{path: /x, fieldRef: {fieldPath: metadata.name}}]}}")),
         "spec.volumes[0].downwardAPI.items[0].path", "must be a non-empty relative path"),
    case("relative-host-path", pod(volumes("{name: v, hostPath: {path: etc}}")), "spec.volumes[0].hostPath.path",
         "must be absolute"),
    case("nul-in-args", pod(container='    args: [ok, "a\\0b"]\n'), "spec.containers[0].args[1]", "NUL"),
    case("nul-in-env-value", pod(container='    env: [{name: A, value: "a\\0b"}]\n'),
         "spec.containers[0].env[0].value", "NUL"),
    case("container-name-trailing-newline", GOOD.replace("- name: c", '- name: "c\\n"'), "spec.containers[0].name",
         "DNS-1123 label"),
    # --- env -----------------------------------------------------------------------------------------
    case("invalid-env-name", pod(container="    env: [{name: '1A=B', value: x}]\n"), "spec.containers[0].env[0].name",
         "invalid environment variable name '1A=B'"),
    case("env-name-trailing-newline", pod(container='    env: [{name: "A\\n", value: x}]\n'),
         "spec.containers[0].env[0].name", "invalid environment variable name"),
    case("env-value-and-value-from", pod(container="    env: [{name: A, value: x, valueFrom: {fieldRef: "
                                                   "{fieldPath: metadata.name}}}]\n"),
         "spec.containers[0].env[0]", "value and valueFrom are mutually exclusive"),
    case("env-value-from-empty", pod(container="    env: [{name: A, valueFrom: {}}]\n"),
         "spec.containers[0].env[0].valueFrom",
         "exactly one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef"),
    case("env-from-without-ref", pod(container="    envFrom: [{prefix: X_}]\n"), "spec.containers[0].envFrom[0]",
         "exactly one of configMapRef, secretRef must be set"),
    case("unsupported-field-ref", pod(container="    env: [{name: A, valueFrom: {fieldRef: {fieldPath: spec.x}}}]\n"),
         "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "unsupported fieldPath 'spec.x'"),
    # --- ConfigMap and Secret ------------------------------------------------------------------------
    case("secret-invalid-base64", secret("data: {ok: YQ==, k: 'not base64!'}\n"), "data[k]",
         "is not valid base64", ident="Secret/s"),
    case("secret-value-not-a-string", secret("data: {k: 5}\n"), "data[k]", "Input should be a valid string",
         ident="Secret/s"),
    case("configmap-invalid-key", configmap("data: {ok: x, 'a/b': x}\n"), "data[a/b]", "invalid key 'a/b'",
         ident="ConfigMap/cm"),
    case("image-with-shell-metacharacters", pod(container="    image: \"busybox'; touch /tmp/x; '\"\n"),
         "spec.containers[0].image", "has no place in an image reference"),
    case("object-above-kubernetes-size-limit", pod(container="    args: [" + ", ".join(["a" * 100_000] * 16) + "]\n"),
         "", re.compile(r"object is \d+ bytes, above the 1572864 Kubernetes stores")),
    case("configmap-dotdot-key", configmap("data: {ok: x, '..': x}\n"), "data[..]", "must not be '.' or '..'",
         ident="ConfigMap/cm"),
    case("configmap-dot-key", configmap("data: {'.': x}\n"), "data[.]", "must not be '.' or '..'",
         ident="ConfigMap/cm"),
    case("configmap-binary-data-invalid-base64", configmap("binaryData: {k: '!!!'}\n"), "binaryData[k]", "base64",
         ident="ConfigMap/cm"),
    # --- Job -----------------------------------------------------------------------------------------
    case("job-restart-policy-always", job(template_spec="      restartPolicy: Always\n"),
         "spec.template.spec.restartPolicy", "must be OnFailure or Never for a Job (got 'Always')", ident="Job/j"),
    case("indexed-job-without-completions", job("  completionMode: Indexed\n"), "spec.completions",
         "completions is required when completionMode is Indexed", ident="Job/j"),
    case("negative-completions", job("  completions: -1\n"), "spec.completions", "greater than or equal to 0",
         ident="Job/j"),
    case("negative-parallelism", job("  parallelism: -1\n"), "spec.parallelism", "greater than or equal to 0",
         ident="Job/j"),
    case("negative-backoff-limit", job("  backoffLimit: -2\n"), "spec.backoffLimit", "greater than or equal to 0",
         ident="Job/j"),
    case("job-active-deadline-zero", job("  activeDeadlineSeconds: 0\n"), "spec.activeDeadlineSeconds",
         "greater than or equal to 1", ident="Job/j"),
    case("pod-active-deadline-zero", pod("  activeDeadlineSeconds: 0\n"), "spec.activeDeadlineSeconds",
         "greater than or equal to 1"),
    case("negative-grace-period", pod("  terminationGracePeriodSeconds: -1\n"), "spec.terminationGracePeriodSeconds",
         "greater than or equal to 0"),
    # --- several documents ---------------------------------------------------------------------------
    case("second-document-bad", GOOD + "---\n" + GOOD_Q.replace("command: [x]", "comand: [x]"),
         "spec.containers[0].comand", "unknown field", doc=2, ident="Pod/q"),
    case("third-document-bad", GOOD + "---\n" + configmap("data: {a: b}\n") + "---\n" + job("  backoffLimit: -1\n"),
         "spec.backoffLimit", "greater than or equal to 0", doc=3, ident="Job/j"),
    case("empty-documents-still-count", "---\n---\n" + GOOD.replace("kind: Pod", "kind: Pods"), "kind",
         "unknown kind 'Pods'", doc=2, ident="Pods/p"),
    case("duplicate-object-in-one-file", GOOD + "---\n" + GOOD, "metadata.name",
         "duplicate object: also defined in bad.yaml: document 1 (Pod/p)", doc=2),
    case("disallowed-slurm-flag", pod(meta="  annotations: {slurm.hpk.io/flags: '--wrap=id'}\n"),
         "metadata.annotations[slurm.hpk.io/flags]", "sbatch option '--wrap' is not allowed"),
    case("injected-slurm-flag-value", pod(meta="  annotations: {slurm-job.vk.io/flags: '--partition=$(reboot)'}\n"),
         "metadata.annotations[slurm-job.vk.io/flags]", "invalid value '$(reboot)' for sbatch option --partition"),
    case("slurm-flag-on-job-template",
         job().replace("    spec:\n",
                       "    metadata: {annotations: {slurm.hpk.io/flags: '--output=/etc/x'}}\n    spec:\n"),
         "spec.template.metadata.annotations[slurm.hpk.io/flags]", "sbatch option '--output' is not allowed",
         ident="Job/j"),
    case("fractional-gpu", pod(container="    resources: {limits: {nvidia.com/gpu: 0.5}}\n"),
         "spec.containers[0].resources.limits[nvidia.com/gpu]", "whole numbers"),
    case("gpu-request-without-limit", pod(container="    resources: {requests: {nvidia.com/gpu: 1}}\n"),
         "spec.containers[0].resources.limits[nvidia.com/gpu]", "required when requests[nvidia.com/gpu] is set"),
    case("gpu-request-unequal-to-limit",
         job(template_spec="      restartPolicy: Never\n").replace(
             "command:", "resources: {requests: {nvidia.com/gpu: 1}, limits: {nvidia.com/gpu: 2}}, command:", 1),
         "spec.template.spec.containers[0].resources.requests[nvidia.com/gpu]", "must be equal to limits",
         ident="Job/j"),
]


def _header(document: int, ident: object) -> str:
    head = re.escape(f"{SOURCE}: document {document}")
    if ident is ANY:
        return head + r"(?: \([^\n]*?\))?"
    return head + (re.escape(f" ({ident})") if ident else "")


@pytest.mark.parametrize(("text", "document", "ident", "path", "problem"), CASES)
def test_bad_manifest_names_document_field_path_and_problem(
        text: str, document: int, ident: object, path: str, problem: str | re.Pattern[str]) -> None:
    started = time.perf_counter()
    with pytest.raises(ManifestError) as caught:
        load_text(text, SOURCE)
    elapsed = time.perf_counter() - started
    error = caught.value
    message = str(error)
    assert len(message.splitlines()) == 1, f"not one line: {message!r}"
    expected = _header(document, ident) + ": " + (re.escape(path) + ": " if path else "")
    match = re.match(expected, message)
    assert match, f"expected {expected!r}\n     got {message!r}"
    assert error.path == path and error.document == document
    rest = message[match.end():]
    if isinstance(problem, re.Pattern):
        assert problem.search(rest), f"problem {problem.pattern!r} not in {rest!r}"
    else:
        assert problem in rest, f"problem {problem!r} not in {rest!r}"
    assert elapsed < 1.0, f"took {elapsed:.2f}s: refused only after expanding?"


def test_table_covers_enough_cases() -> None:
    assert len(CASES) >= 35
    assert len({c.id for c in CASES}) == len(CASES)


def test_every_valid_template_in_the_table_is_itself_accepted() -> None:
    """The cases break one thing each: the templates they start from must load cleanly."""
    assert [x.obj.metadata.name for x in load_text(GOOD + "---\n" + GOOD_Q, SOURCE)] == ["p", "q"]
    assert [x.obj.kind for x in load_text(job(), SOURCE)] == ["Job"]
    assert [x.obj.kind for x in load_text(configmap("data: {a: b}\n"), SOURCE)] == ["ConfigMap"]
    assert [x.obj.kind for x in load_text(secret("data: {k: YQ==}\n"), SOURCE)] == ["Secret"]
    with_volume = pod(volumes("{name: v, emptyDir: {}}"), "    volumeMounts: [{name: v, mountPath: /d}]\n")
    assert load_text(with_volume, SOURCE)[0].obj.spec.volumes[0].name == "v"


def test_duplicate_objects_are_refused_across_one_file_and_across_files(tmp_path: Path) -> None:
    one = tmp_path / "one.yaml"
    one.write_text(GOOD + "---\n" + GOOD)
    with pytest.raises(ManifestError) as caught:
        load_paths([str(one)])
    assert str(caught.value) == (f"{one}: document 2 (Pod/p): metadata.name: duplicate object: also defined in "
                                 f"{one}: document 1 (Pod/p)")
    other = tmp_path / "other.yaml"
    other.write_text(GOOD_Q + "---\n" + GOOD)
    one.write_text(GOOD)
    with pytest.raises(ManifestError) as caught:
        load_paths([str(one), str(other)])
    assert str(caught.value).startswith(f"{other}: document 2 (Pod/p): metadata.name: duplicate object")
    # the same name in another namespace or of another kind is a different object
    other.write_text(pod(meta="  namespace: team\n") + "---\n" + configmap("").replace("name: cm", "name: p"))
    assert len(load_paths([str(one), str(other)])) == 3


# --- metadata.name is accepted exactly when it is a DNS-1123 subdomain -------------------------------

SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
SHELL = "$();|&<>`'\"\n*?~\\ \t!#{}[]="
_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
_dns = st.lists(_label, min_size=1, max_size=8).map(".".join)  # lengths on both sides of 253
NAMES = st.one_of(
    st.text(alphabet=st.sampled_from(string.printable), max_size=60),
    st.text(alphabet=st.sampled_from(SHELL + "a-.0"), min_size=1, max_size=20),
    _dns,
    st.tuples(_dns, st.sampled_from(SHELL + "A_/.-"), st.integers(0, 300)).map(
        lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:]),
    st.text(max_size=20),  # any unicode, including line separators YAML treats as breaks
)


def _manifest(name: str) -> str:
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"containers": [{"name": "c", "command": ["x"]}]}})
    assert yaml.safe_load(text)["metadata"]["name"] == name  # the name reaches podline exactly
    return text


def _check_name(name: str) -> None:
    valid = len(name) <= 253 and SUBDOMAIN.fullmatch(name) is not None
    try:
        loaded = load_text(_manifest(name), SOURCE)
    except ManifestError as exc:
        assert not valid, f"valid name {name!r} refused: {exc}"
        assert (exc.path, exc.document, exc.kind) == ("metadata.name", 1, "Pod"), str(exc)
        assert "): metadata.name: " in str(exc)
        return
    assert valid, f"invalid name {name!r} accepted"
    assert [x.obj.metadata.name for x in loaded] == [name]


def _no_surrogates(name: str) -> bool:
    return not any(0xD800 <= ord(ch) <= 0xDFFF for ch in name)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(NAMES.filter(_no_surrogates))
@example("p\n")
@example("x; rm -rf ~")
@example("$(reboot)")
@example("a" * 253)
@example("a" * 254)
@example("a.b-c.d")
def test_metadata_name_accepted_exactly_when_dns1123(name: str) -> None:
    _check_name(name)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(NAMES.filter(_no_surrogates))
@example("a\nb")
def test_refused_name_error_is_one_line(name: str) -> None:
    try:
        load_text(_manifest(name), SOURCE)
    except ManifestError as exc:
        assert len(str(exc).splitlines()) == 1, repr(str(exc))
