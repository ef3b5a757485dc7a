"""Which pods the pipeline engine may run (and resume by skipping init containers): only those whose init
containers leave every result in the one checkpointed emptyDir."""

from __future__ import annotations

import pytest

from podline.api.core import Pod
from podline.api.loader import load_text
from podline.plan.pod_workspace import shared_volume


def pod(second_mount: str, volumes: str = "[{name: ws, emptyDir: {}}, {name: scratch, emptyDir: {}}]") -> Pod:
    text = f"""
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  restartPolicy: Never
  volumes: {volumes}
  initContainers:
  - {{name: i1, image: busybox, command: ["true"], volumeMounts: [{{name: ws, mountPath: /ws}}{second_mount}]}}
  containers:
  - {{name: main, image: busybox, command: ["true"], volumeMounts: [{{name: ws, mountPath: /ws}}]}}
"""
    obj = load_text(text, "p.yaml")[0].obj
    assert isinstance(obj, Pod)
    return obj


@pytest.mark.parametrize(("second_mount", "form"), [
    ("", "ws"),  # a second emptyDir nobody initialises: still a pipeline
    (", {name: scratch, mountPath: /s, readOnly: true}", "ws"),  # read only: no init container writes there
    (", {name: scratch, mountPath: /s}", None),  # written there: a resumed pod would miss it
])
def test_an_init_container_writing_to_a_second_empty_dir_keeps_the_pod_out_of_pipeline_form(
        second_mount: str, form: str | None) -> None:
    assert shared_volume(pod(second_mount)) == form


def test_a_host_path_beside_the_workspace_keeps_the_pipeline_form() -> None:
    """A hostPath outlives the pod: what an init container wrote there is still there when the next one resumes."""
    volumes = "[{name: ws, emptyDir: {}}, {name: scratch, hostPath: {path: /tmp}}]"
    assert shared_volume(pod(", {name: scratch, mountPath: /s}", volumes)) == "ws"
