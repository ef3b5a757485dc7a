"""Where the suite's time goes, per pytest-xdist worker: is it bound by one worker's queue (the Slurm files run
on one) or by the machine (all workers busy to the end)?

Record: `.venv/bin/python -m pytest -q -n 3 --dist loadgroup -p tests.tools.suite_timing` (each worker appends
one JSON line per test phase to $PODLINE_SUITE_TIMING, default /tmp/podline-suite-timing/<worker>.jsonl; remove
the directory first). Report: `.venv/bin/python -m tests.tools.suite_timing [DIR]` prints when each worker
ended and how busy it was, and the test files that took longest in total.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(os.environ.get("PODLINE_SUITE_TIMING", "/tmp/podline-suite-timing"))


def pytest_runtest_logreport(report: Any) -> None:
    """A pytest hook: one line per setup/call/teardown (node id, phase, start, stop)."""
    if getattr(report, "node", None) is not None:
        return  # the xdist controller, told what a worker ran: the worker has written it
    DEFAULT_DIR.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(DEFAULT_DIR / f"{worker}.jsonl", "a") as out:
        out.write(json.dumps([report.nodeid, report.when, report.start, report.stop]) + "\n")


def summary(directory: Path) -> str:
    """Per worker: end and busy seconds from the first test's start; then the 15 files taking longest."""
    rows = [(path.stem, *json.loads(line)) for path in sorted(directory.glob("*.jsonl"))
            for line in path.read_text().splitlines()]
    if not rows:
        return f"no timings in {directory}"
    start = min(row[3] for row in rows)
    by_worker: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    per_file: Counter[str] = Counter()
    for row in rows:
        by_worker[row[0]].append(row)
        per_file[row[1].split("::")[0]] += row[4] - row[3]
    lines = [f"{worker}: ended at {max(r[4] for r in mine) - start:.0f} s, busy {sum(r[4] - r[3] for r in mine):.0f} s"
             for worker, mine in sorted(by_worker.items())]
    lines += [f"{seconds:7.1f} s  {name}" for name, seconds in per_file.most_common(15)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR))
