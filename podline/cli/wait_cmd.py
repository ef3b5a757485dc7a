"""wait: until objects reach a phase or condition, or are gone, as kubectl wait."""

from __future__ import annotations

import time

import click

from podline.api.conditions import final_condition
from podline.cli.common import State, fail, namespace_option, pass_state, split_ref
from podline.store import Obj

POLL = 0.05
TERMINAL = ("Succeeded", "Failed", "Error")  # Error: a Workflow's phase when podline could not run a step

# What `wait --for` can name, per kind: the phases and conditions the controller sets (Job phases are
# podline's shorthand for its conditions, as kubectl's habit; a Job is Running while it has active pods).
WAIT_PHASES: dict[str, tuple[str, ...]] = {
    "Pod": ("Pending", "Running", "Succeeded", "Failed"),
    "Job": ("Running", "Succeeded", "Complete", "Failed"),
    "Pipeline": ("Pending", "Running", "Succeeded", "Failed"),
    "Workflow": ("Pending", "Running", "Succeeded", "Failed", "Error"),
}
WAIT_CONDITIONS: dict[str, tuple[str, ...]] = {
    "Pod": ("PodScheduled", "Initialized", "ContainersReady", "Ready", "DisruptionTarget"),
    "Job": ("Complete", "Failed", "Suspended", "SuccessCriteriaMet", "FailureTarget"),
    "Pipeline": ("Complete", "Failed"),
    "Workflow": ("PodRunning", "Completed"),
}


def _accepted(kind: str) -> str:
    choices = [f"phase={p}" for p in WAIT_PHASES[kind]] + [f"condition={c}" for c in WAIT_CONDITIONS[kind]]
    return ", ".join(choices)


def parse_for(kind: str, condition: str | None) -> tuple[str, str, str]:
    """`phase=P` or `condition=C[=True|False]` → (what, canonical name, wanted condition status); a pod's
    default is condition=Ready. Exit 2 when KIND has no such phase or condition (it could never be reached)."""
    if kind not in WAIT_PHASES:
        fail(f"a {kind.lower()} has no phase or condition to wait for (kinds that have: "
             f"{', '.join(k.lower() for k in WAIT_PHASES)})", 2)
    if condition is None:
        if kind != "Pod":
            fail(f"--for is required for a {kind.lower()} (accepted: {_accepted(kind)})", 2)
        condition = "condition=Ready"
    what, sep, value = condition.partition("=")
    if what not in ("phase", "condition") or not sep or not value:
        fail(f"--for={condition}: expected phase=VALUE or condition=VALUE", 2)
    value, _, status = value.partition("=") if what == "condition" else (value, "", "")
    names = WAIT_PHASES[kind] if what == "phase" else WAIT_CONDITIONS[kind]
    canonical = next((n for n in names if n.lower() == value.lower()), None)
    if canonical is None or status.lower() not in ("", "true", "false"):
        fail(f"--for={condition}: not a {what} of a {kind.lower()} (accepted: {_accepted(kind)})", 2)
    return what, canonical, status.capitalize() or "True"


def _condition(obj: Obj, kind: str, status: str = "True") -> bool:
    return any(c.get("type", "").lower() == kind.lower() and c.get("status") == status
               for c in obj.status.get("conditions", []))


def _reached(obj: Obj, what: str, value: str, status: str = "True") -> tuple[bool, bool]:
    """(reached, still reachable) for --for=phase=X / --for=condition=Y[=STATUS]."""
    if obj.kind == "Job":
        if what == "phase":
            value = {"succeeded": "Complete", "failed": "Failed", "complete": "Complete"}.get(value.lower(), value)
            if value.lower() == "running":
                return obj.status.get("active", 0) > 0, not (_condition(obj, "Complete") or _condition(obj, "Failed"))
        finished = _condition(obj, "Complete") or _condition(obj, "Failed")
        return _condition(obj, value, status), not finished
    if what == "phase":
        phase = obj.status.get("phase", "Pending")
        return phase.lower() == value.lower(), phase not in TERMINAL
    return _condition(obj, value, status), obj.status.get("phase") not in TERMINAL


def _where_it_ended(obj: Obj) -> str:
    """What an object that can no longer reach the awaited state is: its phase, or a Job's final condition."""
    if "phase" in obj.status:
        return f"phase {obj.status['phase']}"
    final = final_condition(obj.status)
    return f"{final['type']}: {final.get('reason', '')}" if final else "phase unknown"


def _timeout_seconds(text: str) -> float:
    """kubectl's --timeout is a Go duration (30s, 5m, 1h); a bare number is seconds, as podline took it before."""
    from podline.api.durations import DURATION, duration_seconds

    if text.replace(".", "", 1).isdigit() and text.isascii():  # 1.5: seconds, as the float option took them
        return float(text)
    if not DURATION.fullmatch(text):
        fail(f"--timeout {text!r}: expected a duration such as 30s, 5m, 1h30m (a bare number is seconds)", 2)
    return float(duration_seconds(text))


def _wait_targets(refs: tuple[str, ...]) -> list[tuple[str, str]]:
    """`pod/a job/b` or `pod a b`, as kubectl wait takes them."""
    if any("/" in ref for ref in refs):
        return [split_ref(ref) for ref in refs]
    if len(refs) < 2:
        fail(f"expected KIND/NAME… or KIND NAME…, got {' '.join(refs)!r}", 2)
    return [split_ref(refs[0], name) for name in refs[1:]]


def _wait_one(state: State, kind: str, name: str, wanted: tuple[str, str, str] | None, deadline: float) -> None:
    """Until KIND/NAME reaches `wanted` (None: until it is gone), or fail (exit 1)."""
    ref = f"{kind.lower()}/{name}"
    condition = "delete" if wanted is None else f"{wanted[0]}={wanted[1]}" + (
        f"={wanted[2]}" if wanted[2] != "True" else "")
    while True:
        if wanted is None:
            if state.store.get(kind, state.namespace_of(kind), name) is None:
                break
        else:
            obj = state.find(kind, name)
            reached, reachable = _reached(obj, *wanted)
            if reached:
                break
            if not reachable:
                fail(f"{ref} can no longer reach {condition} ({_where_it_ended(obj)})", 1)
        if time.time() >= deadline:
            fail(f"timed out waiting for {condition} on {ref}", 1)
        time.sleep(POLL)
    click.echo(f"{ref} condition met")  # kubectl's words, for phases too


@click.command()
@namespace_option
@click.argument("refs", nargs=-1, required=True)
@click.option("--for", "condition", default=None,
              help="phase=P, condition=C[=True|False] or delete (a pod's default: condition=Ready); one the kind "
                   "does not have exits 2, listing those it has.")
@click.option("--timeout", default="30s", help="A duration: 30s, 5m, 1h (a bare number is seconds; default 30s).")
@pass_state
def wait(state: State, refs: tuple[str, ...], condition: str | None, timeout: str) -> None:
    """Wait until each KIND/NAME (or KIND NAME…) reaches a phase or condition, or is gone (--for=delete); exit 1
    on timeout or when one no longer can."""
    deadline = time.time() + _timeout_seconds(timeout)
    targets = _wait_targets(refs)
    wanted = {kind: None if condition == "delete" else parse_for(kind, condition) for kind, _ in targets}
    for kind, name in targets:
        _wait_one(state, kind, name, wanted[kind], deadline)
