"""Hera's output runs unchanged (SPEC: "Hera's `to_yaml()` output must run unchanged").

Every workflow here is built with Hera's Python API — no YAML written by hand — and the exact text of
`w.to_yaml()` (or the JSON of `w.to_dict()`) goes to `podline apply -f`. The assertions read values the steps
computed (sums, squares, word counts, file contents), never constants the manifest already holds.

Hera's defaults are kept: script templates keep Hera's image (`python:3.x`) and command `[python]`. On the
default local context the `host` runtime records the image and runs the command on this machine with the
controller's PATH, and `python` need not be on a fresh machine's PATH (Debian has only `python3`; README's test
command runs `.venv/bin/python -m pytest` without activating the venv). So the `hera_cli` fixture puts the
venv's bin directory first on the PATH the CLI (and the controller it starts) sees — what activating the venv
does — and Hera's `python` is then the venv's, which also has `hera` installed for Hera's runner scripts
(`constructor="runner"`: `python -m hera.workflows.runner -e module:function`, as an image built for Hera
has). The runner imports this module by name, so those scripts carry `PYTHONPATH` naming the repository, as an
image holding the code would.

No `from __future__ import annotations` here: Hera reads the `@script` functions' annotations as classes.
"""

import json
import os
import sys
from pathlib import Path

import pytest
from hera.workflows import (
    DAG,
    Artifact,
    Container,
    Parameter,
    RetryStrategy,
    Step,
    Steps,
    Workflow,
    WorkflowTemplate,
    script,
)
from hera.workflows.models import TemplateRef, ValueFrom, WorkflowTemplateRef

from tests.conftest import Cli
from tests.integration.test_workflows_local import by_display, finish, params

REPO = Path(__file__).resolve().parents[2]
RUNNER_ENV = {"PYTHONPATH": str(REPO)}


@pytest.fixture
def hera_cli(cli: Cli) -> Cli:
    """The `cli` fixture with the venv's bin directory first on PATH (see the module docstring for why)."""
    cli.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), cli.env.get("PATH", "")])
    return cli


def run(cli: Cli, w: Workflow, expect: str = "Succeeded", timeout: float = 60) -> dict:
    """Apply exactly `w.to_yaml()`, wait for the phase, return the workflow as `get -o json` shows it."""
    applied = cli.apply(w.to_yaml()).stdout
    return finish(cli, applied, expect, timeout)


# --- (a) a DAG of @script functions ------------------------------------------------------------------

@script()
def add(a: int, b: int):
    print(a + b)


@script()
def split_words(text: str):
    import json

    print(json.dumps(text.split()))


@script()
def square(n: int):
    print(n * n)


@script()
def shout(word: str):
    print(word.upper() + "!")


@script()
def report(total: int, squared: int, words: list):
    print(f"{total} {squared} {'/'.join(words)}")


def script_dag() -> Workflow:
    with Workflow(generate_name="hera-dag-", entrypoint="main",
                  arguments=Parameter(name="text", value="hera runs unchanged")) as w:
        with DAG(name="main"):
            total = add(name="total", arguments={"a": 19, "b": 23})
            sq = square(name="squared", arguments={"n": total.result})
            words = split_words(name="words", arguments={"text": "{{workflow.parameters.text}}"})
            loud = shout(name="loud", arguments={"word": "{{item}}"}, with_param=words.result)
            rep = report(name="report", arguments={"total": total.result, "squared": sq.result,
                                                   "words": loud.result})
            total >> sq >> rep
            words >> loud >> rep
    return w


def test_a_dag_of_script_functions_passes_values(hera_cli: Cli) -> None:
    """Hera's inline scripts: each argument arrives through Hera's preamble (`json.loads(r\'\'\'{{inputs.parameters.X}}
    \'\'\')`, else the raw text), so 19 and 23 are ints and the fanned-out results a list; what a function prints is
    its `outputs.result`; withParam fans out over a printed JSON list, and the loop's results come back as one."""
    wf = run(hera_cli, script_dag())
    nodes = by_display(wf)
    assert nodes["total"]["outputs"]["result"] == "42"
    assert nodes["squared"]["outputs"]["result"] == "1764"
    assert json.loads(nodes["words"]["outputs"]["result"]) == ["hera", "runs", "unchanged"]
    fanned = [nodes[f"loud({i}:{w})"]["outputs"]["result"] for i, w in enumerate(["hera", "runs", "unchanged"])]
    assert fanned == ["HERA!", "RUNS!", "UNCHANGED!"]
    assert nodes["report"]["outputs"]["result"] == "42 1764 HERA!/RUNS!/UNCHANGED!"


@script(constructor="runner", env=RUNNER_ENV)
def cube(n: int) -> int:
    return n * n * n


@script(constructor="runner", env=RUNNER_ENV)
def describe(n: int, label: str) -> dict:
    return {"label": label, "n": n, "odd": n % 2 == 1}


def runner_dag() -> Workflow:
    with Workflow(generate_name="hera-runner-", entrypoint="main") as w:
        with DAG(name="main"):
            c = cube(name="cube", arguments={"n": 3})
            d = describe(name="describe", arguments={"n": c.result, "label": "cubed"})
            c >> d
    return w


def test_runner_scripts_return_values(hera_cli: Cli) -> None:
    """Hera's runner (`constructor="runner"`): `python -m hera.workflows.runner -e module:function` with the
    template's input parameters as a JSON file (the script source `{{inputs.parameters}}`); the function's return
    value, serialised by Hera, is `outputs.result`."""
    wf = run(hera_cli, runner_dag())
    nodes = by_display(wf)
    assert nodes["cube"]["outputs"]["result"] == "27"
    assert json.loads(nodes["describe"]["outputs"]["result"]) == {"label": "cubed", "n": 27, "odd": True}


# --- (b) Steps of Container templates ----------------------------------------------------------------

def container_steps() -> Workflow:
    with Workflow(generate_name="hera-steps-", entrypoint="main",
                  arguments=[Parameter(name="sentence", value="the quick brown fox jumps")]) as w:
        count = Container(
            name="count",
            image="busybox",
            command=["sh", "-c"],
            args=['printf "%s" "$0" | wc -w | tr -d " " > /tmp/words; '
                  'echo "$0" | awk \'{for (i = 1; i <= NF; i++) printf "%s\\"%s\\"", (i > 1 ? "," : "["), $i; '
                  'print "]"}\'', "{{inputs.parameters.sentence}}"],
            inputs=[Parameter(name="sentence")],
            outputs=[Parameter(name="words", value_from=ValueFrom(path="/tmp/words"))],
        )
        length = Container(
            name="length",
            image="busybox",
            command=["sh", "-c", 'printf "%s" "$0" | wc -c | tr -d " "', "{{inputs.parameters.word}}"],
            inputs=[Parameter(name="word")],
        )
        verdict = Container(
            name="verdict",
            image="busybox",
            command=["echo", "{{inputs.parameters.what}}"],
            inputs=[Parameter(name="what")],
        )
        with Steps(name="main") as s:
            c = count(arguments={"sentence": "{{workflow.parameters.sentence}}"})
            with s.parallel():
                length(name="each-word", arguments={"word": "{{item}}"}, with_param=c.result)
                length(name="each-item", arguments={"word": "{{item}}"}, with_items=["a", "bb", "ccc"])
                verdict(name="long", arguments={"what": "long"}, when=f"{c.get_parameter('words').value} > 3")
                verdict(name="short", arguments={"what": "short"}, when=f"{c.get_parameter('words').value} <= 3")
            verdict(name="lengths", arguments={"what": "{{steps.each-word.outputs.result}}"})
    return w


def test_steps_of_containers_with_parameters_files_when_and_loops(hera_cli: Cli) -> None:
    wf = run(hera_cli, container_steps())
    nodes = by_display(wf)
    assert params(nodes["count"]) == {"words": "5"}
    assert json.loads(nodes["count"]["outputs"]["result"]) == ["the", "quick", "brown", "fox", "jumps"]
    each_word = [nodes[f"each-word({i}:{w})"]["outputs"]["result"]
                 for i, w in enumerate(["the", "quick", "brown", "fox", "jumps"])]
    assert each_word == ["3", "5", "5", "3", "5"]
    assert [nodes[f"each-item({i}:{w})"]["outputs"]["result"] for i, w in enumerate(["a", "bb", "ccc"])] == \
        ["1", "2", "3"]
    assert nodes["long"]["phase"] == "Succeeded" and nodes["long"]["outputs"]["result"] == "long"
    assert nodes["short"]["phase"] == "Skipped"
    assert json.loads(nodes["lengths"]["outputs"]["result"]) == ["3", "5", "5", "3", "5"]  # strings, as in Argo


@script()
def scale(cfg: dict, factor: int = 10, unit: str = "m"):
    print(f"{sum(cfg['sizes']) * factor}{unit}")


def typed_arguments_and_depends() -> Workflow:
    """Hera serialises non-string arguments (dicts, ints) to JSON text and Python lists given to `with_param` to a
    JSON string; function defaults become input defaults; `on_failure` and `|` become `depends` expressions."""
    with Workflow(generate_name="hera-typed-", entrypoint="main", arguments={"unit": "km"}) as w:
        fail = Container(name="fail", image="busybox", command=["sh", "-c", "echo broke; exit 3"])
        with DAG(name="main"):
            base = scale(name="base", arguments={"cfg": {"sizes": [1, 2, 3]}})
            each = scale(name="each", arguments={"cfg": '{"sizes": [{{item}}]}', "factor": 2}, with_param=[4, 5])
            items = scale(name="items", arguments={"cfg": {"sizes": [1]}, "factor": "{{item}}",
                                                  "unit": "{{workflow.parameters.unit}}"}, with_items=[7, 8])
            broken = fail(name="broken")
            recovered = scale(name="recovered", arguments={"cfg": {"sizes": [100]}, "factor": 1, "unit": "!"})
            either = scale(name="either", arguments={"cfg": {"sizes": [0]}})
            base >> each
            broken.on_failure(recovered)
            either.depends = f"{each.name} || {items.name}"
    return w


def test_hera_argument_serialisation_and_depends_operators(hera_cli: Cli) -> None:
    wf = run(hera_cli, typed_arguments_and_depends())
    nodes = by_display(wf)
    assert nodes["base"]["outputs"]["result"] == "60m"  # the dict arrived as a dict, the default factor applied
    assert [nodes[f"each({i}:{v})"]["outputs"]["result"] for i, v in enumerate([4, 5])] == ["8m", "10m"]
    assert [nodes[f"items({i}:{v})"]["outputs"]["result"] for i, v in enumerate([7, 8])] == ["7km", "8km"]
    assert nodes["broken"]["phase"] == "Failed" and "exit code 3" in nodes["broken"]["message"]
    assert nodes["recovered"]["outputs"]["result"] == "100!"
    assert nodes["either"]["outputs"]["result"] == "0m"
    assert wf["status"]["phase"] == "Succeeded"  # `broken.Failed` was expected: the DAG itself succeeded


# --- (c) an exit handler and a retry strategy --------------------------------------------------------

def retried_with_exit_handler(marker: Path, succeed_on: int, limit: int) -> Workflow:
    with Workflow(generate_name="hera-retry-", entrypoint="flaky", on_exit="exit-handler",
                  arguments=[Parameter(name="marker", value=str(marker))]) as w:
        Container(
            name="flaky",
            image="busybox",
            command=["sh", "-c", 'n=$(cat "$0" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$0"; '
                     'echo "attempt $n"; [ $n -ge $1 ]', "{{workflow.parameters.marker}}", str(succeed_on)],
            retry_strategy=RetryStrategy(limit=limit, retry_policy="OnFailure"),
        )
        tries = Container(
            name="tries",
            image="busybox",
            command=["sh", "-c", 'echo "{{inputs.parameters.mood}} after $(cat "$0") tries"',
                     "{{workflow.parameters.marker}}"],
            inputs=[Parameter(name="mood")],
        )
        with Steps(name="exit-handler") as s:
            with s.parallel():
                tries(name="celebrate", arguments={"mood": "{{workflow.status}}"},
                      when="{{workflow.status}} == Succeeded")
                tries(name="mourn", arguments={"mood": "{{workflow.status}}"},
                      when="{{workflow.status}} != Succeeded")
    return w


def test_retries_until_success_then_the_exit_handler_runs(hera_cli: Cli, tmp_path: Path) -> None:
    wf = run(hera_cli, retried_with_exit_handler(tmp_path / "count", succeed_on=3, limit=3))
    nodes = by_display(wf)
    name = wf["metadata"]["name"]
    retry = nodes[name]
    assert retry["type"] == "Retry"
    attempts = [wf["status"]["nodes"][c] for c in retry["children"]]
    assert [a["phase"] for a in attempts] == ["Failed", "Failed", "Succeeded"]
    assert [a["outputs"]["result"] for a in attempts[2:]] == ["attempt 3"]
    assert nodes["celebrate"]["outputs"]["result"] == "Succeeded after 3 tries"
    assert nodes["mourn"]["phase"] == "Skipped"


def test_retries_give_up_at_the_limit_and_the_exit_handler_still_runs(hera_cli: Cli, tmp_path: Path) -> None:
    wf = run(hera_cli, retried_with_exit_handler(tmp_path / "count", succeed_on=9, limit=1), expect="Failed")
    nodes = by_display(wf)
    assert [wf["status"]["nodes"][c]["phase"] for c in nodes[wf["metadata"]["name"]]["children"]] == \
        ["Failed", "Failed"]
    assert nodes["mourn"]["outputs"]["result"] == "Failed after 2 tries"
    assert nodes["celebrate"]["phase"] == "Skipped"


def task_exit_handler(marker: Path) -> Workflow:
    with Workflow(generate_name="hera-task-exit-", entrypoint="main",
                  arguments=[Parameter(name="marker", value=str(marker))]) as w:
        compute = Container(name="compute", image="busybox",
                            command=["sh", "-c", 'expr 6 \\* 7 > "$0"', "{{workflow.parameters.marker}}"])
        report = Container(name="report", image="busybox", command=["cat", "{{workflow.parameters.marker}}"])
        with DAG(name="main"):
            compute(name="compute", on_exit=report)
    return w


def test_a_task_exit_handler_runs_after_its_task(hera_cli: Cli, tmp_path: Path) -> None:
    wf = run(hera_cli, task_exit_handler(tmp_path / "answer"))
    [handler] = [n for name, n in by_display(wf).items() if name.endswith(".onExit")]
    assert handler["outputs"]["result"] == "42"


# --- (d) artifacts between steps ---------------------------------------------------------------------

@script(inputs=Artifact(name="numbers", path="/tmp/in/numbers.txt"))
def total_of():
    with open("/tmp/in/numbers.txt") as f:
        print(sum(int(line) for line in f if line.strip()))


def artifact_dag() -> Workflow:
    with Workflow(generate_name="hera-art-", entrypoint="main") as w:
        produce = Container(
            name="produce",
            image="busybox",
            command=["sh", "-c", "mkdir -p /work/out && seq 1 $0 > /work/out/numbers.txt && "
                     "echo made > /work/out/note", "{{inputs.parameters.n}}"],
            inputs=[Parameter(name="n")],
            outputs=[Artifact(name="numbers", path="/work/out/numbers.txt"), Artifact(name="dir", path="/work/out")],
        )
        double = Container(
            name="double",
            image="busybox",
            command=["sh", "-c", "cat /in/dir/note; awk '{print 2*$1}' /in/dir/numbers.txt > /tmp/doubled.txt"],
            inputs=[Artifact(name="dir", path="/in/dir")],
            outputs=[Artifact(name="numbers", path="/tmp/doubled.txt")],
        )
        with DAG(name="main"):
            p = produce(name="produce", arguments={"n": "10"})
            d = double(name="double", arguments=[p.get_artifact("dir")])
            plain = total_of(name="plain", arguments=[p.get_artifact("numbers")])
            doubled = total_of(name="doubled",
                               arguments=[Artifact(name="numbers", from_="{{tasks.double.outputs.artifacts.numbers}}")])
            p >> [d, plain]
            d >> doubled
    return w


def test_artifacts_pass_between_steps(hera_cli: Cli) -> None:
    wf = run(hera_cli, artifact_dag())
    nodes = by_display(wf)
    assert nodes["double"]["outputs"]["result"] == "made"  # a whole directory arrived
    assert nodes["plain"]["outputs"]["result"] == "55"
    assert nodes["doubled"]["outputs"]["result"] == "110"


# --- WorkflowTemplates: a library applied once, workflows calling it or made from it -------------------

@script()
def wordcount(text: str):
    print(len(text.split()))


def test_workflow_templates_from_hera_run_unchanged(hera_cli: Cli) -> None:
    with WorkflowTemplate(name="hera-lib", entrypoint="main", arguments={"text": "one two three"}) as library:
        with Steps(name="main"):
            wordcount(name="count", arguments={"text": "{{workflow.parameters.text}}"})
        Container(name="shout", image="busybox", inputs=[Parameter(name="word")],
                  command=["sh", "-c", 'echo "$0" | tr a-z A-Z', "{{inputs.parameters.word}}"])
    assert hera_cli.apply(library.to_yaml()).stdout.strip() == "workflowtemplate/hera-lib created"
    made = run(hera_cli, Workflow(generate_name="made-", workflow_template_ref=WorkflowTemplateRef(name="hera-lib"),
                                  arguments={"text": "four words right here"}))
    assert by_display(made)["count"]["outputs"]["result"] == "4"
    with Workflow(generate_name="caller-", entrypoint="main") as caller:
        with Steps(name="main"):
            Step(name="shout", template_ref=TemplateRef(name="hera-lib", template="shout"),
                 arguments={"word": "templated"})
    nodes = by_display(run(hera_cli, caller))
    assert nodes["shout"]["outputs"]["result"] == "TEMPLATED"


# --- to_dict(): the JSON form ------------------------------------------------------------------------

def test_to_dict_json_runs_too(hera_cli: Cli, tmp_path: Path) -> None:
    manifest = tmp_path / "workflow.json"
    manifest.write_text(json.dumps(script_dag().to_dict()))
    wf = finish(hera_cli, hera_cli("apply", "-f", str(manifest)).stdout, "Succeeded", 60)
    nodes = by_display(wf)
    assert nodes["report"]["outputs"]["result"] == "42 1764 HERA!/RUNS!/UNCHANGED!"
