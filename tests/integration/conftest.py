"""Fixtures the integration files share: a `slurm` context on the test cluster's `debug` partition."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.integration.test_slurm_pods import cancel_leftovers


@pytest.fixture
def slurm(cli: Cli, tmp_path: Path) -> Iterator[Cli]:
    """A `slurm` context (partition debug, shared directory `tmp_path/shared`); whatever a test leaves in the
    queue is cancelled after it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    cli("config", "set-context", "hpc", "--backend", "slurm", "--partition", "debug", "--shared-dir", str(shared))
    cli("config", "use-context", "hpc")
    yield cli
    cancel_leftovers(shared)
