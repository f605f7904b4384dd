"""The lifecycle mapping fed with what the real kubelet did (fixtures recorded on the
test bed's real node by fixtures/capture_real_node.py): every Pod state the watch
delivered, with the kubelet Events seen by then, in order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubernel.model import KernelSessionSpec, KernelSessionStatus
from kubernel_operator.facts import kernel_facts
from kubernel_operator.transitions import advance

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real_node"
T0 = datetime(2026, 11, 22, tzinfo=UTC)

INTERACTIVE = KernelSessionSpec.model_validate(
    {"sessionId": "real-01", "owner": {"accessKey": "AK"}, "image": "python:3.11"}
)
BATCH = INTERACTIVE.model_copy(update={"type": "batch", "startup_command": "exit 3"})

P, PU, C, S, T = (
    "kernel_preparing",
    "kernel_pulling",
    "kernel_creating",
    "kernel_started",
    "kernel_terminated",
)
CANCELLED, SUCCESS, FAILURE = "kernel_cancelled", "kernel_success", "kernel_failure"


@pytest.mark.parametrize(
    ("fixture", "spec", "expected", "ending"),
    [
        ("first-pull", INTERACTIVE, [P, PU, C, S], None),
        ("image-present", INTERACTIVE, [P, C, S], None),
        ("tag-missing", INTERACTIVE, [P, PU, CANCELLED, T], ("image-pull-failed", "UNDEFINED", None)),
        ("exit-0", BATCH, [P, C, S, SUCCESS, T], ("task-finished", "SUCCESS", 0)),
        ("exit-3", BATCH, [P, C, S, FAILURE, T], ("task-failed", "FAILURE", 3)),
        ("oom", BATCH, [P, C, S, T], ("oom-killed", "FAILURE", 137)),
    ],
)
def test_the_real_kubelets_sequence(
    fixture: str, spec: KernelSessionSpec, expected: list[str], ending: tuple[str, str, int | None] | None
) -> None:
    states = json.loads((FIXTURES / f"{fixture}.json").read_text())
    status = KernelSessionStatus(created_at=T0, pods=["p"])
    for i, state in enumerate(states):
        facts = kernel_facts(state["pod"], [reason for _, reason in state["events"]])
        status = advance(status, spec, [facts], [], T0 + timedelta(seconds=i))
    assert [e.event for e in status.lifecycle] == expected
    if ending is None:
        assert status.phase == "Running"
        return
    reason, result, exit_code = ending
    assert (status.lifecycle[-1].reason, status.result, status.exit_code) == (reason, result, exit_code)
    if reason == "image-pull-failed":  # the registry's own words reach the status
        assert "not found" in status.message and "ErrImagePull" in status.message
