"""Entry point of the `podline` command: global options and the verb table."""

from __future__ import annotations

import click

from podline import __version__
from podline.cli.apply_cmd import apply
from podline.cli.common import State, set_namespace
from podline.cli.config_cmds import config
from podline.cli.image_cmds import image
from podline.cli.lifecycle import down, status, up
from podline.cli.render_cmd import render
from podline.cli.resources import delete, describe, get, run, scale
from podline.cli.wait_cmd import wait
from podline.cli.watch import logs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="podline")
@click.option("--context", default=None, help="Backend context from $PODLINE_HOME/config.yaml.")
@click.option("-n", "--namespace", default=None, help="Namespace  [default: default]")
@click.pass_context
def cli(ctx: click.Context, context: str | None, namespace: str | None) -> None:
    """Run Kubernetes-style workloads on Slurm or on this machine."""
    ctx.obj = State(context=context)
    if context is not None and ctx.invoked_subcommand != "config":
        ctx.obj.check_context()  # a mistyped --context is exit 2 for reads too, as in kubectl
    if namespace is not None:
        set_namespace(ctx.obj, namespace)


for command in (apply, get, describe, delete, run, scale, logs, wait, up, down, status, config, render, image):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="podline")
