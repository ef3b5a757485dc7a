"""Fixtures the integration files share: a `slurm` context on the test cluster's `debug` partition, and the
Slurm time-limit test's pod, started early (see test_slurm_time_limit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SLURM_FILES, Cli, cli_in
from tests.integration.test_slurm_pods import cancel_leftovers
from tests.integration.test_slurm_time_limit import OVERTIME, SPARE_REASON


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


@pytest.fixture(scope="session")
def overtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A home whose context is the spare node's partition, with pod `overtime` applied: it runs until Slurm's
    time limit stops it, 60-90 s later. Stopped and cleaned up at the end of the session."""
    tmp_path = tmp_path_factory.mktemp("overtime")
    shared = tmp_path / "shared"
    shared.mkdir()
    for cli in cli_in(tmp_path):
        cli("config", "set-context", "hpc", "--backend", "slurm", "--partition", "spare", "--shared-dir", str(shared))
        cli("config", "use-context", "hpc")
        cli.apply(OVERTIME)
        try:
            yield cli
        finally:
            cancel_leftovers(shared)


@pytest.fixture(autouse=True)
def _start_the_time_limit_test_early(request: pytest.FixtureRequest) -> None:
    """The first Slurm test of a run starts the time-limit test's pod, so that its minute and more of waiting
    overlaps the other Slurm tests (they run one after another on one worker; it runs on the spare node)."""
    if request.node.path.name in SLURM_FILES and SPARE_REASON is None:
        request.getfixturevalue("overtime")
