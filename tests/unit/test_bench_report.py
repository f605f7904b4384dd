"""The benchmark's arithmetic: percentiles, throughput, targets, the table."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.report import (
    Burst,
    Latency,
    Target,
    histogram_buckets,
    histogram_quantile,
    per_item,
    ratio,
    request_counts,
    table,
)


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
    assert (
        lines[0] == "what        p50 ms"
        and lines[2] == "plain Pods    12.0"
        and lines[3] == "kubernel     130.5"
    )


METRICS = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 10
apiserver_request_total{code="409",component="apiserver",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 7
apiserver_request_total{code="200",component="",group="",resource="",scope="",subresource="/metrics",verb="GET",version=""} 3
apiserver_request_duration_seconds_count{resource="pods",verb="POST"} 99
"""


def test_request_counts_keep_failures_apart_and_leave_out_non_resource_paths() -> None:
    assert request_counts(METRICS) == Counter({"POST pods": 10, "POST pods 409": 2, "PATCH pods/status": 7})


def test_requests_per_item_between_two_scrapes() -> None:
    before = Counter({"POST pods": 12, "PATCH pods/status": 7})
    after = Counter({"POST pods": 32, "PATCH pods/status": 67, "GET kernelsessions": 10})
    assert per_item(before, after, 20) == {
        "PATCH pods/status": 3.0,
        "POST pods": 1.0,
        "GET kernelsessions": 0.5,
    }
    assert list(per_item(before, after, 20)) == ["PATCH pods/status", "POST pods", "GET kernelsessions"]


HISTOGRAM = """\
lag_seconds_bucket{le="0.1"} 10.0
lag_seconds_bucket{le="1.0"} 90.0
lag_seconds_bucket{le="+Inf"} 100.0
lag_seconds_count 100.0
other_bucket{le="0.1"} 5.0
"""


def test_quantiles_of_a_histogram_between_two_scrapes() -> None:
    after = histogram_buckets(HISTOGRAM, "lag_seconds")
    assert after == {0.1: 10.0, 1.0: 90.0, float("inf"): 100.0}
    assert histogram_quantile({}, after, 0.05) == pytest.approx(0.05)  # half-way into the first bucket
    assert histogram_quantile({}, after, 0.5) == pytest.approx(0.1 + 0.9 * 40 / 80)
    assert histogram_quantile({}, after, 0.99) == 1.0  # beyond the last finite bound
    before = {0.1: 10.0, 1.0: 10.0, float("inf"): 10.0}  # the first 10 were before the phase
    assert histogram_quantile(before, after, 0.5) == pytest.approx(0.1 + 0.9 * 45 / 80)
    with pytest.raises(ValueError):
        histogram_quantile(after, after, 0.5)
