"""get, describe, delete, run, scale: the verbs that read desired state or change it by name."""

from __future__ import annotations

import json
import time

import click

from podline.api.errors import ManifestError
from podline.api.names import CLUSTER_SCOPED
from podline.cli.apply_cmd import apply_objects, load_or_exit
from podline.cli.common import (
    State,
    fail,
    kind_or_exit,
    namespace_option,
    pass_state,
    recursive_option,
    selector_or_exit,
    split_ref,
)
from podline.cli.render import show_objects
from podline.store import Obj


def _select(state: State, kind: str, names: tuple[str, ...], selector: str | None,
            every_namespace: bool = False) -> tuple[list[Obj], list[str]]:
    """The objects named (and a not-found message per missing name), or those of the kind whose labels match
    the -l selector (kubectl's grammar), or all of the kind (in every namespace with `every_namespace`)."""
    wanted = None if selector is None else selector_or_exit(selector)
    if names:
        if wanted is not None:
            fail("name cannot be provided when a selector is specified", 2)
        if every_namespace:
            fail("a resource cannot be retrieved by name across all namespaces", 2)
        found = [(n, state.store.get(kind, state.namespace_of(kind), n)) for n in names]
        return [o for _, o in found if o is not None], [_not_found(kind, n) for n, o in found if o is None]
    objs = state.store.list(kind=kind, namespace=None if every_namespace else state.namespace_of(kind))
    return (objs if wanted is None else [o for o in objs if wanted.matches(o.labels)]), []


def _fail_missing(missing: list[str]) -> None:
    """As kubectl: what exists was handled; each missing name is an error, and the command exits 1."""
    if missing:
        for message in missing[:-1]:
            click.echo(f"error: {message}", err=True)
        fail(missing[-1], 1)


def _get_several(kinds: list[str], state: State, names: tuple[str, ...], output: str | None, selector: str | None,
                 every_namespace: bool, show_labels: bool) -> None:
    """As kubectl's `get pods,jobs`: one table per kind that has objects (or one List of them all)."""
    found, missing = [], []
    for kind in dict.fromkeys(kinds):
        objs, lacking = _select(state, kind, names, selector, every_namespace and kind not in CLUSTER_SCOPED)
        found.append((kind, objs))
        missing += lacking
    if output in ("json", "yaml"):
        show_objects(state.store, "List", [o for _, objs in found for o in objs], output, single=False)
    elif not any(objs for _, objs in found):
        click.echo("No resources found.", err=True)
    else:
        shown = [(kind, objs) for kind, objs in found if objs]
        for i, (kind, objs) in enumerate(shown):
            if i and output != "name":
                click.echo()
            show_objects(state.store, kind, objs, output, single=False,
                         every_namespace=every_namespace and kind not in CLUSTER_SCOPED, show_labels=show_labels)
    _fail_missing(missing)


@click.command()
@namespace_option
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@click.option("-l", "--selector", default=None,
              help="Label selector, as kubectl's: k=v, k!=v, 'k in (a,b)', 'k notin (a,b)', k, !k; ',' is AND.")
@click.option("-A", "--all-namespaces", "every_namespace", is_flag=True, help="List the kind in every namespace.")
@click.option("--show-labels", is_flag=True, help="A last column with each object's labels.")
@pass_state
def get(state: State, kind: str, names: tuple[str, ...], output: str | None, selector: str | None,
        every_namespace: bool, show_labels: bool) -> None:
    """List objects of a kind (or of several: `pods,jobs`), or show those named."""
    if "," in kind and "/" not in kind:
        _get_several([kind_or_exit(k) for k in kind.split(",") if k], state, names, output, selector, every_namespace,
                     show_labels)
        return
    if "/" in kind and not names:
        kind, name = split_ref(kind)
        names = (name,)
    else:
        kind = kind_or_exit(kind)
    every_namespace = every_namespace and kind not in CLUSTER_SCOPED
    objs, missing = _select(state, kind, names, selector, every_namespace)
    show_objects(state.store, kind, objs, output, single=len(names) == 1, every_namespace=every_namespace,
                 namespace=state.namespace, show_labels=show_labels)
    _fail_missing(missing)


@click.command()
@namespace_option
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-l", "--selector", default=None, help="Describe the objects of KIND whose labels match.")
@pass_state
def describe(state: State, kind: str, names: tuple[str, ...], selector: str | None) -> None:
    """Show an object's spec, status, per-container timings and events (each of KIND's when none is named)."""
    from podline.cli.describe import describe_object

    if "/" in kind and not names:
        kind, name = split_ref(kind)
        names = (name,)
    else:
        kind = kind_or_exit(kind)
    objs, missing = _select(state, kind, names, selector)
    if not objs and not missing:
        where = "" if kind in CLUSTER_SCOPED else f" in {state.namespace} namespace"
        click.echo(f"No resources found{where}.", err=True)
    for i, obj in enumerate(objs):
        if i:
            click.echo()
        describe_object(state, obj)
    _fail_missing(missing)


def _wait_gone(state: State, objs: list[Obj], timeout: float) -> None:
    deadline = time.time() + timeout
    pending = list(objs)
    while pending and time.time() < deadline:
        pending = [o for o in pending if state.store.get_uid(o.uid) is not None]
        if pending:
            time.sleep(0.05)
    if pending:
        fail(f"timed out waiting for deletion of {', '.join(o.name for o in pending)}", 1)


def _not_found(kind: str, name: str) -> str:
    return f'{kind.lower()}s "{name}" not found'


def _targets_in_files(state: State, files: tuple[str, ...]) -> tuple[list[Obj], list[str]]:
    """The stored objects the manifests name, and a message for each one that does not exist."""
    targets: list[Obj] = []
    missing: list[str] = []
    for item in load_or_exit(files, state):
        if item.obj.metadata.name is None:
            click.echo(f"warning: {item.describe()}: has only a generateName; delete the objects it made "
                       "by name", err=True)
            continue
        found = state.store.get(item.obj.kind, item.obj.metadata.namespace, item.obj.metadata.name or "")
        if found is None:
            missing.append(_not_found(item.obj.kind, item.obj.metadata.name))
        else:
            targets.append(found)
    return targets, missing


def _targets_named(state: State, kind: str, names: tuple[str, ...], selector: str | None,
                   every: bool) -> tuple[list[Obj], list[str]]:
    """`delete KIND/NAME`, `delete KIND NAME…`, `delete KIND -l SELECTOR` or `delete KIND --all`."""
    if "/" in kind and not names:
        kind, name = split_ref(kind)
        names = (name,)
    else:
        kind = kind_or_exit(kind)
    if not names and selector is None and not every:
        fail("resource(s) were provided, but no name was specified (give NAME, -l SELECTOR or --all)", 2)
    if every and (names or selector is not None):
        fail("--all cannot be combined with names or a selector", 2)
    return _select(state, kind, names, selector)


@click.command()
@namespace_option
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@click.option("-f", "--filename", "files", multiple=True, help="Delete the objects in these manifests.")
@recursive_option
@click.option("-l", "--selector", default=None, help="Delete the objects of KIND whose labels match.")
@click.option("--all", "every", is_flag=True, help="Delete every object of KIND in the namespace.")
@click.option("--wait", type=click.BOOL, default=True, is_flag=False, flag_value=True,
              help="Wait until the objects are gone (kubectl's --wait=false returns at once).")
@click.option("--no-wait", "no_wait", is_flag=True, hidden=True)
@click.option("--timeout", type=float, default=120.0)
@click.option("--ignore-not-found", is_flag=True, help="Exit 0 when an object does not exist (as kubectl's).")
@pass_state
def delete(state: State, kind: str | None, names: tuple[str, ...], files: tuple[str, ...], selector: str | None,
           every: bool, wait: bool, no_wait: bool, timeout: float, ignore_not_found: bool) -> None:
    """Delete objects; running work is stopped (its processes are terminated).

    As kubectl: the objects that exist are deleted, and a missing one is an error (exit 1) after them,
    unless --ignore-not-found."""
    if files and (kind or selector is not None or every):
        fail("give either -f FILE or KIND with NAME, -l SELECTOR or --all", 2)
    if files:
        targets, missing = _targets_in_files(state, files)
    elif kind:
        targets, missing = _targets_named(state, kind, names, selector, every)
    else:
        fail("give KIND NAME, KIND -l SELECTOR, KIND --all or -f FILE", 2)
    if targets:
        with state.store.tx():
            for obj in targets:
                state.store.mark_deleted(obj.uid)
        state.ensure_controller()
        if wait and not no_wait:
            _wait_gone(state, targets, timeout)
    for obj in targets:
        click.echo(f'{obj.kind.lower()} "{obj.name}" deleted')
    if not targets and not missing and not files:
        click.echo("No resources found", err=True)
    if not ignore_not_found:
        _fail_missing(missing)


@click.command()
@namespace_option
@click.argument("name")
@click.option("--image", required=True)
@click.option("--restart", type=click.Choice(["Never", "OnFailure", "Always"]), default="Never",
              help="The pod's restartPolicy (default Never: a one-off batch pod; kubectl's default is Always).")
@click.option("--env", "envs", multiple=True, help="KEY=VALUE, repeatable.")
@click.option("-l", "--labels", default="", help="KEY=VALUE,… (default run=NAME), as kubectl run.")
@click.option("--command", "as_command", is_flag=True,
              help="The words after -- are the container's command (else its args, after the image's ENTRYPOINT).")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
@pass_state
def run(state: State, name: str, image: str, restart: str, envs: tuple[str, ...], labels: str, as_command: bool,
        words: tuple[str, ...]) -> None:
    """Run a one-off pod: podline run NAME --image IMAGE [--command] -- ARGS... (as kubectl run)."""
    env = []
    for item in envs:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--env {item!r}: expected KEY=VALUE", 2)
        env.append({"name": key, "value": value})
    container = {"name": name[:63].strip("-.") or "main", "image": image, "env": env,
                 "command" if as_command else "args": list(words)}
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": state.namespace,
                "labels": _run_labels(labels, name)}, "spec": {"restartPolicy": restart, "containers": [container]}}
    from podline.api.loader import build_object

    try:
        loaded = build_object(manifest, "<podline run>", 1)
    except ManifestError as exc:
        fail(str(exc), 2)
    if state.store.get("Pod", state.namespace, name) is not None:  # run creates; it never updates (kubectl's)
        fail(f'pods "{name}" already exists', 1)
    apply_objects(state, [loaded])


def _run_labels(text: str, name: str) -> dict[str, str]:
    if not text:
        return {"run": name[:63]} if len(name) <= 63 else {}
    labels = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--labels {text!r}: expected KEY=VALUE,…", 2)
        labels[key] = value
    return labels


@click.command()
@namespace_option
@click.argument("ref")
@click.option("--parallelism", type=int, default=None, help="For a job.")
@click.option("--shards", type=int, default=None, help="For a pipeline (it can only grow).")
@pass_state
def scale(state: State, ref: str, parallelism: int | None, shards: int | None) -> None:
    """Change a job's parallelism or a pipeline's shards: scale job/NAME --parallelism N."""
    kind, name = split_ref(ref)
    field, value = ("parallelism", parallelism) if kind == "Job" else ("shards", shards)
    if kind not in ("Job", "Pipeline") or value is None:
        fail("use: scale job/NAME --parallelism N | scale pipeline/NAME --shards N", 2)
    manifest = json.loads(json.dumps(state.find(kind, name).manifest))
    manifest["spec"][field] = value
    from podline.api.loader import build_object

    try:
        loaded = build_object(manifest, f"<scale {kind.lower()}/{name}>", 1)
    except ManifestError as exc:
        fail(str(exc), 2)
    apply_objects(state, [loaded], said="scaled")
