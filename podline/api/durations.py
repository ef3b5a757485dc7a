"""Go durations as Kubernetes and Argo read them (`30s`, `1m30s`, `500ms`; a bare whole number is seconds),
model-free so that the CLI (`wait --timeout`) reads them without importing the models."""

from __future__ import annotations

import re
from decimal import Decimal

# ASCII digits only, as Go and Kubernetes read them
DURATION = re.compile(r"(\d+|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)", re.ASCII)
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", re.ASCII)
_UNIT_SECONDS = {"ns": Decimal("1e-9"), "us": Decimal("1e-6"), "µs": Decimal("1e-6"), "ms": Decimal("1e-3"),
                 "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}


def duration_seconds(value: str) -> Decimal:
    """Seconds in a duration that DURATION matches (exactly, whatever its number of digits)."""
    if value.isdigit():
        return Decimal(value)
    return sum((Decimal(number) * _UNIT_SECONDS[unit] for number, unit in DURATION_PART.findall(value)), Decimal(0))
