"""persistentVolumeClaims: a claim is a named directory on the context's shared directory, so what one pod
writes there the next pod (on any node) reads; a workflow's volumeClaimTemplates are claims of its own,
shared by its steps and removed as Argo's volumeClaimGC says."""

from __future__ import annotations

from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, run


def claim_pod(name: str, command: str, read_only: bool = False) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: results, readOnly: {str(read_only).lower()}}}}}]
  containers:
  - {{name: main, image: busybox, command: [sh, -c, '{command}'], volumeMounts: [{{name: data, mountPath: /data}}]}}
"""


def test_a_claim_outlives_its_pod(cli: Cli) -> None:
    cli.apply(claim_pod("writer", "echo kept > /data/file"))
    assert cli.wait("pod/writer", "phase=Succeeded").returncode == 0
    cli("delete", "pod", "writer")
    assert (cli.home / "shared" / "volumes" / "default" / "results" / "file").read_text() == "kept\n"
    cli.apply(claim_pod("reader", "cat /data/file", read_only=True))
    assert cli.wait("pod/reader", "phase=Succeeded").returncode == 0
    assert cli("logs", "reader").stdout == "kept\n"


CLAIMED = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: claimed}
spec:
  entrypoint: main
  volumeClaimTemplates:
  - metadata: {name: work}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  GC
  templates:
  - name: main
    steps:
    - - {name: write, template: write}
    - - {name: read, template: read}
  - name: write
    container:
      image: busybox
      command: [sh, -c, "echo shared > /work/f"]
      volumeMounts: [{name: work, mountPath: /work}]
  - name: read
    container:
      image: busybox
      command: [sh, -c, "cat /work/f; exit $X"]
      volumeMounts: [{name: work, mountPath: /work}]
      env: [{name: X, value: "EXIT"}]
"""


def test_a_workflow_claim_is_shared_by_its_steps_and_collected_at_completion(cli: Cli) -> None:
    claim = cli.home / "shared" / "volumes" / "default" / "claimed-work"
    wf = run(cli, CLAIMED.replace("  GC\n", "").replace("EXIT", "0"))
    assert by_display(wf)["read"]["outputs"]["result"] == "shared"
    assert not claim.exists()  # OnWorkflowCompletion, Argo's default


def test_on_workflow_success_keeps_the_claim_of_a_failed_workflow_until_it_is_deleted(cli: Cli) -> None:
    claim = cli.home / "shared" / "volumes" / "default" / "claimed-work"
    manifest = CLAIMED.replace("  GC\n", "  volumeClaimGC: {strategy: OnWorkflowSuccess}\n").replace("EXIT", "1")
    run(cli, manifest, expect="Failed")
    assert (claim / "f").read_text() == "shared\n"  # kept to look into
    cli("delete", "workflow", "claimed")
    assert not claim.exists()
