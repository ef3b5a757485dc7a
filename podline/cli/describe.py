"""`podline describe`: a readable page per object — spec summary, status, timings, events."""

from __future__ import annotations

import time
from typing import Any

import click

from podline.cli.common import State, print_table
from podline.cli.render import age, job_status_word, pod_status_word
from podline.runtime.files import parse_rfc3339, rfc3339
from podline.store import Obj


def _line(key: str, value: object, indent: int = 0) -> None:
    label = key + ":"
    click.echo(f"{' ' * indent}{label:<{max(20, len(label) + 1)}}{value}")


def _seconds(start: str | None, end: str | None) -> str:
    if not start:
        return "-"
    finish = parse_rfc3339(end) if end else time.time()
    return f"{finish - parse_rfc3339(start):.3f}s"


def _queued(obj: Obj) -> str:
    """How long the pod waited before its runner started: podline's hand-off and Slurm's queue together."""
    started = obj.status.get("startTime")
    if started:
        return f"{max(0.0, parse_rfc3339(started) - obj.created_at):.3f}s (created → started)"
    ended = obj.internal.get("finishedAt")
    if ended is not None:  # over without starting (refused by Slurm, deleted, …): the clock stopped then
        return f"{max(0.0, ended - obj.created_at):.3f}s (never started)"
    return f"{max(0.0, time.time() - obj.created_at):.3f}s so far (not started)"


def _container_block(title: str, specs: list[dict], statuses: list[dict]) -> None:
    if not specs:
        return
    click.echo(f"{title}:")
    by_name = {s["name"]: s for s in statuses}
    for spec in specs:
        status = by_name.get(spec["name"], {})
        click.echo(f"  {spec['name']}:")
        _line("Container ID", status.get("containerID") or "<none>", 4)
        _line("Image", spec.get("image") or "<none>", 4)
        _line("Image ID", status.get("imageID") or "<none>", 4)
        for key in ("command", "args"):  # one per line, as kubectl: an argument's spaces stay visible
            if spec.get(key):
                click.echo(f"    {key.capitalize()}:")
                for arg in spec[key]:
                    click.echo("      " + arg.replace("\n", "\n      "))
        if not spec.get("command") and not spec.get("args"):
            _line("Command", "<image default>", 4)
        state = status.get("state", {})
        for word, detail in state.items():
            _line("State", word.capitalize(), 4)
            for key in ("reason", "exitCode", "message", "startedAt", "finishedAt"):
                if key in detail:
                    _line(key[0].upper() + key[1:], detail[key], 6)
            if word == "terminated":
                _line("Duration", _seconds(detail.get("startedAt"), detail.get("finishedAt")), 6)
        if status.get("lastState"):
            last = next(iter(status["lastState"].values()))
            _line("Last State", f"{next(iter(status['lastState']))} (exit code {last.get('exitCode', '-')})", 4)
        _line("Ready", status.get("ready", False), 4)
        _line("Restart Count", status.get("restartCount", 0), 4)
        for kind in ("limits", "requests"):
            amounts = (spec.get("resources") or {}).get(kind) or {}
            if amounts:
                click.echo(f"    {kind.capitalize()}:")
                for resource, amount in amounts.items():
                    _line(resource, amount, 6)
        _environment(spec)
        mounts = spec.get("volumeMounts") or []
        click.echo("    Mounts:" + ("" if mounts else "             <none>"))
        for m in mounts:
            how = ("ro" if m.get("readOnly") else "rw") + (f',path="{m["subPath"]}"' if m.get("subPath") else "")
            click.echo(f"      {m['mountPath']} from {m['name']} ({how})")


def _environment(spec: dict[str, Any]) -> None:
    """As kubectl: values, or where they come from (resolved only inside the pod)."""
    env, sources = spec.get("env") or [], spec.get("envFrom") or []
    click.echo("    Environment:" + ("" if env else "        <none>"))
    for var in env:
        click.echo(f"      {var['name']}:  {_env_value(var)}")
    if sources:
        click.echo("    Environment Variables from:")
    for source in sources:
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        ref = source.get("configMapRef") or source.get("secretRef") or {}
        prefix = f" with prefix '{source['prefix']}'" if source.get("prefix") else ""
        click.echo(f"      {ref['name']}  {kind}{prefix}  Optional: {str(bool(ref.get('optional'))).lower()}")


def _env_value(var: dict[str, Any]) -> str:
    source = var.get("valueFrom")
    if not source:
        return str(var.get("value", "")).replace("\n", "\\n")
    if "fieldRef" in source:
        return f" ({source['fieldRef'].get('apiVersion', 'v1')}:{source['fieldRef']['fieldPath']})"
    if "resourceFieldRef" in source:
        return f" ({source['resourceFieldRef']['resource']})"
    for key, word in (("configMapKeyRef", "config map"), ("secretKeyRef", "secret")):
        if key in source:
            ref = source[key]
            where = "of" if key == "configMapKeyRef" else "in"
            return (f"<set to the key '{ref['key']}' {where} {word} '{ref['name']}'>  "
                    f"Optional: {str(bool(ref.get('optional'))).lower()}")
    return "<unknown source>"


def _events(state: State, obj: Obj) -> None:
    events = state.store.events(obj.uid)
    if not events:
        click.echo("Events:             <none>")
        return
    click.echo("Events:")
    now = time.time()
    print_table(["  TYPE", "REASON", "AGE", "MESSAGE"],
                [["  " + e.type, e.reason, age(e.at, now), e.message] for e in events])


def describe_pod(state: State, obj: Obj) -> None:
    spec, status = obj.manifest["spec"], obj.status
    _line("Status", pod_status_word(obj))
    _line("Phase", status.get("phase", "Pending"))
    if status.get("reason"):
        _line("Reason", status["reason"])
        _line("Message", status.get("message", ""))
    _line("Node", obj.internal.get("node", "<none>"))
    _line("Context", obj.context)
    facts = obj.internal.get("backend", {})
    for key, label in (("slurmJobId", "Slurm Job"), ("slurmState", "Slurm State"), ("slurmReason", "Slurm Reason"),
                       ("pilot", "Pilot")):
        if facts.get(key):
            _line(label, facts[key])
    _line("Run Directory", obj.internal.get("run", {}).get("dir", "<none>"))
    _line("Start Time", status.get("startTime", "<none>"))
    _line("Restart Policy", spec.get("restartPolicy", "Always"))
    _line("Queued", _queued(obj))
    if "checkpoints" in status:  # a pod in pipeline form: its shared emptyDir is checkpointed
        _line("Restored From", status.get("restoredFrom") or "<nothing: first attempt>")
        saved = status["checkpoints"]
        _line("Checkpoints", ", ".join(f"{level} seq {c['seq']} ({c['bytesWritten']} B written, {c['seconds']}s)"
                                       for level, c in sorted(saved.items())) or "<none yet>")
    for image in status.get("images", []):
        how = "pulled" if image["pulled"] else "from the node's cache"
        _line("Image", f"{image['image']} {image['digest'][:19]} {how} in {image['seconds']}s")
    _container_block("Init Containers", spec.get("initContainers", []), status.get("initContainerStatuses", []))
    _container_block("Containers", spec["containers"], status.get("containerStatuses", []))
    if status.get("conditions"):
        click.echo("Conditions:")
        for cond in status["conditions"]:
            click.echo(f"  {cond['type']:<18}{cond['status']}")
    if spec.get("volumes"):
        click.echo("Volumes:")
        for volume in spec["volumes"]:
            kinds = [k for k in volume if k != "name"]
            click.echo(f"  {volume['name']}: {', '.join(kinds)} {volume.get(kinds[0], '') if kinds else ''}")


def describe_job(state: State, obj: Obj) -> None:
    spec, status = obj.manifest["spec"], obj.status
    _line("Status", job_status_word(obj))
    _line("Completion Mode", spec.get("completionMode", "NonIndexed"))
    _line("Completions", spec.get("completions", "<unset>"))
    _line("Parallelism", spec.get("parallelism", 1))
    _line("Backoff Limit", spec.get("backoffLimit", 6))
    if "backoffLimitPerIndex" in spec:
        _line("Backoff Limit Per Index", spec["backoffLimitPerIndex"])
        _line("Max Failed Indexes", spec.get("maxFailedIndexes", "<unset>"))
    _line("Start Time", status.get("startTime", "<none>"))
    if status.get("completionTime"):
        _line("Completed At", status["completionTime"])
        _line("Duration", _seconds(status.get("startTime"), status["completionTime"]))
    _line("Pods Statuses", f"{status.get('active', 0)} Active / {status.get('succeeded', 0)} Succeeded / "
          f"{status.get('failed', 0)} Failed")
    if "completedIndexes" in status:
        _line("Completed Indexes", status["completedIndexes"] or "<none>")
    if "failedIndexes" in status:
        _line("Failed Indexes", status["failedIndexes"] or "<none>")
    for cond in status.get("conditions", []):
        _line("Condition", f"{cond['type']}={cond['status']} ({cond.get('reason', '')}: {cond.get('message', '')})")


def describe_pipeline(obj: Obj) -> None:
    spec, status = obj.manifest["spec"], obj.status
    workspace = spec.get("workspace", {})
    _line("Phase", status.get("phase", "Pending"))
    _line("Shards", f"{status.get('succeeded', 0)}/{spec.get('shards', 1)} succeeded, {status.get('failed', 0)} failed")
    _line("Workspace", f"{workspace.get('medium', 'Memory')}, sizeLimit {workspace.get('sizeLimit', 'none')}")
    _line("Checkpoints", ", ".join(f"{k}={v}" for k, v in spec.get("checkpoint", {}).items()) or "defaults")
    _line("Backoff Limit", spec.get("backoffLimit", 6))
    timings = status.get("timings", {})
    _line("Timings", " ".join(f"{k}={v:g}s" for k, v in timings.items()) or "-")
    for shard in status.get("shards", []):
        detail = ", ".join(f"{k} {shard[k]}" for k in ("node", "jobId", "restoredFrom", "reason") if shard.get(k))
        click.echo(f"Shard {shard['index']}: {shard['phase']} (attempts {shard['attempts']}"
                   f"{', ' + detail if detail else ''})")
        if shard.get("message"):  # why it waits (Slurm's pending reason, a missing input) or why it failed
            _line("Message", shard["message"], 2)
        rows = [[s["name"], _step_state(s), str(s.get("attempts", 0)),
                 _seconds(s.get("startedAt"), s.get("finishedAt")) if s.get("startedAt") else "-",
                 s.get("restoredFrom") or "-", str(s.get("generation") or "-")]
                for s in status.get("steps", []) if s.get("shard") == shard["index"]]
        print_table(["STEP", "STATE", "ATTEMPTS", "DURATION", "RESTORED FROM", "GENERATION"], rows)
        for step in status.get("steps", []):  # why a step waits, failed or was stopped
            if step.get("shard") == shard["index"] and step.get("message") and step.get("phase") != "Succeeded":
                _line(f"Step {step['name']}", step["message"], 2)


def _step_state(step: dict[str, Any]) -> str:
    """A step's phase, with why it waits or ended so (`Pending (BackOff)`: its retry is due; `Failed (Stopped)`: stopped
    because another step failed)."""
    phase = step.get("phase", "Pending")
    return f"{phase} ({step['reason']})" if step.get("reason") and phase != "Succeeded" else phase


def describe_workflow(state: State, obj: Obj) -> None:
    """`argo get`'s page (header and node tree), then the events as for every kind."""
    from podline.cli import workflow_view

    for line in workflow_view.describe_lines(obj, time.time()):
        click.echo(line)
    click.echo()
    _events(state, obj)


def describe_object(state: State, obj: Obj) -> None:
    if obj.kind == "Workflow":
        describe_workflow(state, obj)
        return
    meta = obj.manifest.get("metadata", {})
    _line("Name", obj.name)
    if obj.namespace:  # cluster-scoped objects have none
        _line("Namespace", obj.namespace)
    _line("Kind", obj.kind)
    _line("UID", obj.uid)
    _line("Created", rfc3339(obj.created_at))
    _line("Labels", ", ".join(f"{k}={v}" for k, v in meta.get("labels", {}).items()) or "<none>")
    _line("Annotations", ", ".join(f"{k}={v}" for k, v in meta.get("annotations", {}).items()) or "<none>")
    if obj.owner_uid:
        owner = state.store.get_uid(obj.owner_uid)
        _line("Controlled By", f"{owner.kind}/{owner.name}" if owner else obj.owner_uid)
    if obj.kind == "Pod":
        describe_pod(state, obj)
    elif obj.kind == "Job":
        describe_job(state, obj)
    elif obj.kind == "Pipeline":
        describe_pipeline(obj)
    elif obj.kind == "Dataset":
        spec = obj.manifest.get("spec", {})
        for label, key, default in (("Source", "source", ""), ("Include", "include", ["<all files>"]),
                                    ("Exclude", "exclude", ["<none>"]), ("Shard By", "shardBy", "files")):
            value = spec.get(key) or default
            _line(label, ", ".join(value) if isinstance(value, list) else value)
    elif obj.kind in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
        spec = obj.manifest.get("spec", {})
        _line("Entrypoint", spec.get("entrypoint", "<none>"))
        _line("Templates", ", ".join(t["name"] for t in spec.get("templates", [])) or "<none>")
    elif obj.kind == "ConfigMap":
        _line("Data", ", ".join(sorted(obj.manifest.get("data", {}))) or "<none>")
    elif obj.kind == "Secret":
        data = {**obj.manifest.get("data", {}), **obj.manifest.get("stringData", {})}
        _line("Type", obj.manifest.get("type", "Opaque"))
        _line("Data", ", ".join(f"{k} (hidden)" for k in sorted(data)) or "<none>")
    _events(state, obj)
