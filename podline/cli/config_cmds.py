"""`podline config …`: manage named backend contexts in `$PODLINE_HOME/config.yaml`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from podline.api.errors import ManifestError, format_path
from podline.cli.common import State, fail, pass_state, print_table

if TYPE_CHECKING:
    from podline.api.config import Config


def read(state: State) -> Config:
    from podline.api.config import load_config  # pydantic: imported when a config command runs, not at start-up

    try:
        return load_config(state.home)
    except ManifestError as exc:
        fail(str(exc), 2)


@click.group()
def config() -> None:
    """Manage contexts (which backend, runtime and Slurm placement to use)."""


@config.command("set-context")
@click.argument("name")
@click.option("--backend", type=click.Choice(["local", "slurm"]))
@click.option("--partition")
@click.option("--account")
@click.option("--qos")
@click.option("--shared-dir")
@click.option("--scratch-dir")
@click.option("--runtime", type=click.Choice(["host", "bwrap", "apptainer", "singularity"]),
              help="singularity is the apptainer runtime (either binary)")
@click.option("--time-limit")
@click.option("--image-cache", help="node-local directory of unpacked images (default: <scratch-dir>/images)")
@click.option("--registry-auth-file", help="registry credentials, containers-auth.json / docker config.json format")
@click.option("--insecure-registry", "insecure_registries", multiple=True,
              help="host[:port] spoken to over plain HTTP (loopback always is); repeatable")
@pass_state
def set_context(state: State, name: str, **fields: str | tuple[str, ...] | None) -> None:
    """Create or update context NAME (only the given fields change)."""
    from pydantic import ValidationError

    from podline.api.config import Config, Context, save_config

    cfg = read(state)
    current = cfg.contexts.get(name, Context()).model_dump()
    current.update({k: list(v) if isinstance(v, tuple) else v for k, v in fields.items() if v not in (None, ())})
    try:
        cfg.contexts[name] = Context.model_validate(current)
        Config.model_validate(cfg.model_dump())
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = "--" + format_path(first["loc"][:1]).replace("_", "-")
        flag = {"--insecure-registries": "--insecure-registry"}.get(flag, flag)
        fail(f"context {name}: {flag}: {first['msg'].removeprefix('Value error, ')}", 2)
    save_config(state.home, cfg)
    click.echo(f'Context "{name}" set.')


@config.command("use-context")
@click.argument("name")
@pass_state
def use_context(state: State, name: str) -> None:
    from podline.api.config import save_config

    cfg = read(state)
    if name not in cfg.contexts:
        fail(f'no context exists with the name: "{name}"', 2)
    cfg.current_context = name
    save_config(state.home, cfg)
    click.echo(f'Switched to context "{name}".')


@config.command("current-context")
@pass_state
def current_context(state: State) -> None:
    click.echo(read(state).current_context)


@config.command("get-contexts")
@pass_state
def get_contexts(state: State) -> None:
    cfg = read(state)
    rows = [["*" if name == cfg.current_context else "", name, ctx.backend, ctx.runtime, ctx.partition or "",
             ctx.shared_dir or ""] for name, ctx in sorted(cfg.contexts.items())]
    print_table(["CURRENT", "NAME", "BACKEND", "RUNTIME", "PARTITION", "SHARED DIR"], rows)
