"""Resource slots as Backend.AI 19.09's manager reads them -> Resources (pure)."""

from __future__ import annotations

import pytest

from kubernel.model import Resources
from kubernel.quantity import binary_size
from kubernel_api.problems import Problem, ProblemType
from kubernel_api.slots import resources

GiB = 1 << 30


@pytest.mark.parametrize(
    ("slots", "expected"),
    [
        ({}, Resources()),
        # The CLI's -r KEY=VAL sends strings; the reference reads them as decimals.
        ({"cpu": "1", "mem": "1g", "cuda.device": "1"}, Resources(cpu="1", memory=str(GiB), gpu=1)),
        ({"cpu": "1.00", "cuda.device": "2.00"}, Resources(cpu="1", gpu=2)),
        ({"cpu": 0.5, "mem": 536870912}, Resources(cpu="0.5", memory=str(GiB // 2))),
        ({"cpu": "1.50"}, Resources(cpu="1.5")),
        ({"cpu": "500m"}, Resources(cpu="0.5")),  # Kubernetes' notation, beyond the reference
        (
            {"cpu": "1.23456", "cuda.device": "1.0004"},
            Resources(cpu="1.235", gpu=1),
        ),  # 3 decimals, as the reference
        ({"cuda.devices": 1}, Resources(gpu=1)),
        ({"gpu": "0"}, Resources(gpu=0)),
        ({"memory": "2Gi"}, Resources(memory=str(2 * GiB))),
        ({"cuda.shares": "0"}, Resources()),  # no share asked for is no GPU
        ({"cpu": None, "mem": None}, Resources()),  # null is absent, as in the reference
    ],
)
def test_slots_the_reference_accepts(slots: dict, expected: Resources) -> None:
    assert resources(slots, None) == expected


@pytest.mark.parametrize(
    ("slots", "says"),
    [
        ({"cpu": "0"}, "positive"),
        ({"cpu": "-1"}, "at least 0"),
        ({"cpu": "two"}, "not a number"),
        ({"cpu": "NaN"}, "at least 0"),
        ({"cpu": True}, "not a number"),
        ({"cpu": "1" * 100}, "not a number"),
        ({"cpu": "1e309"}, "more than"),  # a finite decimal past what 3 decimals can hold: no 500
        ({"cpu": 1e308}, "more than"),
        ({"cpu": "1000001"}, "more than"),
        ({"cuda.device": "1e309"}, "more than"),
        ({"cuda.shares": "1e309"}, "more than"),
        ({"mem": "lots"}, "size"),
        ({"mem": "512b"}, "size"),  # the reference wants a unit before "b"
        ({"mem": "0"}, "size"),
        ({"mem": "256"}, "did you mean a unit"),  # bytes, as the reference reads it; the CLI's help says MiB
        ({"mem": "1" * 5000}, "size"),  # no 500 however many digits
        ({"mem": "1e999999999g"}, "size"),
        ({"cuda.device": "1.5"}, "whole number"),
        ({"cuda.shares": "0.5"}, "whole GPUs"),
        ({"cuda.shares": 1}, "whole GPUs"),
        ({"tpu": 1}, "unsupported slot(s) tpu"),
        ({"mem": "1g", "memory": "1g"}, "not both"),
        ({"gpu": 1, "cuda.device": 1}, "give one of"),
    ],
)
def test_slots_refused_with_a_reason(slots: dict, says: str) -> None:
    with pytest.raises(Problem) as raised:
        resources(slots, None)
    assert raised.value.kind is ProblemType.INVALID_PARAMETERS and says in raised.value.detail


def test_legacy_instance_memory_is_kib_and_yields_to_mem() -> None:
    assert resources({}, 51240).memory == "51240Ki"
    assert resources({"mem": "1g"}, 51240).memory == str(GiB)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("4g", 4 * GiB),
        ("512m", 512 << 20),
        ("1.5G", 3 << 29),
        ("2GiB", 2 * GiB),
        ("100", 100),
        (1024, 1024),
        ("1gbytes", GiB),
        ("1_024m", GiB),
        (" 4 g ", 4 * GiB),
        (".5g", GiB // 2),
        ("3k", 3072),
        ("4Gi", 4 * GiB),
    ],
)
def test_binary_sizes_as_the_reference_reads_them(value: object, size: int) -> None:
    assert binary_size(value) == size


@pytest.mark.parametrize(
    "value", ["512b", "inf", "1e3", "", "g", "-1g", "1.2.3g", "1q", "\u0661\u0662", True, 1e40, -5]
)
def test_binary_sizes_refused(value: object) -> None:
    with pytest.raises(ValueError):
        binary_size(value)  # type: ignore[arg-type]
