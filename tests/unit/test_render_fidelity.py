"""`render --target kubernetes` loses nothing a cluster would run: Kubernetes objects come out as written
(with the fields podline ignores), and a Pipeline's checkpoint policy comes out as the pod form's annotations,
so podline runs the rendered Job with the same checkpoint levels."""

from __future__ import annotations

from pathlib import Path

import yaml

from podline.api.loader import load_text
from podline.plan.kubernetes import pipeline_job
from podline.plan.pod import plan_pod
from tests.unit.test_render_kubernetes import load_pipeline, pipeline, podline, steps, validate

POD = """apiVersion: v1
kind: Pod
metadata: {name: secure}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 1000}
  tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]
  nodeSelector: {disk: ssd}
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'sleep 1']
    ports: [{containerPort: 8080}]
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
    livenessProbe: {exec: {command: ["true"]}, periodSeconds: 5}
"""


def test_a_pod_is_rendered_as_written_with_what_podline_ignores(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    proc = podline(tmp_path, "render", "-f", str(tmp_path / "pod.yaml"), "--target", "kubernetes")
    assert proc.returncode == 0, proc.stderr
    [doc] = yaml.safe_load_all(proc.stdout)
    validate(doc)
    written = yaml.safe_load(POD)
    assert doc["spec"] == written["spec"]  # securityContext, tolerations, probes, ports: all kept
    assert doc["metadata"] == {"name": "secure", "namespace": "default"}


def test_a_checkpoint_policy_becomes_the_pod_forms_annotations_and_podline_reads_them_back() -> None:
    text = pipeline("ckpt", "  checkpoint: {nodeLocalEvery: 2, sharedEvery: 1}\n",
                    steps("{name: a, image: busybox, command: [sh, -c, 'echo a > a']}",
                          "{name: b, image: busybox, dependsOn: [a], command: [sh, -c, 'cat a']}"))
    job = pipeline_job(load_pipeline(text).dump())
    validate(job)
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"podline.io/checkpoint-node-local-every": "2", "podline.io/checkpoint-shared-every": "1"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ckpt-0", **job["spec"]["template"]["metadata"]},
           "spec": job["spec"]["template"]["spec"]}
    plan = plan_pod(load_text(yaml.safe_dump(pod), "pod.yaml")[0].obj.dump(), "uid", lambda *_: None)
    assert plan["workspace"]["checkpoint"] == {"nodeLocalEvery": 2, "sharedEvery": 1}


def test_the_default_checkpoint_policy_adds_no_annotations() -> None:
    text = pipeline("plain", "", steps("{name: a, image: busybox, command: ['true']}"))
    assert "annotations" not in pipeline_job(load_pipeline(text).dump())["spec"]["template"].get("metadata", {})


def test_a_deadline_is_the_jobs_too_so_a_retried_pod_gets_no_fresh_one() -> None:
    text = pipeline("late", "  activeDeadlineSeconds: 30\n  restartPolicy: Never\n  backoffLimit: 2\n",
                    steps("{name: a, image: busybox, command: [sleep, '60']}"))
    job = pipeline_job(load_pipeline(text).dump())
    validate(job)
    assert job["spec"]["activeDeadlineSeconds"] == 30
    assert job["spec"]["template"]["spec"]["activeDeadlineSeconds"] == 30  # Slurm's --time is sized from it
