"""Every bad manifest is refused with the exact document, field path and problem (table-driven)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.api.base import DNS1123_SUBDOMAIN
from podline.api.errors import ManifestError
from podline.api.loader import load_text

POD = "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec}"
C = "  containers: [{{name: c, command: [x]{extra}}}]\n"


def pod(spec: str = "", extra: str = "") -> str:
    return POD.format(spec=spec + C.format(extra=extra))


def job(spec: str) -> str:
    return ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n" + spec +
            "  template: {spec: {restartPolicy: Never, containers: [{name: c, command: [x]}]}}\n")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8))

# (id, manifest, document, kind/name, field path, problem substring)
CASES = [
    ("unknown-kind", "apiVersion: v1\nkind: Deployment\nmetadata: {name: d}\n", 1, "Deployment/d", "kind",
     "unknown kind 'Deployment'"),
    ("wrong-api-version", "apiVersion: apps/v1\nkind: Pod\nmetadata: {name: p}\n", 1, "Pod/p", "apiVersion",
     "unsupported apiVersion 'apps/v1' for kind Pod"),
    ("missing-api-version", "kind: Pod\nmetadata: {name: p}\n", 1, "Pod/p", "apiVersion", "required field"),
    ("missing-kind", "apiVersion: v1\nmetadata: {name: p}\n", 1, "<no kind>/p", "kind", "required field"),
    ("missing-name", POD.format(spec=C.format(extra="")).replace("{name: p}", "{labels: {a: b}}"), 1,
     "Pod/<no name>", "metadata.name", "required"),
    ("upper-case-name", pod().replace("name: p}", "name: MyPod}"), 1, "Pod/MyPod", "metadata.name",
     "DNS-1123 subdomain"),
    ("underscore-name", pod().replace("name: p}", "name: my_pod}"), 1, "Pod/my_pod", "metadata.name",
     "DNS-1123"),
    ("too-long-name", pod().replace("name: p}", "name: " + "a" * 254 + "}"), 1, f"Pod/{'a' * 254}",
     "metadata.name", "at most 253"),
    ("bad-namespace", pod().replace("{name: p}", "{name: p, namespace: Prod}"), 1, "Pod/p",
     "metadata.namespace", "DNS-1123 label"),
    ("bad-label-value", pod().replace("{name: p}", "{name: p, labels: {a: 'x y'}}"), 1, "Pod/p",
     "metadata.labels", "invalid value 'x y'"),
    ("containers-not-a-list", POD.format(spec="  containers: {name: c}\n"), 1, "Pod/p", "spec.containers",
     "valid list"),
    ("command-not-a-list", pod(extra=", args: {a: b}"), 1, "Pod/p", "spec.containers[0].args", "valid list"),
    ("command-item-int", POD.format(spec="  containers: [{name: c, command: [echo, 5]}]\n"), 1, "Pod/p",
     "spec.containers[0].command[1]", "valid string"),
    ("cpu-bool", pod(extra=", resources: {requests: {cpu: true}}"), 1, "Pod/p",
     "spec.containers[0].resources.requests.cpu", ""),
    ("unknown-top-level", pod() + "extra: 1\n", 1, "Pod/p", "extra", "unknown field"),
    ("unknown-spec-field", pod("  hostAliasez: []\n"), 1, "Pod/p", "spec.hostAliasez", "unknown field"),
    ("unknown-container-field", pod(extra=", imagePull: x"), 1, "Pod/p", "spec.containers[0].imagePull",
     "unknown field"),
    ("unknown-volume-type", pod("  volumes: [{name: v, persistentVolumeClaim: {claimName: x}}]\n"), 1, "Pod/p",
     "spec.volumes[0].persistentVolumeClaim", "unknown field"),
    ("unknown-env-field", pod(extra=", env: [{name: A, valu: x}]"), 1, "Pod/p", "spec.containers[0].env[0].valu",
     "unknown field"),
    ("negative-cpu", pod(extra=", resources: {requests: {cpu: '-1'}}"), 1, "Pod/p",
     "spec.containers[0].resources.requests.cpu", "must not be negative"),
    ("negative-memory", pod(extra=", resources: {limits: {memory: -5Gi}}"), 1, "Pod/p",
     "spec.containers[0].resources.limits.memory", "must not be negative"),
    ("absurd-cpu", pod(extra=", resources: {requests: {cpu: '1e9'}}"), 1, "Pod/p",
     "spec.containers[0].resources.requests.cpu", "absurdly large"),
    ("absurd-memory", pod(extra=", resources: {limits: {memory: 9Ei}}"), 1, "Pod/p",
     "spec.containers[0].resources.limits.memory", "absurdly large"),
    ("absurd-gpu", pod(extra=", resources: {limits: {nvidia.com/gpu: 100000}}"), 1, "Pod/p",
     "spec.containers[0].resources.limits.nvidia.com/gpu", "absurdly large"),
    ("malformed-quantity", pod(extra=", resources: {requests: {memory: 4 GB}}"), 1, "Pod/p",
     "spec.containers[0].resources.requests.memory", "invalid quantity"),
    ("unsupported-resource", pod(extra=", resources: {requests: {hugepages-2Mi: 1}}"), 1, "Pod/p",
     "spec.containers[0].resources.requests.hugepages-2Mi", ""),
    ("requests-above-limits", pod(extra=", resources: {requests: {cpu: 2}, limits: {cpu: 1}}"), 1, "Pod/p",
     "spec.containers[0].resources.requests.cpu", "less than or equal to limits.cpu"),
    ("malformed-yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p\n", 1, None, "",
     "malformed YAML"),
    ("alias-bomb", BOMB, 1, None, "", "alias bomb"),
    ("deep-nesting", "a: " + "[" * 100 + "]" * 100 + "\n", 1, None, "", "nesting deeper than"),
    ("list-document", "- a\n- b\n", 1, None, "", "expected a mapping"),
    ("scalar-document", "just text\n", 1, None, "", "expected a mapping"),
    ("duplicate-container", POD.format(spec="  initContainers: [{name: c, command: [x]}]\n" + C.format(extra="")),
     1, "Pod/p", "spec.containers[0].name", "duplicate container name 'c'"),
    ("duplicate-volume", pod("  volumes: [{name: v, emptyDir: {}}, {name: v, emptyDir: {}}]\n"), 1, "Pod/p",
     "spec.volumes[1].name", "duplicate volume name 'v'"),
    ("undeclared-volume", pod(extra=", volumeMounts: [{name: data, mountPath: /data}]"), 1, "Pod/p",
     "spec.containers[0].volumeMounts[0].name", "volume 'data' is not declared"),
    ("relative-mount-path", pod("  volumes: [{name: v, emptyDir: {}}]\n",
                                ", volumeMounts: [{name: v, mountPath: data}]"), 1, "Pod/p",
     "spec.containers[0].volumeMounts[0].mountPath", "absolute path"),
    ("dotdot-mount-path", pod("  volumes: [{name: v, emptyDir: {}}]\n",
                              ", volumeMounts: [{name: v, mountPath: /a/../etc}]"), 1, "Pod/p",
     "spec.containers[0].volumeMounts[0].mountPath", "without '..'"),
    ("dotdot-sub-path", pod("  volumes: [{name: v, emptyDir: {}}]\n",
                            ", volumeMounts: [{name: v, mountPath: /d, subPath: ../../etc}]"), 1, "Pod/p",
     "spec.containers[0].volumeMounts[0].subPath", "must not contain '..'"),
    ("absolute-configmap-item", pod("  volumes: [{name: v, configMap: {name: c, items: [{key: k, path: /etc/x}]}}]\n"),
     1, "Pod/p", "spec.volumes[0].configMap.items[0].path", "relative path"),
    ("dotdot-downward-item", pod("  volumes: [{name: v, downwardAPI: {items: [{path: ../x, "
                                 "fieldRef: {fieldPath: metadata.name}}]}}]\n"),
     1, "Pod/p", "spec.volumes[0].downwardAPI.items[0].path", "must not contain '..'"),
    ("bad-env-name", pod(extra=", env: [{name: '1A=B', value: x}]"), 1, "Pod/p", "spec.containers[0].env[0].name",
     "invalid environment variable name"),
    ("env-value-and-value-from", pod(extra=", env: [{name: A, value: x, valueFrom: {fieldRef: "
                                           "{fieldPath: metadata.name}}}]"), 1, "Pod/p",
     "spec.containers[0].env[0]", "mutually exclusive"),
    ("env-from-without-ref", pod(extra=", envFrom: [{prefix: X_}]"), 1, "Pod/p", "spec.containers[0].envFrom[0]",
     "exactly one of configMapRef, secretRef"),
    ("unsupported-field-ref", pod(extra=", env: [{name: A, valueFrom: {fieldRef: {fieldPath: spec.secret}}}]"),
     1, "Pod/p", "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "unsupported fieldPath"),
    ("secret-bad-base64", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: 'not base64!'}\n", 1,
     "Secret/s", "data", "not valid base64"),
    ("configmap-bad-key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {'a/b': x}\n", 1,
     "ConfigMap/c", "data", "invalid key 'a/b'"),
    ("job-restart-always", job("").replace("restartPolicy: Never", "restartPolicy: Always"), 1, "Job/j",
     "spec.template.spec.restartPolicy", "must be OnFailure or Never"),
    ("indexed-without-completions", job("  completionMode: Indexed\n"), 1, "Job/j", "spec",
     "completions is required"),
    ("negative-completions", job("  completions: -1\n"), 1, "Job/j", "spec.completions", "greater than or equal to 0"),
    ("negative-backoff", job("  backoffLimit: -2\n"), 1, "Job/j", "spec.backoffLimit", "greater than or equal to 0"),
    ("absurd-completions", job("  completions: 1000000000\n"), 1, "Job/j", "spec.completions", "less than or equal"),
    ("zero-deadline", pod("  activeDeadlineSeconds: 0\n"), 1, "Pod/p", "spec.activeDeadlineSeconds",
     "greater than or equal to 1"),
    ("two-volume-sources", pod("  volumes: [{name: v, emptyDir: {}, hostPath: {path: /tmp}}]\n"), 1, "Pod/p",
     "spec.volumes[0]", "exactly one volume source"),
    ("nul-in-args", pod(extra=', args: ["a\\0b"]'), 1, "Pod/p", "spec.containers[0].args", "NUL"),
    ("restart-policy-typo", pod("  restartPolicy: Sometimes\n"), 1, "Pod/p", "spec.restartPolicy",
     "'Always', 'OnFailure' or 'Never'"),
    ("empty-containers", POD.format(spec="  containers: []\n"), 1, "Pod/p", "spec.containers", "at least 1"),
    ("second-document-bad", pod() + "---\n" + pod().replace("name: p}", "name: q}").replace("[x]", "x"), 2,
     "Pod/q", "spec.containers[0].command", "valid list"),
    ("duplicate-objects", pod() + "---\n" + pod(), 2, "Pod/p", "metadata.name", "duplicate object"),
    ("disallowed-slurm-flag", pod().replace("{name: p}", "{name: p, annotations: {slurm.hpk.io/flags: "
                                            "'--wrap=id'}}"), 1, "Pod/p",
     "metadata.annotations['slurm.hpk.io/flags']", "sbatch option '--wrap' is not allowed"),
    ("injected-slurm-flag-value", pod().replace("{name: p}", "{name: p, annotations: {slurm-job.vk.io/flags: "
                                                "'--partition=$(reboot)'}}"), 1, "Pod/p",
     "metadata.annotations['slurm-job.vk.io/flags']", "invalid value"),
]


@pytest.mark.parametrize(("text", "document", "ident", "path", "problem"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_manifest_names_document_field_and_problem(text: str, document: int, ident: str | None, path: str,
                                                      problem: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ManifestError) as caught:
        from podline.api.loader import load_paths  # noqa: F401 - same module the CLI uses

        loaded = load_text(text, "bad.yaml")
        if loaded:  # duplicates are detected across everything loaded, as load_paths does
            _check_duplicates(loaded)
    assert time.perf_counter() - started < 2.0  # refused without expanding anything
    message = str(caught.value)
    assert "\n" not in message
    where = f"bad.yaml: document {document}" + (f" ({ident})" if ident else "")
    assert message.startswith(where + ": "), message
    rest = message[len(where) + 2:]
    if path:
        assert rest.startswith(path + ": "), f"expected path {path!r} in {message!r}"
    assert problem in rest, message


def _check_duplicates(loaded: list) -> None:
    seen: dict[tuple[str, str, str], object] = {}
    for item in loaded:
        key = (item.obj.kind, item.obj.metadata.namespace, item.obj.metadata.name)
        if key in seen:
            raise ManifestError(item.source, "duplicate object", "metadata.name", item.document, item.obj.kind,
                                item.obj.metadata.name)
        seen[key] = item


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 30


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_any_name_is_accepted_only_if_dns1123(name: str) -> None:
    text = pod().replace("{name: p}", "{name: NAME}")
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    try:
        [loaded] = load_text(text.replace("NAME", quoted), "n.yaml")
    except ManifestError as exc:
        if "malformed YAML" in str(exc):
            return  # a name YAML itself cannot carry (control characters)
        assert re.search(r": metadata\.name: ", str(exc)), str(exc)
        assert not (DNS1123_SUBDOMAIN.match(name) and len(name) <= 253)
        return
    assert loaded.obj.metadata.name == name and DNS1123_SUBDOMAIN.match(name)
