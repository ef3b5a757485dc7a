"""Loops in the Argo walker (podline.controller.argo_nodes.Walker), pass by pass through test_argo_walker's
fake `Pods`: a loop over no items is one Skipped node as in Argo ("Skipped, empty params"), which `depends`
reads as Skipped; a `when` over each item may use govaluate's arithmetic; a task whose `depends` cannot hold
is Omitted under failFast while a ready one starts; and retries stop at backoff.maxDuration with Argo's message.
"""

from __future__ import annotations

from tests.unit.test_argo_walker import Run, dag, failed, nid, ok, retrying, steps

EMPTY = "Skipped, empty params"


def test_a_dag_task_looping_over_no_items_is_skipped_and_depends_sees_skipped() -> None:
    run = Run(dag("name: gen", "name: fan, depends: gen, withParam: '{{tasks.gen.outputs.result}}', xv: '{{item}}'",
                  "name: s, depends: fan.Succeeded", "name: k, depends: fan.Skipped")).step()
    run.step({"wf.gen": ok("[]")})
    fan = run.n("wf.fan")
    assert (fan["type"], fan["phase"], fan["message"]) == ("Skipped", "Skipped", EMPTY)
    assert (fan["templateName"], fan["boundaryID"], fan["displayName"]) == ("echo", "wf", "fan")
    assert run.kids("wf.gen") == ["wf.fan"] and "finishedAt" in fan
    assert (run.n("wf.s")["type"], run.phase("wf.s")) == ("Skipped", "Omitted")
    assert run.pods.order == ["wf.gen", "wf.k"] and run.kids("wf.fan") == ["wf.s", "wf.k"]  # as Argo links them
    run.step({"wf.k": ok()})
    assert run.root["phase"] == "Succeeded"


def test_a_dag_loop_that_still_has_items_is_a_task_group() -> None:
    run = Run(dag("name: gen", "name: fan, depends: gen, withParam: '{{tasks.gen.outputs.result}}', xv: '{{item}}'",
                  "name: k, depends: fan.Skipped")).step().step({"wf.gen": ok("[7]")})
    assert run.n("wf.fan")["type"] == "TaskGroup" and run.pods.order == ["wf.gen", "wf.fan(0:7)"]
    run.step({"wf.fan(0:7)": ok()})
    assert (run.phase("wf.fan"), run.phase("wf.k"), run.root["phase"]) == ("Succeeded", "Omitted", "Succeeded")


def test_an_omitted_loop_is_omitted_not_a_failure_of_the_dag() -> None:
    run = Run(dag("name: A", "name: B, depends: A.Failed, withItems: [x, y]")).step().step({"wf.A": ok()})
    assert (run.n("wf.B")["type"], run.phase("wf.B")) == ("Skipped", "Omitted")
    assert run.root["phase"] == "Succeeded"


def test_a_step_looping_over_no_items_is_one_skipped_node_and_the_next_group_runs() -> None:
    run = Run(steps(["name: gen"], ["name: fan, withParam: '{{steps.gen.outputs.result}}'", "name: b"],
                    ["name: c, xv: '{{steps.fan.status}}'"])).step()
    run.step({"wf[0].gen": ok("[]")})
    fan = run.n("wf[1].fan")
    assert (fan["type"], fan["phase"], fan["message"], fan["templateName"]) == ("Skipped", "Skipped", EMPTY, "echo")
    assert run.kids("wf[1]") == ["wf[1].fan", "wf[1].b"] and fan["boundaryID"] == "wf"
    run.step({"wf[1].b": ok()})
    assert run.phase("wf[1]") == "Succeeded" and run.args("wf[2].c") == ["Skipped"]
    run.step({"wf[2].c": ok()})
    assert run.root["phase"] == "Succeeded" and nid("wf[1].fan") not in run.pods.started


def test_when_uses_govaluate_arithmetic_per_item() -> None:
    run = Run(steps(["name: e, withItems: [1, 2, 3, 4], when: '{{item}} % 2 == 0', xv: '{{item}}'"])).step()
    assert run.pods.order == ["wf[0].e(1:2)", "wf[0].e(3:4)"]
    for skipped in ("wf[0].e(0:1)", "wf[0].e(2:3)"):
        assert (run.n(skipped)["type"], run.phase(skipped)) == ("Skipped", "Skipped")
    assert run.n("wf[0].e(0:1)")["message"] == "when '1 % 2 == 0' evaluated false"
    run.step({"wf[0].e(1:2)": ok(), "wf[0].e(3:4)": ok()})
    assert run.root["phase"] == "Succeeded"


def test_when_with_in_ternary_and_concatenation() -> None:
    run = Run(steps(["name: a, when: \"'{{workflow.name}}' in ('wf', 'other')\"",
                     "name: b, when: \"{{workflow.name}} == 'w' + 'f' ? true : false\"",
                     "name: c, when: \"'x' + '{{workflow.name}}' == 'wf'\""])).step()
    assert run.pods.order == ["wf[0].a", "wf[0].b"] and run.phase("wf[0].c") == "Skipped"


def test_with_fail_fast_a_task_whose_depends_cannot_hold_is_omitted_and_a_ready_one_starts() -> None:
    run = Run(dag("name: B", "name: C", "name: D, depends: B && C", "name: E, depends: B")).step()
    run.step({"wf.C": failed()})
    assert nid("wf.D") not in run.nodes and run.root["phase"] == "Running"  # B still runs
    run.step({"wf.B": ok()})
    d = run.n("wf.D")
    assert (d["type"], d["phase"], d["message"]) == ("Skipped", "Omitted", "omitted: depends condition not met")
    assert run.kids("wf.B") == ["wf.D", "wf.E"] and run.kids("wf.C") == ["wf.D"]
    assert run.pods.order == ["wf.B", "wf.C", "wf.E"] and run.root["phase"] == "Running"  # as Argo's controller
    run.step({"wf.E": ok()})
    assert run.root["phase"] == "Failed" and run.root["message"] == "task 'wf.C' failed"


def test_retries_stop_at_max_duration_with_argos_message() -> None:
    run = Run(retrying("{limit: 5, retryPolicy: Always, backoff: {duration: '1', maxDuration: '10'}}")).step()
    run.step({"wf[0].a(0)": failed()}, seconds=5).step(seconds=1)
    assert run.pods.order == ["wf[0].a(0)", "wf[0].a(1)"]  # 6s after the first attempt started: retried
    run.step({"wf[0].a(1)": failed(3)}, seconds=5)  # 11s: past maxDuration
    retry = run.n("wf[0].a")
    assert (retry["phase"], retry["message"]) == ("Failed", "Max duration limit exceeded")
    assert len(run.pods.order) == 2 and run.phase("wf[0].a(1)") == "Failed" and run.root["phase"] == "Failed"
