"""Pure parts of the code calls: request bodies, where the runner is, its errors as
ours, the 19.09 stats and GraphQL session views, who sees which session."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kubernel_api.code_requests import DownloadRequest, ExecuteRequest, StreamExecuteRequest
from kubernel_api.graphql import visible_sessions
from kubernel_api.keypairs import Keypair, Role
from kubernel_api.problems import Problem, ProblemType
from kubernel_api.requests import parse
from kubernel_api.runner import problem_of, runner_address
from kubernel_api.views import compute_session, final_stats, kernel_info

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def session(
    token: str = "sess-1",
    owner: str = "AKALICE",
    domain: str = "default",
    phase: str = "Running",
    address: str | None = "10.245.0.2:2001",
    created: str = "2026-11-22T11:00:00Z",
) -> dict:
    return {
        "metadata": {"name": token, "uid": f"uid-{token}", "creationTimestamp": created},
        "spec": {
            "sessionId": token,
            "owner": {"accessKey": owner, "domain": domain, "group": "default"},
            "image": "python:3.6",
            "resolvedImage": "registry.test/kubernel/python:3.11",
        },
        "status": {
            "phase": phase,
            "kernelAddress": address,
            "accessCount": 4,
            "createdAt": "2026-11-22T11:00:00Z",
        },
    }


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"mode": "query", "code": "print(1)", "runId": None}, True),
        (
            {
                "mode": "batch",
                "code": "",
                "runId": None,
                "options": {"clean": None, "build": "make", "buildLog": False, "exec": "./a.out"},
            },
            True,
        ),
        ({"mode": "continue", "code": "", "runId": "abc-1"}, True),
        ({"mode": "input", "code": "alice", "runId": "abc-1"}, True),
        ({"mode": "complete", "code": ""}, False),
        ({"mode": "query", "code": "x", "runId": "../etc"}, False),
        ({"mode": "query", "code": "x" * ((1 << 20) + 1)}, False),
        ({"mode": "batch", "options": {"exec": "x", "rm": "-rf"}}, False),
        ({"mode": "query", "code": 5}, False),
    ],
)
def test_execute_bodies(body: dict, ok: bool) -> None:
    if ok:
        assert isinstance(parse(ExecuteRequest, body), ExecuteRequest)
    else:
        with pytest.raises(Problem) as raised:
            parse(ExecuteRequest, body)
        assert raised.value.kind is ProblemType.INVALID_PARAMETERS


def test_the_websocket_starts_only_new_runs() -> None:
    with pytest.raises(Problem):
        parse(StreamExecuteRequest, {"mode": "continue", "code": ""})
    assert parse(StreamExecuteRequest, {"code": "1", "mode": "query", "options": {}}).to_runner() == {
        "mode": "query",
        "code": "1",
        "options": {"buildLog": False},
    }


@pytest.mark.parametrize("files", [[], ["a"] * 65, [""], ["x" * 4097]])
def test_download_bodies_are_bounded(files: list[str]) -> None:
    with pytest.raises(Problem):
        parse(DownloadRequest, {"files": files})


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (session(phase="Pulling"), ProblemType.KERNEL_NOT_RUNNING),
        (session(phase="Terminated"), ProblemType.KERNEL_NOT_RUNNING),
        (session(address=None), ProblemType.NO_CODE_RUNNER),
    ],
)
def test_no_runner_to_call(body: dict, kind: ProblemType) -> None:
    with pytest.raises(Problem) as raised:
        runner_address(body)
    assert raised.value.kind is kind and raised.value.kind.status == 409


def test_the_runner_of_a_running_session() -> None:
    assert runner_address(session()) == "10.245.0.2:2001"


@pytest.mark.parametrize(
    ("status", "body", "kind", "detail"),
    [
        (
            400,
            b'{"detail": "path escapes the working directory"}',
            ProblemType.INVALID_PARAMETERS,
            "path escapes the working directory",
        ),
        (404, b'{"detail": "no run abc"}', ProblemType.KERNEL_OBJECT_NOT_FOUND, "no run abc"),
        (409, b'{"detail": "busy"}', ProblemType.KERNEL_BUSY, "busy"),
        (413, b"", ProblemType.TOO_LARGE, ""),
        (401, b'{"detail": "bad token"}', ProblemType.RUNNER_FAILED, "the code runner answered 401"),
        (
            500,
            b"Traceback (most recent call last)",
            ProblemType.RUNNER_FAILED,
            "the code runner answered 500",
        ),
    ],
)
def test_runner_errors_become_ours(status: int, body: bytes, kind: ProblemType, detail: str) -> None:
    problem = problem_of(status, body)
    assert (problem.kind, problem.detail) == (kind, detail)


def test_final_stats_are_numbers_and_prefer_the_runners_figures() -> None:
    ended = session(phase="Terminated")
    ended["status"].update(
        {"terminatedAt": "2026-11-22T11:00:05Z", "cpuCreditMs": 4000, "startedAt": "2026-11-22T11:00:01Z"}
    )
    assert final_stats(ended, NOW) == {
        "cpu_used": 4000,
        "mem_max_bytes": 0,
        "mem_cur_bytes": 0,
        "io_read_bytes": 0,
        "io_write_bytes": 0,
        "net_rx_bytes": 0,
        "net_tx_bytes": 0,
        "status": "terminated",
    }
    # 19.09's word for a session that never started.
    never = session(phase="Terminated")
    never["status"]["terminatedAt"] = "2026-11-22T11:00:05Z"
    assert final_stats(never, NOW)["status"] == "cancelled"
    measured = {"cpu_used": 123, "mem_max_bytes": 5 << 20, "io_read_bytes": -1, "net_rx_bytes": "9", "x": 1}
    stats = final_stats(ended, NOW, measured)
    assert (stats["cpu_used"], stats["mem_max_bytes"], stats["io_read_bytes"], stats["net_rx_bytes"]) == (
        123,
        5 << 20,
        0,
        0,
    )
    assert "x" not in stats


def test_cpu_credit_comes_from_the_runner_when_it_answers() -> None:
    assert kernel_info(session(), NOW, {"cpu_used": 250})["cpuCreditUsed"] == 250
    assert kernel_info(session(), NOW, None)["cpuCreditUsed"] == 0


def test_compute_session_view() -> None:
    view = compute_session(session(), NOW)
    assert (view["sess_id"], view["access_key"], view["status"], view["num_queries"], view["sess_type"]) == (
        "sess-1",
        "AKALICE",
        "RUNNING",
        4,
        "INTERACTIVE",
    )
    assert view["image"] == "registry.test/kubernel/python:3.11" and view["lang"] == "python:3.6"


ALICE = Keypair(access_key="AKALICE", secret_key="x" * 40)
BOB = Keypair(access_key="AKBOB", secret_key="x" * 40)
ADMIN = Keypair(access_key="AKADMIN", secret_key="x" * 40, role=Role.ADMIN, domain="default")
OTHER_ADMIN = Keypair(access_key="AKOTHER", secret_key="x" * 40, role=Role.ADMIN, domain="other")
ROOT = Keypair(access_key="AKROOT", secret_key="x" * 40, role=Role.SUPERADMIN)
BODIES = [
    session("a1", "AKALICE", created="2026-11-22T10:00:00Z"),
    session("b1", "AKBOB", created="2026-11-22T10:30:00Z"),
    session("c1", "AKCAROL", "other", phase="Terminated", created="2026-11-22T11:00:00Z"),
]


@pytest.mark.parametrize(
    ("caller", "access_key", "statuses", "expected"),
    [
        (ALICE, "AKALICE", None, ["a1"]),
        (BOB, "AKBOB", None, ["b1"]),
        (ADMIN, None, None, ["b1", "a1"]),
        (ADMIN, "AKBOB", None, ["b1"]),
        (OTHER_ADMIN, None, None, ["c1"]),
        (ROOT, None, None, ["c1", "b1", "a1"]),
        (ROOT, None, {"RUNNING"}, ["b1", "a1"]),
        (ROOT, None, {"TERMINATED", "CANCELLED"}, ["c1"]),
    ],
)
def test_who_sees_which_sessions(
    caller: Keypair, access_key: str | None, statuses: set[str] | None, expected: list[str]
) -> None:
    seen = visible_sessions(caller, BODIES, access_key, statuses)
    assert [b["metadata"]["name"] for b in seen] == expected


def test_info_carries_the_references_own_keys_too() -> None:
    body = session()
    body["spec"]["resources"] = {"cpu": "500m", "memory": "2Gi", "gpu": 1}
    body["status"]["pods"] = ["sess-1-r0-0"]
    info = kernel_info(body, NOW, {"cpu_used": 5})
    assert json.loads(info["occupiedSlots"]) == {"cpu": "0.5", "mem": str(2 << 30), "cuda.device": "1"}
    assert (info["domainName"], info["groupId"], info["registry"]) == ("default", "default", "registry.test")
    assert info["containerId"] == "sess-1-r0-0" and info["lastStat"] == {"cpu_used": 5}
    assert kernel_info(session(), NOW)["lastStat"] is None


def test_problems_carry_msg_for_the_19_09_cli() -> None:
    body = Problem(ProblemType.KERNEL_EXISTS, "session 'x' exists with another image").body()
    assert body == {
        "type": "https://api.backend.ai/probs/kernel-already-exists",
        "title": "The kernel already exists with a different runtime type (language).",
        "status": 400,
        "detail": "session 'x' exists with another image",
        "msg": "session 'x' exists with another image",
    }
    assert "msg" not in Problem(ProblemType.AUTH_FAILED).body()  # nothing to add: the title says it


def _cost_errors(text: str, variables: dict, maximum: int = 1000) -> list[str]:
    from graphql import parse, validate

    from kubernel_api.graphql import cost_rule, schema

    return [e.message for e in validate(schema, parse(text), [cost_rule(variables, maximum)])]


def test_a_graphql_query_is_bounded_by_its_cost_before_it_runs() -> None:
    fields = "sess_id image status status_info created_at terminated_at occupied_slots access_key"
    listing = "query($l: Int!, $o: Int!) { compute_session_list(limit: $l, offset: $o) { items { %s } total_count } }"
    assert _cost_errors(listing % fields, {"l": 100, "o": 0}) == []  # what the 19.09 client asks
    aliased = (
        "{"
        + " ".join(
            f"a{i}: compute_session_list(limit: 100, offset: 0) {{ items {{ id }} }}" for i in range(289)
        )
        + "}"
    )
    (error,) = _cost_errors(aliased, {})
    assert "maximum cost of 1000" in error and "29478" in error
    assert _cost_errors(listing % fields, {"l": 100, "o": 0}, maximum=50)  # the bound is the setting's
