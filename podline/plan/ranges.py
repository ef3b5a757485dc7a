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


def expand(text: str) -> list[int]:
    """'0-3,7,9-10%4' → [0, 1, 2, 3, 7, 9, 10] (a Slurm %throttle is ignored)."""
    out: list[int] = []
    for part in text.split("%", 1)[0].split(","):
        if part:
            low, _, high = part.partition("-")
            out.extend(range(int(low), int(high or low) + 1))
    return out
