"""Which operator configurations need cluster-scoped reads (Namespaces, CRDs)."""

from __future__ import annotations

import pytest

from kubernel_operator.settings import OperatorSettings


@pytest.mark.parametrize(
    ("namespaces", "scans"),
    [
        ((), True),  # cluster-wide: kopf follows CRD changes
        (("kernels",), False),  # the chart's namespace scope: a Role is enough
        (("kernels", "team-a"), False),
        (("t-*",), True),  # patterns: kopf watches Namespaces to match them
        (("!kube-system",), True),
        (("team-?",), True),
    ],
)
def test_scans_cluster(namespaces: tuple[str, ...], scans: bool) -> None:
    assert OperatorSettings(namespaces=namespaces).scans_cluster is scans
