"""up, down, status: the background controller."""

from __future__ import annotations

import click

from podline.cli.common import State, fail, pass_state
from podline.controller import daemon


@click.command()
@pass_state
def up(state: State) -> None:
    """Start the background controller (apply starts it too)."""
    try:
        pid = daemon.start(state.home)
    except RuntimeError as exc:
        fail(str(exc))
    click.echo(f"controller running (pid {pid}), state in {state.home}")


@click.command()
@pass_state
def down(state: State) -> None:
    """Stop the background controller; running pods keep running and are adopted by the next one."""
    pid = daemon.stop(state.home)
    click.echo("controller stopped" if pid else "controller was not running")


@click.command()
@pass_state
def status(state: State) -> None:
    """Is the controller running, and how many objects are in which phase."""
    pid = daemon.running_pid(state.home)
    click.echo(f"controller: {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")
    click.echo(f"home:       {state.home}")
    counts: dict[str, int] = {}
    for obj in state.store.list():
        phase = obj.status.get("phase") or ("Done" if obj.settled else "Active")
        key = f"{obj.kind}/{phase}"
        counts[key] = counts.get(key, 0) + 1
    for key, count in sorted(counts.items()):
        click.echo(f"  {key}: {count}")
