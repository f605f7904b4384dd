"""Kubernetes quantities and Backend.AI sizes as numbers (pure)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES = {
    "n": Decimal(10) ** -9, "u": Decimal(10) ** -6, "m": Decimal(10) ** -3, "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
# Backend.AI's BinarySize: a number with an optional binary suffix (k, m, g, t, p, e; any case, optional "b"/"ib").
_BINARY_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([kmgtpe]?)(?:i?b)?$", re.IGNORECASE)


def parse_quantity(quantity: str | int | float) -> Decimal:
    """A Kubernetes quantity ("500m", "4Gi", "2") as a number. Raises ValueError."""
    match = _QUANTITY.match(str(quantity).strip())
    if not match or match[2] not in _SUFFIXES:
        raise ValueError(f"not a quantity: {quantity!r}")
    try:
        return Decimal(match[1]) * _SUFFIXES[match[2]]
    except InvalidOperation as exc:
        raise ValueError(f"not a quantity: {quantity!r}") from exc


def memory_kib(quantity: str) -> int:
    """A Kubernetes memory quantity in KiB (for memoryLimit)."""
    return int(parse_quantity(quantity)) // 1024


def binary_size(value: str | int | float) -> int:
    """Backend.AI's memory notation ("4g", "512m", 1073741824) in bytes. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"not a size: {value!r}")
        return int(value)
    match = _BINARY_SIZE.match(value.strip())
    if not match:
        raise ValueError(f"not a size: {value!r}")
    power = " kmgtpe".index(match[2].lower() or " ")
    return int(Decimal(match[1]) * (1024 ** power))
