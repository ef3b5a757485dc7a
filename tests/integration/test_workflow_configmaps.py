"""Argo parameters from a ConfigMap (`valueFrom.configMapKeyRef`, Argo's arguments-parameters-from-configmap
example): a template's input and a workflow argument take the key's value, read when the workflow starts; a
missing ConfigMap errs the workflow with the field's path, unless valueFrom.default stands in (as in Argo) or it
is optional (the parameter's default)."""

from __future__ import annotations

from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, run

CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata: {name: simple-config}
data: {msg: 'hello world', who: "it's me"}
"""

FROM_CONFIGMAP = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: from-configmap-}
spec:
  entrypoint: main
  arguments:
    parameters:
    - {name: who, valueFrom: {configMapKeyRef: {name: simple-config, key: who}}}
    - {name: absent, default: fallback, valueFrom: {configMapKeyRef: {name: nowhere, key: x, optional: true}}}
    - {name: missing, valueFrom: {configMapKeyRef: {name: simple-config, key: nokey}, default: from-valueFrom}}
  templates:
  - name: main
    steps:
    - - {name: say, template: whalesay}
  - name: whalesay
    inputs:
      parameters:
      - name: message
        valueFrom: {configMapKeyRef: {name: simple-config, key: msg}}
    container:
      image: busybox
      command: [echo]
      args: ["{{inputs.parameters.message}} / {{workflow.parameters.who}} / {{workflow.parameters.absent}} /
             {{workflow.parameters.missing}}"]
"""


def test_parameters_take_their_values_from_a_configmap(cli: Cli) -> None:
    cli.apply(CONFIG)
    wf = run(cli, FROM_CONFIGMAP)
    pod = by_display(wf)["say"]
    assert pod["inputs"]["parameters"][0] == {"name": "message", "value": "hello world"}
    assert cli("logs", f"workflow/{wf['metadata']['name']}").stdout.strip().endswith(
        "hello world / it's me / fallback / from-valueFrom")


def test_a_missing_configmap_errs_the_workflow_naming_the_field(cli: Cli) -> None:
    wf = run(cli, FROM_CONFIGMAP, expect="Error")
    assert wf["status"]["message"] == ('spec.arguments.parameters[0].valueFrom.configMapKeyRef: configmap '
                                       '"simple-config" not found')
