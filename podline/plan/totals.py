"""A pod's effective resources from its containers', as the Kubernetes scheduler adds them up.

Init containers run one at a time before the containers, so the pod needs the largest of them or the sum of
the containers, whichever is more. A sidecar (an init container with `restartPolicy: Always`) keeps running
from its start to the pod's end: it adds to every init container after it and to the containers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

KEYS = ("cpu", "memory", "gpu")


def pod_total(inits: Iterable[tuple[bool, Mapping[str, int]]], mains: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """`inits`: (is a sidecar, its amounts) in order; `mains`: the containers' amounts."""
    sidecars = dict.fromkeys(KEYS, 0)
    peak = dict.fromkeys(KEYS, 0)
    for is_sidecar, amounts in inits:
        if is_sidecar:
            sidecars = {k: sidecars[k] + amounts.get(k, 0) for k in KEYS}
            need = sidecars
        else:
            need = {k: sidecars[k] + amounts.get(k, 0) for k in KEYS}
        peak = {k: max(peak[k], need[k]) for k in KEYS}
    running = {k: sidecars[k] + sum(m.get(k, 0) for m in mains) for k in KEYS}
    return {k: max(peak[k], running[k]) for k in KEYS}
