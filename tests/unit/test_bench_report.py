"""The benchmark's arithmetic: percentiles, throughput, targets, the table."""

from __future__ import annotations

import pytest

from bench.report import Burst, Latency, Target, ratio, table


def test_percentiles_of_a_known_sample() -> None:
    latency = Latency.of([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert latency.n == 100
    assert latency.p50 == pytest.approx(50.5) and latency.p95 == pytest.approx(95.05)
    assert latency.p99 == pytest.approx(99.01)
    assert Latency.of([0.002]) == Latency(1, 2.0, 2.0, 2.0)
    with pytest.raises(ValueError):
        Latency.of([])


def test_throughput_ratio_and_targets() -> None:
    assert Burst(200, 4.0).per_s == 50.0
    assert ratio(30.0, 20.0) == 1.5 and ratio(1.0, 0.0) == float("inf")
    assert Target("p50 ratio", 1.4, 1.5, "x").met and not Target("p50 ratio", 1.6, 1.5, "x").met
    assert Target("throughput", 0.7, 0.6, "x", higher_is_better=True).met
    assert Target("rss", 250, 200, " MB").line().startswith("MISS rss: 250.00 MB (target <= 200 MB)")


def test_table_aligns_columns() -> None:
    text = table([("plain Pods", "12.0"), ("kubernel", "130.5")], ("what", "p50 ms"))
    lines = text.splitlines()
    assert lines[0] == "what        p50 ms" and lines[2] == "plain Pods    12.0" and lines[3] == "kubernel     130.5"
