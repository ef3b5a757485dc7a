"""`podline image load | ls | rm`: the image store of the current context (see podline.images.store).

A loaded image is then named in manifests by its plain `name:tag`; every node reads the store from the
context's shared directory and unpacks the image once into its node-local cache.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
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


_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EINTR, errno.ENOMEM, errno.ESTALE})


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """One line and an exit code instead of a traceback when the store cannot be used.

    A store refused as untrusted (another owner, writable by others: ImageError) or one this user cannot
    use (the shared directory's permissions, a file where a directory belongs, a read-only mount) is a
    setup problem the user must fix: exit 2, as for bad input. A full disk or an I/O error is a failure of
    the command, which may succeed later: exit 1.
    """
    from podline.images import ImageError

    try:
        yield
    except ImageError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"image store: {where}{exc.strerror or exc}", 1 if exc.errno in _FAILURES else 2)


@click.group()
def image() -> None:
    """Load images from archives into the context's image store, list and remove them (like `kind load`)."""


@image.command("load")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="NAME[:TAG] to run it by (default: the names a docker archive carries)")
@pass_state
def load(state: State, path: Path, name: str | None) -> None:
    """Load a docker-archive or oci-archive tarball, or an OCI layout directory."""
    if not path.exists():
        fail(f"{path}: no such file or directory", 2)
    with _store_errors():
        names = _store(state).load(path.resolve(), name)
    for loaded in names:
        click.echo(f"image/{loaded} loaded")


@image.command("ls")
@pass_state
def ls(state: State) -> None:
    """The images of the store: name, what it stands for, size, when loaded."""
    from podline.cli.render import age

    with _store_errors():
        stored = _store(state).list()
    rows = [[s.name, s.reference.split(":", 1)[0], f"{s.size / 2**20:.1f}Mi", age(s.loaded)] for s in stored]
    print_table(["NAME", "FORMAT", "SIZE", "LOADED"], rows)


@image.command("rm")
@click.argument("names", nargs=-1, required=True)
@pass_state
def rm(state: State, names: tuple[str, ...]) -> None:
    """Remove names from the store (an archive goes with its last name)."""
    missing: list[str] = []
    with _store_errors():  # each removal is reported as it happens: a later failure must not hide it
        store = _store(state)
        for name in names:
            if store.remove(name):
                click.echo(f'image "{name}" removed')
            else:
                missing.append(name)
    if missing:
        fail(f"image {', '.join(repr(m) for m in missing)} not found in the image store", 1)
