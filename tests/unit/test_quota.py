"""The keypair Lease's pure rules (api/kubernel_api/quota.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubernel_api.quota import LEASE_SECONDS, expired, lease_body, lease_name

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_one_lease_name_per_keypair_fit_for_kubernetes() -> None:
    name = lease_name("AKIAALICE")
    assert name == lease_name("AKIAALICE") != lease_name("AKIABOB")
    assert len(name) <= 63 and name.replace("-", "").isalnum() and name.islower()


def test_a_lease_lapses_after_its_duration() -> None:
    lease = lease_body("l", "me", NOW)
    assert lease["spec"]["holderIdentity"] == "me" and lease["spec"]["leaseDurationSeconds"] == LEASE_SECONDS
    assert "resourceVersion" not in lease["metadata"]
    assert not expired(lease, NOW + timedelta(seconds=LEASE_SECONDS - 1))
    assert expired(lease, NOW + timedelta(seconds=LEASE_SECONDS + 1))
    assert expired({"spec": {}}, NOW)  # held by no one
    assert lease_body("l", "me", NOW, "42")["metadata"]["resourceVersion"] == "42"  # replaced at a version
