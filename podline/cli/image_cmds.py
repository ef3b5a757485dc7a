"""`podline image load | ls | rm`: the image store of the current context (see podline.images.store).

A loaded image is then named in manifests by its plain `name:tag`; every node reads the store from the
context's shared directory and unpacks the image once into its node-local cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from podline.cli.common import State, fail, pass_state, print_table

if TYPE_CHECKING:
    from podline.images.store import ImageStore


def _store(state: State) -> ImageStore:
    from podline.api.config import image_store, load_config
    from podline.images.store import ImageStore

    name = state.check_context()
    return ImageStore(image_store(state.home, load_config(state.home).contexts[name]))


@click.group()
def image() -> None:
    """Load images from archives into the context's image store, list and remove them (like `kind load`)."""


@image.command("load")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="NAME[:TAG] to run it by (default: the names a docker archive carries)")
@pass_state
def load(state: State, path: Path, name: str | None) -> None:
    """Load a docker-archive or oci-archive tarball, or an OCI layout directory."""
    from podline.images import ImageError

    if not path.exists():
        fail(f"{path}: no such file or directory", 2)
    try:
        names = _store(state).load(path.resolve(), name)
    except ImageError as exc:
        fail(str(exc), 2)
    for loaded in names:
        click.echo(f"image/{loaded} loaded")


@image.command("ls")
@pass_state
def ls(state: State) -> None:
    """The images of the store: name, what it stands for, size, when loaded."""
    from podline.cli.render import age

    rows = [[s.name, s.reference.split(":", 1)[0], f"{s.size / 2**20:.1f}Mi", age(s.loaded)]
            for s in _store(state).list()]
    print_table(["NAME", "FORMAT", "SIZE", "LOADED"], rows)


@image.command("rm")
@click.argument("names", nargs=-1, required=True)
@pass_state
def rm(state: State, names: tuple[str, ...]) -> None:
    """Remove names from the store (an archive goes with its last name)."""
    store = _store(state)
    missing = [n for n in names if not store.remove(n)]
    for name in names:
        if name not in missing:
            click.echo(f'image "{name}" removed')
    if missing:
        fail(f"image {', '.join(repr(m) for m in missing)} not found in the image store", 1)
