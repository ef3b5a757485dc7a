"""Kubernetes resource quantities (`500m`, `2`, `4Gi`, `1e3`) parsed exactly with Decimal."""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIX = {
    "": Decimal(1), "m": Decimal("0.001"), "u": Decimal("0.000001"), "n": Decimal("0.000000001"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
# ASCII digits only (a bare `\d` takes any script's digits, which `Decimal` and `int` then read as numbers) and
# nothing around the number: Kubernetes refuses `" 2 "` and `"٣"` alike.
_QUANTITY = re.compile(  # Kubernetes' grammar: a number, then one suffix: binary, decimal (SI) or an exponent
    r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:(?P<exp>[eE][+-]?\d+)|(?P<suf>[KMGTPE]i|[numkMGTPE]))?", re.ASCII
)

# Kubernetes never overcommits these: a request must equal the limit (api.checks refuses another), and a missing
# limit is the request (plan.kubernetes renders it, as the API server wants one).
EXTENDED_RESOURCES = ("nvidia.com/gpu",)

# Beyond these a request is a typo, not a machine: refused as bad input.
MAX_CPU = Decimal(100_000)
MAX_MEMORY = Decimal(2) ** 60
MAX_GPU = Decimal(1024)


def parse_quantity(value: object) -> Decimal:
    """Return the quantity's value in base units (cores, bytes, devices); raise ValueError if malformed."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a quantity such as '500m' or '4Gi', got {type(value).__name__}")
    text = str(value)
    match = _QUANTITY.fullmatch(text)
    if not match or len(text) > 64:
        raise ValueError(f"invalid quantity {text!r}: expected e.g. '500m', '2', '4Gi'")
    try:
        number = Decimal(match["num"])
        if match["exp"]:
            exponent = int(match["exp"][1:])
            if abs(exponent) > 100:
                raise ValueError(f"invalid quantity {text!r}: out of range")
            number = number.scaleb(exponent)
        return number * _SUFFIX[match["suf"] or ""]
    except ArithmeticError as exc:  # decimal.Overflow, InvalidOperation, …
        raise ValueError(f"invalid quantity {text!r}") from exc


def cpu_millis(value: object) -> int:
    return int((parse_quantity(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(value: object) -> int:
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))


def binary_size(count: int) -> str:
    """Bytes as a reader of the manifest wrote them: `20Mi`, `1.5Gi`, `512` (one decimal at most)."""
    for unit, size in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f}".removesuffix(".0") + unit
    return str(count)
