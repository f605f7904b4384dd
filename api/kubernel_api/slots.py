"""Backend.AI resource slots (``config.resources``) -> the kernels' Resources (pure).

Values are read as Backend.AI 19.09's manager reads them (``ResourceSlot.
from_user_input``): numbers or strings; counts as decimals (``"1"``, ``"1.00"``,
``0.5``); ``mem`` as a binary size (``kubernel.quantity.binary_size``); ``null``
as absent. What a Pod cannot have is refused with a 400 that says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from kubernel import model as m
from kubernel.quantity import binary_size, parse_quantity

from .problems import Problem, ProblemType

GPU_SLOTS = ("cuda.device", "cuda.devices", "gpu")  # whole devices: nvidia.com/gpu
MEMORY_SLOTS = ("mem", "memory")
SHARED_GPU_SLOT = "cuda.shares"  # fractional GPUs: Backend.AI's own device plugin
SUPPORTED = ("cpu", *MEMORY_SLOTS, *GPU_SLOTS, SHARED_GPU_SLOT)
_MAX_TEXT = 64  # longer slot values are not numbers anyone means
_QUANTUM = Decimal("0.001")  # counts are kept to 3 decimals, as the reference does
MAX_COUNT = Decimal(1_000_000)  # cores or devices: far beyond any node, and within Decimal's precision
# Below this no container starts. A bare number is bytes (the CLI's help says MiB, its
# manager reads bytes), so "mem=256" is a mistake worth a clear answer.
MIN_MEMORY_BYTES = 4 << 20


def _bad(slot: str, why: str) -> Problem:
    return Problem(ProblemType.INVALID_PARAMETERS, f"config.resources.{slot}: {why}")


def count(slot: str, value: object) -> Decimal:
    """A count slot's value as the reference reads it: any finite decimal, from a number or
    a string; Kubernetes quantities (``500m``) are read too."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) or len(str(value)) > _MAX_TEXT:
        raise _bad(slot, f"{value!r} is not a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        try:
            number = parse_quantity(str(value))
        except ValueError:
            raise _bad(slot, f"{value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise _bad(slot, f"{value!r} is not a number of at least 0")
    if number > MAX_COUNT:  # also what quantize() could not hold (1e309)
        raise _bad(slot, f"{value!r} is more than {MAX_COUNT}")
    return number.quantize(_QUANTUM)


def resources(slots: Mapping[str, object] | None, instance_memory_kib: int | None) -> m.Resources:
    """``config.resources`` (and the legacy ``instanceMemory``) as the spec's Resources."""
    given = {k: v for k, v in (slots or {}).items() if v is not None}
    unknown = sorted(k for k in given if k not in SUPPORTED)
    if unknown:
        raise Problem(
            ProblemType.INVALID_PARAMETERS,
            f"config.resources: unsupported slot(s) {', '.join(unknown)} (supported: {', '.join(SUPPORTED)})",
        )
    fields: dict[str, object] = {}
    if "cpu" in given:
        cpu = count("cpu", given["cpu"])
        if cpu <= 0:
            raise _bad("cpu", f"{given['cpu']!r} is not a positive number of cores")
        fields["cpu"] = format(cpu.normalize(), "f")
    memory = [s for s in MEMORY_SLOTS if s in given]
    if len(memory) > 1:
        raise Problem(ProblemType.INVALID_PARAMETERS, "config.resources: give mem or memory, not both")
    if memory:
        value = given[memory[0]]
        try:
            size = binary_size(value)  # type: ignore[arg-type]  # checked inside
        except (ValueError, TypeError):
            size = 0
        if size <= 0:
            raise _bad(memory[0], f"{value!r} is not a size such as 4g, 512m, 1.5g or a number of bytes")
        if size < MIN_MEMORY_BYTES:
            raise _bad(
                memory[0],
                f"{value!r} is {size} bytes, below the {MIN_MEMORY_BYTES >> 20} MiB a kernel needs "
                "(a bare number is bytes: did you mean a unit, e.g. 256m?)",
            )
        fields["memory"] = str(size)
    elif instance_memory_kib:
        fields["memory"] = f"{instance_memory_kib}Ki"
    gpus = [count(s, given[s]) for s in GPU_SLOTS if s in given]
    if len(gpus) > 1:
        raise Problem(ProblemType.INVALID_PARAMETERS, f"config.resources: give one of {', '.join(GPU_SLOTS)}")
    if gpus:
        if gpus[0] != gpus[0].to_integral_value():
            slot = next(s for s in GPU_SLOTS if s in given)
            raise _bad(slot, f"{given[slot]!r} is not a whole number of devices")
        fields["gpu"] = int(gpus[0])
    if SHARED_GPU_SLOT in given and count(SHARED_GPU_SLOT, given[SHARED_GPU_SLOT]) != 0:
        raise _bad(
            SHARED_GPU_SLOT,
            "fractional GPU shares need Backend.AI's own GPU sharing, which a Kubernetes "
            "cluster does not have; ask for whole GPUs with cuda.device",
        )
    return m.Resources(**fields)
