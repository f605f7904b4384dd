"""The benchmark's arithmetic and its table (pure: no I/O)."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Latency:
    """Percentiles of a sample, in milliseconds."""

    n: int
    p50: float
    p95: float
    p99: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        if not seconds:
            raise ValueError("no samples")
        ms = sorted(s * 1000 for s in seconds)
        if len(ms) == 1:
            return cls(1, ms[0], ms[0], ms[0])
        cuts = statistics.quantiles(ms, n=100, method="inclusive")
        return cls(len(ms), cuts[49], cuts[94], cuts[98])


@dataclass(frozen=True)
class Burst:
    """N operations started at once: wall time until the last finished, and throughput."""

    n: int
    wall_s: float

    @property
    def per_s(self) -> float:
        return self.n / self.wall_s


def ratio(ours: float, baseline: float) -> float:
    return ours / baseline if baseline else float("inf")


@dataclass(frozen=True)
class Target:
    what: str
    value: float
    limit: float
    unit: str
    higher_is_better: bool = False

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def line(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return (
            f"{'MET ' if self.met else 'MISS'} {self.what}: {self.value:.2f}{self.unit} "
            f"(target {sign} {self.limit:g}{self.unit})"
        )


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=False))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows)])


_REQUEST_TOTAL = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def request_counts(metrics: str) -> Counter[str]:
    """kube-apiserver's ``apiserver_request_total`` summed by "VERB resource[/subresource][ code]",
    the code only when it is not a success.

    Requests for resources only: non-resource paths (health checks, /metrics itself,
    discovery) carry no resource and are left out.
    """
    counts: Counter[str] = Counter()
    for line in metrics.splitlines():
        match = _REQUEST_TOTAL.match(line)
        if match:
            labels = dict(_LABEL.findall(match["labels"]))
            if not labels.get("resource"):
                continue
            what = labels.get("resource", "") + (
                f"/{labels['subresource']}" if labels.get("subresource") else ""
            )
            code = labels.get("code", "")
            failed = f" {code}" if code and not code.startswith("2") else ""  # conflicts show apart
            counts[f"{labels.get('verb', '?')} {what}{failed}"] += int(float(match["value"]))
    return counts


def per_item(before: Counter[str], after: Counter[str], items: int) -> dict[str, float]:
    """Requests made between two scrapes, per item, largest first."""
    delta = after - before
    return {k: round(v / items, 2) for k, v in sorted(delta.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0}


_BUCKET = re.compile(r"^(?P<name>\w+)_bucket\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def histogram_buckets(metrics: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts (upper bound -> count) of a Prometheus histogram."""
    found: dict[float, float] = {}
    for line in metrics.splitlines():
        match = _BUCKET.match(line)
        if match and match["name"] == name:
            le = dict(_LABEL.findall(match["labels"]))["le"]
            found[float(le)] = float(match["value"])
    return found


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile of what was observed between two scrapes, interpolated within its
    bucket as Prometheus' ``histogram_quantile`` does (the last finite bound if beyond)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        raise ValueError("nothing observed")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=False):
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below) if count > below else bound
        lower, below = bound, count
    return lower
