"""Index sets as text, the way Kubernetes (completedIndexes) and Slurm (--array) both write them."""

from __future__ import annotations


def compress(indexes: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] → '0-2,5,7-8' (sorted, duplicates dropped)."""
    parts, ordered = [], sorted(set(indexes))
    if ordered and ordered[-1] - ordered[0] == len(ordered) - 1:  # one run (the usual case): no scan
        return str(ordered[0]) if len(ordered) == 1 else f"{ordered[0]}-{ordered[-1]}"
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


MAX_EXPANDED = 1_000_000  # far above Slurm's MaxArraySize: a larger set is a misread, not an array


def expand(text: str) -> list[int]:
    """'0-3,7,9-10%4' → [0, 1, 2, 3, 7, 9, 10]; Slurm's step notation too: '0-12:4' → [0, 4, 8, 12]
    (squeue compresses a pending array this way). A %throttle is ignored. Malformed text raises ValueError,
    so that a caller reading a foreign source (squeue) can skip the one piece it cannot read."""
    out: list[int] = []
    for part in text.split("%", 1)[0].split(","):
        if part:
            span, _, step_text = part.partition(":")
            low, dash, high = span.partition("-")
            start, stop, step = int(low), int(high) if dash else int(low), int(step_text or 1)
            if start < 0 or stop < start or step < 1 or (stop - start) // step >= MAX_EXPANDED - len(out):
                raise ValueError(f"not an index range: {part!r}")
            out.extend(range(start, stop + 1, step))
    return out
