"""Argo input artifacts from outside the workflow, on the real local backend: `http` (a file from Python's
http.server) and `s3` (one object, and every object under a key, from moto's S3 server) with the keys from a
v1 Secret. They are staged through the node's cache of datasets, as Dataset sources are, so a later step on the
node reads them from there; the keys reach the runner's plan only, never the store's record of the pod.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import Cli
from tests.integration.test_remote_datasets import KEY, SECRET, bucket, http, s3, server_dir  # noqa: F401
from tests.integration.test_workflows_local import by_display, run


def test_input_artifacts_come_from_http_and_s3(cli: Cli, http: str, s3: str, server_dir: Path) -> None:  # noqa: F811
    (server_dir / "greeting.txt").write_text("hello over http\n")
    bucket(s3, "inputs", {"tables/a.csv": b"a,1\n", "tables/b.csv": b"b,2\n", "single/readme.md": b"# readme\n"})
    cli.apply(f"""
apiVersion: v1
kind: Secret
metadata: {{name: s3-keys}}
stringData: {{accessKey: {KEY}, secretKey: "{SECRET}"}}
""")
    wf = run(cli, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: fetch}}
spec:
  entrypoint: main
  arguments: {{parameters: [{{name: table-dir, value: tables}}]}}
  templates:
  - name: main
    steps:
    - - name: read
        template: read
        arguments:
          artifacts:
          - name: tables
            s3:
              endpoint: {s3.removeprefix("http://")}
              insecure: true
              bucket: inputs
              key: "{{{{workflow.parameters.table-dir}}}}"
              accessKeySecret: {{name: s3-keys, key: accessKey}}
              secretKeySecret: {{name: s3-keys, key: secretKey}}
  - name: read
    inputs:
      artifacts:
      - name: greeting
        path: /in/greeting.txt
        http: {{url: "{http}/greeting.txt"}}
      - name: tables
        path: /in/tables
      - name: readme
        path: /in/readme.md
        s3:
          endpoint: {s3}
          bucket: inputs
          key: single/readme.md
          accessKeySecret: {{name: s3-keys, key: accessKey}}
          secretKeySecret: {{name: s3-keys, key: secretKey}}
    container:
      image: busybox
      command: [sh, -c, 'cat /in/greeting.txt /in/readme.md; ls /in/tables; cat /in/tables/*.csv']
""")
    result = by_display(wf)["read"]["outputs"]["result"]
    assert result.splitlines() == ["hello over http", "# readme", "a.csv", "b.csv", "a,1", "b,2"]
    with sqlite3.connect(cli.home / "state.db") as db:  # the keys are in the Secret, and nowhere else
        rows = db.execute("SELECT kind FROM objects WHERE manifest LIKE ? OR internal LIKE ? OR status LIKE ?",
                          (f"%{SECRET}%",) * 3).fetchall()
    assert {kind for (kind,) in rows} <= {"Secret"}
    assert list((cli.home / "scratch" / "datasets").rglob("*")), "staged through the node's dataset cache"


def test_an_input_artifact_that_cannot_be_fetched_fails_its_step_with_the_reason(cli: Cli, http: str) -> None:  # noqa: F811
    wf = run(cli, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: missing}}
spec:
  entrypoint: read
  templates:
  - name: read
    inputs:
      artifacts:
      - {{name: maybe, path: /in/maybe.txt, optional: true, http: {{url: "{http}/neither.txt"}}}}
      - {{name: gone, path: /in/gone.txt, http: {{url: "{http}/no-such-file.txt"}}}}
    container: {{image: busybox, command: [cat, /in/gone.txt]}}
""", expect="Error")  # Argo's word for a step whose inputs could not be placed
    node = by_display(wf)["missing"]
    assert node["phase"] == "Error" and "input artifact gone" in node["message"], node
    assert "no-such-file.txt: listing failed" in node["message"] and "404" in node["message"], node["message"]
    assert "neither.txt" not in node["message"]  # the optional one, placed first and missing too, was skipped
