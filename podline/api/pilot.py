"""`podline.io/pilot`: run a Workflow's step pods inside one Slurm allocation (a pilot job).

Why an annotation: Argo has no word for it, and a manifest written for Argo must still run unchanged; on
Slurm the annotation only changes where the steps run, never what they do. Its value is `"true"` (size the
allocation for the workflow's largest step) or the allocation's size in Kubernetes quantities, e.g.
`"cpu=8,memory=32Gi,nvidia.com/gpu=1,time=4h,idle=2m"`; `time` is the allocation's walltime (default: the
context's time limit), `idle` how long an allocation with nothing to run is kept before it is given back
(default 60 s; when the workflow ends it is given back at once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from podline.api.quantity import MAX_CPU, MAX_GPU, MAX_MEMORY, parse_quantity

PILOT = "podline.io/pilot"
# Set by the controller on a step pod (never by hand): the pilot it runs in, and that pilot's size.
PILOT_ID = "podline.io/pilot-id"
PILOT_SIZE = "podline.io/pilot-size"
DEFAULT_IDLE = 60
MAX_SECONDS = 365 * 24 * 3600
_DURATION = re.compile(r"(\d{1,8})(s|m|h|d)?", re.ASCII)
_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class PilotSize:
    """An allocation's size: cpu in millicores, memory in bytes, whole GPUs, walltime and idle seconds; a cpu of
    0 is "size it from the steps", a memory of 0 "Slurm's default, not counted", a time of 0 "the context's"."""

    cpu: int = 0
    memory: int = 0
    gpu: int = 0
    idle: int = DEFAULT_IDLE
    time: int = 0

    def render(self) -> str:
        return (f"cpu={self.cpu}m,memory={self.memory},nvidia.com/gpu={self.gpu},idle={self.idle}s"
                + (f",time={self.time}s" if self.time else ""))

    def fits(self, cpu: int, memory: int, gpu: int) -> bool:
        """Whether a pod needing this much can ever run inside (an unset memory size takes any pod)."""
        return cpu <= self.cpu and (not self.memory or memory <= self.memory) and gpu <= self.gpu


def parse_pilot(value: str) -> PilotSize | None:
    """None for "false"/"" (no pilot); a PilotSize with cpu 0 for "true" (to be sized); ValueError if malformed."""
    text = value.strip()
    if text.lower() in ("", "false"):
        return None
    if text.lower() == "true":
        return PilotSize()
    fields: dict[str, int] = {}
    for part in text.split(","):
        key, sep, raw = part.strip().partition("=")
        if not sep or key in fields:
            raise ValueError(f"expected \"true\" or key=value pairs such as cpu=8,memory=32Gi, got {part.strip()!r}"
                             if not sep else f"{key} is given twice")
        fields[key] = _field(key, raw.strip())
    if "cpu" not in fields:
        raise ValueError("cpu=N is required when the size is given")
    return PilotSize(cpu=fields["cpu"], memory=fields.get("memory", 0), gpu=fields.get("nvidia.com/gpu", 0),
                     idle=fields.get("idle", DEFAULT_IDLE), time=fields.get("time", 0))


def _field(key: str, raw: str) -> int:
    if key in ("idle", "time"):
        match = _DURATION.fullmatch(raw)
        seconds = int(match[1]) * _UNITS[match[2]] if match else -1
        if not (0 if key == "idle" else 60) <= seconds <= MAX_SECONDS:
            raise ValueError(f"{key} must be a duration such as {'30s, ' if key == 'idle' else ''}5m, 4h or 2d "
                             f"({'at least a minute, ' if key == 'time' else ''}at most a year), got {raw!r}")
        return seconds
    limits = {"cpu": MAX_CPU, "memory": MAX_MEMORY, "nvidia.com/gpu": MAX_GPU}
    if key not in limits:
        raise ValueError(f"unknown key {key!r} (known: cpu, memory, nvidia.com/gpu, time, idle)")
    try:
        amount = parse_quantity(raw)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None
    if not 0 <= amount <= limits[key] or (key == "cpu" and amount <= 0):
        raise ValueError(f"{key} must be {'above 0' if key == 'cpu' else 'at least 0'} and at most "
                         f"{limits[key]}, got {raw!r}")
    if key == "cpu":
        return int((amount * 1000).to_integral_value(rounding="ROUND_CEILING"))
    if key == "nvidia.com/gpu" and amount != amount.to_integral_value():
        raise ValueError(f"nvidia.com/gpu must be a whole number, got {raw!r}")
    return int(amount.to_integral_value(rounding="ROUND_CEILING"))
