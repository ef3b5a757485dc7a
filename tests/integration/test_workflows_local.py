"""Argo Workflows on the real local backend: steps, DAGs, parameters, loops, `when`, retries, exit handlers,
artifacts, scripts. Each step is a real pod run by the pod runner (host runtime, the default context); the
workflow's status is Argo's shape, so these tests read it as `argo get -o json` would be read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Cli, wait_for


def run(cli: Cli, manifest: str, expect: str = "Succeeded", timeout: float = 60) -> dict:
    return finish(cli, cli.apply(manifest).stdout, expect, timeout)


def finish(cli: Cli, applied: str, expect: str, timeout: float) -> dict:
    """After `apply` printed `applied`: wait for the phase, return the workflow as `get -o json` shows it."""
    name = applied.split()[0].split("/", 1)[1]
    cli.wait(f"workflow/{name}", f"phase={expect}", timeout=timeout)
    wf = cli.json("workflow", name)
    assert wf["status"]["phase"] == expect, json.dumps(wf["status"], indent=1)
    return wf


def by_display(wf: dict) -> dict[str, dict]:
    return {n["displayName"]: n for n in wf["status"]["nodes"].values()}


def params(node: dict) -> dict[str, str]:
    return {p["name"]: p["value"] for p in node.get("outputs", {}).get("parameters", [])}


STEPS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: steps-}
spec:
  entrypoint: main
  arguments: {parameters: [{name: greeting, value: "hello; $(rm -rf /) 'world'"}]}
  templates:
  - name: main
    steps:
    - - name: make
        template: make
        arguments: {parameters: [{name: text, value: "{{workflow.parameters.greeting}}"}]}
    - - name: shout
        template: shout
        arguments: {parameters: [{name: text, value: "{{steps.make.outputs.parameters.out}}"}]}
      - name: count
        template: count
        arguments: {parameters: [{name: text, value: "{{steps.make.outputs.result}}"}]}
  - name: make
    inputs: {parameters: [{name: text}]}
    outputs: {parameters: [{name: out, valueFrom: {path: /tmp/out.txt}}]}
    container:
      image: busybox
      command: [sh, -c, 'printf "%s" "$0" > /tmp/out.txt; echo made', "{{inputs.parameters.text}}"]
  - name: shout
    inputs: {parameters: [{name: text}]}
    container: {image: busybox, command: [sh, -c, 'echo "$0" | tr a-z A-Z', "{{inputs.parameters.text}}"]}
  - name: count
    inputs: {parameters: [{name: text}]}
    container: {image: busybox, command: [sh, -c, 'printf "%s" "$0" | wc -c', "{{inputs.parameters.text}}"]}
"""


def test_steps_pass_output_parameters_and_results_quoted_byte_for_byte(cli: Cli) -> None:
    wf = run(cli, STEPS)
    nodes = by_display(wf)
    assert params(nodes["make"]) == {"out": "hello; $(rm -rf /) 'world'"}
    assert nodes["make"]["outputs"]["result"] == "made"
    assert nodes["shout"]["outputs"]["result"] == "HELLO; $(RM -RF /) 'WORLD'"
    assert nodes["count"]["outputs"]["result"] == "4"
    root = wf["status"]["nodes"][wf["metadata"]["name"]]  # groups chained as Argo links them: [1] under [0]'s step
    assert root["type"] == "Steps" and [wf["status"]["nodes"][c]["displayName"] for c in root["children"]] == ["[0]"]
    assert [wf["status"]["nodes"][c]["displayName"] for c in nodes["make"]["children"]] == ["[1]"]
    assert root["outboundNodes"] == [nodes["shout"]["id"], nodes["count"]["id"]]
    assert wf["status"]["progress"] == "3/3"
    assert cli.wait(f"workflow/{wf['metadata']['name']}", "condition=Completed", timeout=5).returncode == 0
    pods = cli.json("pods")["items"]
    assert len(pods) == 3 and all(p["status"]["phase"] == "Succeeded" for p in pods)


DAG = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: diamond}
spec:
  entrypoint: diamond
  templates:
  - name: diamond
    dag:
      tasks:
      - {name: a, template: write, arguments: {parameters: [{name: text, value: A}]}}
      - name: b
        template: append
        depends: a
        arguments:
          parameters: [{name: text, value: B}]
          artifacts: [{name: in, from: "{{tasks.a.outputs.artifacts.out}}"}]
      - {name: c, template: fail, depends: a}
      - name: d
        template: append
        depends: "b && c.Failed"
        arguments:
          parameters: [{name: text, value: D}]
          artifacts: [{name: in, from: "{{tasks.b.outputs.artifacts.out}}"}]
      - {name: e, template: write, depends: a.Failed, arguments: {parameters: [{name: text, value: E}]}}
  - name: write
    inputs: {parameters: [{name: text}]}
    outputs: {artifacts: [{name: out, path: /work/out}]}
    container:
      image: busybox
      command: [sh, -c, 'mkdir -p /work/out && echo "$0" > /work/out/log', "{{inputs.parameters.text}}"]
  - name: append
    inputs:
      parameters: [{name: text}]
      artifacts: [{name: in, path: /work/in}]
    outputs: {artifacts: [{name: out, path: /work/in}]}
    container:
      image: busybox
      command: [sh, -c, 'echo "$0" >> /work/in/log; cat /work/in/log', "{{inputs.parameters.text}}"]
  - name: fail
    container: {image: busybox, command: [sh, -c, "exit 3"]}
"""


def test_a_dag_passes_artifacts_and_follows_depends(cli: Cli) -> None:
    wf = run(cli, DAG)
    nodes = by_display(wf)
    assert nodes["c"]["phase"] == "Failed" and "exit code 3" in nodes["c"]["message"]
    assert nodes["e"]["phase"] == "Omitted"
    assert nodes["d"]["outputs"]["result"] == "A\nB\nD"
    assert nodes["b"]["outputs"]["result"] == "A\nB"  # d appended to its own copy, not to b's


LOOPS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: loops}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: gen
        template: gen
    - - name: each
        template: echo
        arguments: {parameters: [{name: text, value: "{{item.os}}-{{item.v}}"}]}
        withParam: "{{steps.gen.outputs.result}}"
      - name: seq
        template: echo
        arguments: {parameters: [{name: text, value: "n{{item}}"}]}
        withSequence: {start: "3", end: "1", format: "%02d"}
      - name: heads
        template: echo
        arguments: {parameters: [{name: text, value: heads}]}
        when: "{{steps.gen.outputs.parameters.coin}} == heads"
      - name: tails
        template: echo
        arguments: {parameters: [{name: text, value: tails}]}
        when: "{{steps.gen.outputs.parameters.coin}} == tails"
    - - name: all
        template: echo
        arguments: {parameters: [{name: text, value: "{{steps.each.outputs.result}}"}]}
  - name: gen
    outputs: {parameters: [{name: coin, valueFrom: {path: /tmp/coin}}]}
    container:
      image: busybox
      command: [sh, -c, 'echo heads > /tmp/coin; echo "$0"', '[{"os":"debian","v":12},{"os":"alpine","v":3}]']
  - name: echo
    inputs: {parameters: [{name: text}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.text}}"]}
"""


def test_loops_and_when(cli: Cli) -> None:
    wf = run(cli, LOOPS)
    nodes = by_display(wf)
    assert nodes["each(0:os:debian,v:12)"]["outputs"]["result"] == "debian-12"
    assert nodes["each(1:os:alpine,v:3)"]["outputs"]["result"] == "alpine-3"
    assert [nodes[f"seq({i}:{v})"]["outputs"]["result"] for i, v in enumerate(["03", "02", "01"])] == \
        ["n03", "n02", "n01"]
    assert nodes["heads"]["phase"] == "Succeeded" and nodes["tails"]["phase"] == "Skipped"
    assert json.loads(nodes["all"]["outputs"]["result"]) == ["debian-12", "alpine-3"]


def retrying(marker: Path, extra: str = "") -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: retry}}
spec:
  entrypoint: flaky
  onExit: report
  templates:
  - name: flaky
    retryStrategy: {{limit: "2", retryPolicy: OnFailure{extra}}}
    container:
      image: busybox
      command:
      - sh
      - -c
      - 'n=$(cat {marker} 2>/dev/null || echo 0); echo $((n+1)) > {marker}; echo "try {{{{retries}}}}"; [ $n -ge 1 ]'
  - name: report
    container: {{image: busybox, command: [echo, "workflow {{{{workflow.status}}}}"]}}
"""


def test_a_failing_step_is_retried_and_the_exit_handler_runs(cli: Cli, tmp_path: Path) -> None:
    wf = run(cli, retrying(tmp_path / "tries"))
    nodes = by_display(wf)
    retry = nodes["retry"]
    assert retry["type"] == "Retry" and retry["phase"] == "Succeeded"
    attempts = [wf["status"]["nodes"][c] for c in retry["children"]]
    assert [a["phase"] for a in attempts] == ["Failed", "Succeeded"]
    assert attempts[1]["outputs"]["result"] == "try 1"
    assert nodes["retry.onExit"]["outputs"]["result"] == "workflow Succeeded"


def test_retries_wait_their_backoff_and_give_up_at_the_limit(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "never"
    manifest = retrying(marker, ", backoff: {duration: 1s, factor: 2}").replace("[ $n -ge 1 ]", "exit 1")
    started = time.time()
    wf = run(cli, manifest, expect="Failed")
    assert time.time() - started >= 3  # waits of 1 s and 2 s between the three attempts
    retry = by_display(wf)["retry"]
    assert [wf["status"]["nodes"][c]["phase"] for c in retry["children"]] == ["Failed"] * 3
    assert marker.read_text().strip() == "3"
    assert by_display(wf)["retry.onExit"]["outputs"]["result"] == "workflow Failed"
    assert cli.wait("workflow/retry", "phase=Succeeded", timeout=5).returncode == 1


SCRIPT = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: script}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: roll, template: roll}
    - - name: show
        template: show
        arguments: {parameters: [{name: n, value: "{{steps.roll.outputs.result}}"}]}
  - name: roll
    script:
      image: python:3.12
      command: [python3]
      source: |
        import sys
        with open("/tmp/side.txt", "w") as f:
            f.write("side")
        print("warning", file=sys.stderr)
        print(6 * 7)
    outputs: {parameters: [{name: side, valueFrom: {path: /tmp/side.txt}}]}
  - name: show
    inputs: {parameters: [{name: n}]}
    script: {image: busybox, command: [sh], source: 'echo "got {{inputs.parameters.n}}"'}
"""


def test_script_templates_give_stdout_as_result(cli: Cli) -> None:
    wf = run(cli, SCRIPT)
    nodes = by_display(wf)
    assert nodes["roll"]["outputs"]["result"] == "42"  # stderr is in the log, not in the result
    assert params(nodes["roll"]) == {"side": "side"}
    assert nodes["show"]["outputs"]["result"] == "got 42"
    logs = cli("logs", "workflow/script").stdout
    assert "warning" in logs and "got 42" in logs


FAN = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: fan}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: fan, template: say, arguments: {parameters: [{name: m, value: "{{item}}"}]}, withItems: [a.txt, b, 1.5]}
  - name: say
    inputs: {parameters: [{name: m}]}
    container: {image: busybox, command: [echo, "said {{inputs.parameters.m}}"]}
"""


def test_logs_c_picks_steps_by_display_name_item_or_template(cli: Cli) -> None:
    run(cli, FAN)

    def said(step: str) -> list[str]:
        return sorted(line.split(": ", 1)[1] for line in cli("logs", "workflow/fan", "-c", step).stdout.splitlines())

    every = ["said 1.5", "said a.txt", "said b"]
    assert said("fan") == said("say") == every  # a display name (items with dots too), a template name
    assert said("fan(0:a.txt)") == ["said a.txt"]
    pod = next(p["metadata"]["name"] for p in cli.json("pods")["items"])
    assert len(said(pod)) == 1  # a step's pod, by its name
    nothing = cli("logs", "workflow/fan", "-c", "no-such-step", check=False)  # was exit 0, printing nothing
    assert nothing.returncode == 1 and 'workflow fan has no step or template "no-such-step"' in nothing.stderr


def test_get_and_describe_read_like_argo_list_and_argo_get(cli: Cli) -> None:
    run(cli, DAG)
    listed = [line.split() for line in cli("get", "wf").stdout.splitlines()]
    assert listed[0] == ["NAME", "STATUS", "AGE", "DURATION", "PROGRESS"]
    assert listed[1][:2] == ["diamond", "Succeeded"] and listed[1][-1] == "3/4" and len(listed) == 2
    assert cli("get", "wf", "diamond", "-o", "wide").stdout.splitlines()[0].split()[-1] == "MESSAGE"
    page = cli("describe", "workflow", "diamond").stdout.splitlines()
    assert page[:3] == ["Name:                diamond", "Namespace:           default",
                        "Status:              Succeeded"]
    assert "Progress:            3/4" in page and any(line.startswith("Duration:") for line in page)
    pods = {p["metadata"]["annotations"]["workflows.argoproj.io/node-name"]: p["metadata"]["name"]
            for p in cli.json("pods")["items"]}
    tree = page[page.index("") + 1:]
    assert tree[0].split() == ["STEP", "TEMPLATE", "PODNAME", "DURATION", "MESSAGE"]
    assert tree[1].split() == ["✔", "diamond", "diamond"]
    # the tasks as siblings under the DAG (not nested under the tasks they depend on, as the nodes link them),
    # in the order they started: a; then b, c and the omitted e in one pass (in the DAG's order); then d
    assert [line.split()[1] for line in tree[2:7]] == ["a", "b", "c", "e", "d"]
    assert all(line.startswith(" ├─") for line in tree[2:6]) and tree[6].startswith(" └─") and tree[7] == ""
    rows = {line.split()[1]: line.split() for line in tree[2:7]}
    for task, template in zip("abd", ["write", "append", "append"], strict=True):
        assert rows[task][0].endswith("─✔") and rows[task][2:4] == [template, pods[f"diamond.{task}"]]
    assert rows["c"][0].endswith("─✖") and rows["c"][2:4] == ["fail", pods["diamond.c"]]
    assert " ".join(rows["c"][5:]) == "Error (exit code 3)"
    assert rows["e"][0].endswith("─○") and " ".join(rows["e"][2:]) == "write omitted: depends condition not met"
    assert tree[8].startswith("Events:") and any("WorkflowSucceeded" in line for line in tree[8:])


def test_a_step_that_ended_while_the_controller_was_down_keeps_its_own_finish_time(cli: Cli, tmp_path: Path) -> None:
    """As Argo takes a pod node's finishedAt from its containers: a controller restarted later does not stamp the
    moment it noticed (the step would look seconds or hours longer than it ran)."""
    gate = tmp_path / "gate"
    cli.apply(f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: offline}}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {{image: busybox, command: [sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done']}}
""")
    wait_for(lambda: cli.json("workflow", "offline")["status"].get("phase") == "Running")
    cli("down")
    gate.touch()
    wait_for(lambda: list(cli.home.glob("pods/default/offline*/*/status.json")) and all(
        json.loads(p.read_text()).get("finished") for p in cli.home.glob("pods/default/offline*/*/status.json")))
    time.sleep(2)
    cli("up")
    assert cli.wait("workflow/offline", "phase=Succeeded").returncode == 0
    node = next(n for n in cli.json("workflow", "offline")["status"]["nodes"].values() if n["type"] == "Pod")
    pod = cli.json("pods")["items"][0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert node["finishedAt"][:22] == pod["finishedAt"][:22], (node, pod)
