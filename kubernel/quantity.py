"""Kubernetes quantities and Backend.AI sizes as numbers (pure)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES = {
    "n": Decimal(10) ** -9,
    "u": Decimal(10) ** -6,
    "m": Decimal(10) ** -3,
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
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


_BINARY_POWERS = {suffix: 1024**power for power, suffix in enumerate(" kmgtpezy")}
_SIZE_ENDINGS = ("ibytes", "ibyte", "ib", "bytes", "byte", "b")
_LARGEST_SIZE = 2**90  # far above any memory; keeps a hostile exponent from costing us


def binary_size(value: str | int | float) -> int:
    """A size in bytes, read as Backend.AI's ``BinarySize.from_str`` reads it: an integer
    is bytes; otherwise a decimal with a binary suffix (k, m, g, t, p, e, z, y; any case),
    optionally followed by b, byte(s), ib or ibyte(s): ``4g``, ``1.5G``, ``512MiB``.
    Underscores are ignored. Kubernetes' ``4Gi`` is read too. Raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int | float):
        if not 0 <= value <= _LARGEST_SIZE:
            raise ValueError(f"not a size: {value!r}")
        return int(value)
    text = value.strip().replace("_", "").lower()
    if not text or len(text) > 64:
        raise ValueError(f"not a size: {value!r}")
    if text.isascii() and text.isdigit():
        number, suffix = text, " "
    else:
        ending = next((e for e in _SIZE_ENDINGS if text.endswith(e)), "")
        if not ending and text.endswith("i"):
            ending = "i"  # Kubernetes: Ki, Mi, Gi...
        body = text[: len(text) - len(ending)]
        if body and not body[-1].isdigit():
            number, suffix = body[:-1], body[-1]
        elif not ending:
            number, suffix = body, " "
        else:
            raise ValueError(f"not a size: {value!r}")  # "512b": the reference wants a unit before b
    if suffix not in _BINARY_POWERS or not re.fullmatch(r"[0-9]*\.?[0-9]+|[0-9]+\.", number.strip()):
        raise ValueError(f"not a size: {value!r}")
    size = Decimal(number.strip()) * _BINARY_POWERS[suffix]
    if size > _LARGEST_SIZE:
        raise ValueError(f"not a size: {value!r} is too large")
    return int(size)


_PERCENT = re.compile(r"^([1-9][0-9]?|100)%$")


def guaranteed(limit: str, guarantee: str, unit: str) -> str:
    """What a container requests of ``limit`` under ``guarantee`` (pure): a percentage of it
    (``"10%"``) or an amount (``"250m"``, ``"512Mi"``), never more than the limit. CPU in
    millicores (``unit="m"``), memory in bytes (``unit=""``), at least 1."""
    whole = parse_quantity(limit)
    percent = _PERCENT.match(guarantee)
    share = whole * int(percent[1]) / 100 if percent else min(parse_quantity(guarantee), whole)
    if share == whole:
        return limit  # the limit as written: requests = limits keeps Guaranteed QoS exact
    scale = Decimal(1000) if unit == "m" else Decimal(1)
    return f"{max(int(share * scale), 1)}{unit}"
