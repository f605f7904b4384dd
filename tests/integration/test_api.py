"""The REST API through a real socket, on the real control plane with the operator."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes_asyncio import client

from kubernel import resource as r
from kubernel_api.problems import TYPE_BASE
from kubernel_testkit.waiting import wait_until

from .conftest import RunningApi

PROBLEM = "application/problem+json"


def problem(slug: str) -> str:
    return TYPE_BASE + slug


async def test_hello_needs_no_auth(api: RunningApi) -> None:
    async with api.http.get(api.base_url + "/") as resp:
        assert resp.status == 200
        assert await resp.json() == {"version": "v4.20190615", "manager": "0.1.0"}


async def test_create_waits_for_the_start_and_get_info_counts_accesses(api: RunningApi) -> None:
    alice = api.client("alice")
    created = await alice.create(
        "sess-01", tag="t1", config={"resources": {"cpu": "2.00", "mem": "2g"}, "environ": {"A": "1"}}
    )
    assert created.status == 201, created.body
    jupyter = [{"name": "jupyter", "protocol": "http", "ports": [8080]}]  # the image table's, once RUNNING
    assert created.body == {
        "kernelId": "sess-01",
        "created": True,
        "status": "RUNNING",
        "servicePorts": jupyter,
    }
    again = await alice.create("sess-01")
    assert again.body == {
        "kernelId": "sess-01",
        "created": False,
        "status": "RUNNING",
        "servicePorts": jupyter,
    }
    first = await alice.call("GET", "/kernel/sess-01")
    second = await alice.call("GET", "/kernel/sess-01")
    assert first.status == second.status == 200
    info = second.body
    assert info["lang"] == "python:3.6" and info["image"] == "registry.example/lablup/python:3.6-ubuntu18.04"
    assert info["status"] == "RUNNING" and info["tag"] == "t1" and info["terminationTime"] is None
    assert info["memoryLimit"] == 2 * 1024 * 1024  # KiB
    assert second.body["numQueriesExecuted"] == first.body["numQueriesExecuted"] + 1 >= 2
    assert info["age"] >= first.body["age"] and info["cpuCreditUsed"] >= 0
    assert info["ownerAccessKey"] == api.keypairs["alice"].access_key and info["servicePorts"] == jupyter


async def test_enqueue_only_answers_at_once_and_legacy_path_and_lang_work(api: RunningApi) -> None:
    alice = api.client("alice")
    answer = await alice.call(
        "POST",
        "/kernel/create",
        body={"clientSessionToken": "legacy-01", "lang": "python:3.6", "enqueueOnly": True},
    )
    assert answer.status == 201 and answer.body["created"] is True
    assert answer.body["status"] in ("PENDING", "PREPARING", "PULLING", "BUILDING")


async def test_max_wait_gives_timeout_while_the_session_is_still_pending(api: RunningApi) -> None:
    # 5 GPUs fit no simulated node (4 each), so the Pod stays unschedulable.
    answer = await api.client("alice").create(
        "stuck-01", maxWaitSeconds=1, config={"resources": {"cuda.device": 5}}
    )
    assert answer.status == 201 and answer.body["status"] == "TIMEOUT" and answer.body["servicePorts"] == []

    # 19.09's manager's answer to a wait that ran out; GET says what it waits for.
    async def waiting() -> dict | None:
        info = (await api.client("alice").call("GET", "/kernel/stuck-01")).body
        return info if info.get("statusInfo") == "no-available-instances" else None

    info = await wait_until(waiting, timeout=15, what="GET saying the session waits for a node")
    assert info["status"] == "PENDING"


async def test_max_wait_zero_waits_until_the_session_settles(api: RunningApi) -> None:
    """0 is "no limit" for 19.09's manager: no server cap of its own cuts it short; the
    session's start deadline (15 s in the tests' operator) ends it, as TERMINATED."""
    alice = api.client("alice")
    answer = await alice.create("stuck-02", maxWaitSeconds=0, config={"resources": {"cuda.device": 5}})
    assert answer.status == 201 and answer.body["status"] == "TERMINATED", answer.body
    assert (await alice.call("GET", "/kernel/stuck-02")).body["statusInfo"] == "pending-timeout"


async def test_the_reference_spellings_of_create(api: RunningApi) -> None:
    """sessionType, groupName/group_name, domainName/domain_name, resourceOpts, cluster_size,
    string slot values: what 19.09's manager accepts under this API version."""
    alice = api.client("alice")
    answer = await alice.call(
        "POST",
        "/kernel",
        body={
            "clientSessionToken": "spell-01",
            "image": "python:3.6",
            "sessionType": "interactive",
            "groupName": "research",
            "domainName": "default",
            "enqueueOnly": "true",
            "config": {
                "cluster_size": 1,
                "resourceOpts": {},
                "resources": {"cpu": "1", "mem": "1.5g", "cuda.device": "1.00"},
            },
        },
    )
    assert answer.status == 201, answer.body
    info = (await alice.call("GET", "/kernel/spell-01")).body
    assert info["group"] == "research" and info["memoryLimit"] == 1536 * 1024
    snake = await alice.call(
        "POST",
        "/kernel",
        body={
            "clientSessionToken": "spell-02",
            "image": "python:3.6",
            "group_name": "research",
            "domain_name": "default",
            "enqueueOnly": True,
        },
    )
    assert snake.status == 201 and (await alice.call("GET", "/kernel/spell-02")).body["group"] == "research"
    twice = await alice.call(
        "POST",
        "/kernel",
        body={
            "clientSessionToken": "spell-03",
            "image": "python:3.6",
            "group": "default",
            "groupName": "research",
        },
    )
    assert twice.status == 400 and "same parameter" in twice.body["msg"]
    shares = await alice.create("spell-04", config={"resources": {"cuda.shares": "0.5"}})
    assert shares.status == 400 and "whole GPUs" in shares.body["msg"]


async def test_a_failed_start_answers_terminated(api: RunningApi) -> None:
    answer = await api.client("alice").create("broken-01", image="registry.invalid/x:1")
    assert answer.status == 201 and answer.body["status"] == "TERMINATED"
    info = await api.client("alice").call("GET", "/kernel/broken-01")
    assert info.body["status"] == "TERMINATED" and info.body["statusInfo"] == "image-pull-failed"


async def test_twenty_concurrent_creates_with_one_token_make_one_session(
    api: RunningApi, kube: client.ApiClient, namespace: str
) -> None:
    alice = api.client("alice")
    answers = await asyncio.gather(*(alice.create("race-01", enqueueOnly=True) for _ in range(20)))
    assert sorted(a.status for a in answers) == [200] * 19 + [201], [a.body for a in answers]
    assert [a.body["created"] for a in answers].count(True) == 1
    items = await client.CustomObjectsApi(kube).list_namespaced_custom_object(
        r.GROUP, r.VERSION, namespace, r.PLURAL
    )
    assert [i["spec"]["sessionId"] for i in items["items"]] == ["race-01"]


async def test_token_rules(api: RunningApi) -> None:
    alice, bob = api.client("alice"), api.client("bob")
    assert (await alice.create("tok-01")).status == 201
    # As 19.09's manager: another image, or reuseIfExists false, is 400 kernel-already-exists.
    other_image = await alice.create("tok-01", image="registry.example/other:1")
    assert other_image.status == 400 and other_image.problem_type == problem("kernel-already-exists")
    assert "another image" in other_image.body["msg"]
    no_reuse = await alice.create("tok-01", reuseIfExists=False)
    assert no_reuse.status == 400 and no_reuse.problem_type == problem("kernel-already-exists")
    # Reuse compares resolved images: the alias and the reference it stands for are one image.
    same = await alice.create("tok-01", image="registry.example/lablup/python:3.6-ubuntu18.04")
    assert same.status == 200 and same.body["created"] is False, same.body
    assert (await bob.create("tok-01", enqueueOnly=True)).status == 201  # tokens are per owner
    destroyed = await alice.call("DELETE", "/kernel/tok-01")
    assert destroyed.status == 200 and destroyed.body["stats"]["status"] == "terminated"
    again = await alice.create("tok-01", image="registry.example/other:1")  # an ended session's token is free
    assert again.status == 201 and again.body["created"] is True


@pytest.mark.parametrize(
    ("body", "detail_has"),
    [
        ({"image": "python:3.6"}, "clientSessionToken"),
        ({"clientSessionToken": "ab", "image": "python:3.6"}, "clientSessionToken"),
        ({"clientSessionToken": "-bad-", "image": "python:3.6"}, "clientSessionToken"),
        ({"clientSessionToken": "n\u00e9e-01", "image": "python:3.6"}, "clientSessionToken"),
        ({"clientSessionToken": "nolang-01"}, "image"),
        ({"clientSessionToken": "batch-01", "image": "python:3.6", "type": "batch"}, "startupCommand"),
        ({"clientSessionToken": "type-01", "image": "python:3.6", "type": "gpu"}, "type"),
        ({"clientSessionToken": "extra-01", "image": "python:3.6", "surprise": 1}, "surprise"),
        (
            {"clientSessionToken": "slot-01", "image": "python:3.6", "config": {"resources": {"tpu": 1}}},
            "tpu",
        ),
        (
            {"clientSessionToken": "mem-01", "image": "python:3.6", "config": {"resources": {"mem": "lots"}}},
            "mem",
        ),
        (
            {"clientSessionToken": "env-01", "image": "python:3.6", "config": {"environ": {"1X": "y"}}},
            "environ",
        ),
        (
            {"clientSessionToken": "env-02", "image": "python:3.6", "config": {"environ": {"A": "x" * 5000}}},
            "environ",
        ),
        (
            {"clientSessionToken": "mnt-01", "image": "python:3.6", "config": {"mounts": ["Bad_Name"]}},
            "mounts",
        ),
        ({"clientSessionToken": "cs-01", "image": "python:3.6", "config": {"clusterSize": 0}}, "clusterSize"),
        ({"clientSessionToken": "wait-01", "image": "python:3.6", "maxWaitSeconds": -1}, "maxWaitSeconds"),
    ],
)
async def test_invalid_create_requests_are_400_and_create_nothing(
    api: RunningApi, body: dict, detail_has: str, kube: client.ApiClient, namespace: str
) -> None:
    answer = await api.client("alice").call("POST", "/kernel", body=body)
    assert answer.status == 400, answer.body
    assert answer.headers["Content-Type"].startswith(PROBLEM)
    assert answer.problem_type == problem("invalid-api-params") and detail_has in answer.body["detail"]
    items = await client.CustomObjectsApi(kube).list_namespaced_custom_object(
        r.GROUP, r.VERSION, namespace, r.PLURAL
    )
    assert items["items"] == []


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe{}", b"[1, 2]", b"[" * 100000 + b"]" * 100000])
async def test_malformed_bodies_are_400(api: RunningApi, raw: bytes) -> None:
    answer = await api.client("alice").call("POST", "/kernel", raw=raw)
    assert answer.status == 400 and answer.problem_type == problem("invalid-api-params"), answer.body


async def test_oversized_body_is_413(api: RunningApi) -> None:
    answer = await api.client("alice").call("POST", "/kernel", raw=b'{"x": "' + b"a" * (2 << 20) + b'"}')
    assert answer.status == 413 and answer.problem_type == problem("request-too-large")


async def test_image_outside_the_table_is_404_image_not_found(api: RunningApi) -> None:
    answer = await api.client("alice").create("img-01", image="quay.io/someone/else:1")
    assert answer.status == 404 and answer.problem_type == problem("image-not-found")
    assert "quay.io" in answer.body["msg"]


@pytest.mark.parametrize(
    ("who", "resources", "cluster"),
    [
        ("alice", {"cpu": 32}, 1),  # server limit: 16 cpu
        ("alice", {"mem": "128g"}, 1),  # server limit: 64Gi
        ("alice", {"cuda.device": 9}, 1),  # server limit: 8 gpu
        ("alice", {}, 5),  # server limit: clusterSize 4
        ("limited", {"cpu": 4}, 1),  # keypair limit: 2 cpu
        ("limited", {"mem": "8g"}, 1),  # keypair limit: 4Gi
    ],
)
async def test_requests_over_the_limits_are_406(
    api: RunningApi, who: str, resources: dict, cluster: int
) -> None:
    answer = await api.client(who).create("big-01", config={"resources": resources, "clusterSize": cluster})
    assert answer.status == 406 and answer.problem_type == problem("resource-limit-exceeded"), answer.body


async def test_concurrent_session_quota_is_412(api: RunningApi) -> None:
    limited = api.client("limited")
    assert (await limited.create("q-01", enqueueOnly=True)).status == 201
    answer = await limited.create("q-02", enqueueOnly=True)
    assert answer.status == 412 and answer.problem_type == problem("quota-exceeded")


async def test_concurrent_creates_cannot_both_take_the_last_slot(api: RunningApi) -> None:
    limited = api.client("limited")  # concurrentSessions: 1
    answers = await asyncio.gather(*(limited.create(f"qc-{i:02}", enqueueOnly=True) for i in range(5)))
    assert sorted(a.status for a in answers) == [201, 412, 412, 412, 412], [a.body for a in answers]


async def test_unknown_kernels_are_404_for_every_verb(api: RunningApi) -> None:
    alice = api.client("alice")
    for method in ("GET", "PATCH", "DELETE"):
        answer = await alice.call(method, "/kernel/nope-01")
        assert answer.status == 404 and answer.problem_type == problem("kernel-not-found"), (
            method,
            answer.body,
        )
    assert (await alice.call("GET", "/kernel/bad%20id")).status == 404


async def test_restart_replays_the_startup_with_reason_restarting(api: RunningApi) -> None:
    alice = api.client("alice")
    assert (await alice.create("rs-01")).body["status"] == "RUNNING"
    before = (await alice.call("GET", "/kernel/rs-01")).body
    assert (await alice.call("PATCH", "/kernel/rs-01")).status == 204
    # As 19.09's manager, the answer comes once the restart has happened: the new kernel runs.
    after = (await alice.call("GET", "/kernel/rs-01")).body
    assert after["status"] == "RUNNING" and after["statusInfo"] == "restarting", after
    assert after["age"] > before["age"] and after["creationTime"] == before["creationTime"]


async def test_destroy_reports_stats_then_the_kernel_is_gone_for_verbs(api: RunningApi) -> None:
    alice = api.client("alice")
    await alice.create("del-01")
    answer = await alice.call("DELETE", "/kernel/del-01")
    assert answer.status == 200
    stats = answer.body["stats"]
    # 19.09's version-1 stats: numbers (the published CLI formats each with int()) and the status.
    assert stats["status"] == "terminated" and stats["cpu_used"] >= 0
    assert all(isinstance(v, int) for k, v in stats.items() if k != "status"), stats
    assert (await alice.call("DELETE", "/kernel/del-01")).status == 404
    assert (await alice.call("PATCH", "/kernel/del-01")).status == 404
    info = await alice.call("GET", "/kernel/del-01")  # kept for the retention period, as TERMINATED
    assert info.status == 200 and info.body["status"] == "TERMINATED" and info.body["terminationTime"]
    assert info.body["statusInfo"] == "user-requested"


async def test_roles_decide_who_sees_what(api: RunningApi) -> None:
    alice_key = api.keypairs["alice"].access_key
    assert (await api.client("alice").create("mine-01", enqueueOnly=True)).status == 201
    # Another user: the session does not exist for it; naming its owner is forbidden.
    assert (await api.client("bob").call("GET", "/kernel/mine-01")).status == 404
    named = await api.client("bob").call("GET", "/kernel/mine-01", params={"owner_access_key": alice_key})
    assert named.status == 403 and named.problem_type == problem("generic-forbidden")
    assert (
        await api.client("bob").call("DELETE", "/kernel/mine-01", params={"owner_access_key": alice_key})
    ).status == 403
    assert (
        await api.client("bob").call("DELETE", "/kernel/mine-01", params={"forced": "true"})
    ).status == 403
    assert (await api.client("bob").create("theirs-01", owner_access_key=alice_key)).status == 403
    # A domain admin of alice's domain may; one of another domain may not; a superadmin may.
    assert (
        await api.client("admin").call("GET", "/kernel/mine-01", params={"owner_access_key": alice_key})
    ).status == 200
    assert (
        await api.client("otheradmin").call("GET", "/kernel/mine-01", params={"owner_access_key": alice_key})
    ).status == 403
    assert (
        await api.client("root").call("GET", "/kernel/mine-01", params={"owner_access_key": alice_key})
    ).status == 200
    # An admin creates for a user of its domain; the session is the user's.
    made = await api.client("admin").create("for-alice", owner_access_key=alice_key, enqueueOnly=True)
    assert made.status == 201
    # As 19.09: an owner_access_key in the query wins over the body's.
    by_query = await api.client("admin").call(
        "POST",
        "/kernel",
        params={"owner_access_key": alice_key},
        body={
            "clientSessionToken": "for-alice-q",
            "image": "python:3.6",
            "enqueueOnly": True,
            "owner_access_key": None,
        },
    )
    assert by_query.status == 201, by_query.body
    assert (await api.client("alice").call("GET", "/kernel/for-alice-q")).status == 200
    assert (await api.client("alice").call("GET", "/kernel/for-alice")).body["ownerAccessKey"] == alice_key
    forced = await api.client("admin").call(
        "DELETE", "/kernel/for-alice", params={"owner_access_key": alice_key, "forced": "true"}
    )
    assert forced.status == 200 and forced.body["stats"]["status"] in ("terminated", "cancelled")
    assert (
        await api.client("admin").call("GET", "/kernel/for-alice", params={"owner_access_key": alice_key})
    ).body["statusInfo"] == "force-terminated"
    # A domain admin cannot act as a superadmin, even of its own domain (borrowing its limits).
    root_key = api.keypairs["root"].access_key
    assert api.keypairs["root"].domain == api.keypairs["admin"].domain
    as_root = await api.client("admin").create("as-root", owner_access_key=root_key, enqueueOnly=True)
    assert as_root.status == 403 and "superadmin" in as_root.body["msg"]
    assert (
        await api.client("admin").call("GET", "/kernel/x-root", params={"owner_access_key": root_key})
    ).status == 403
    assert (
        await api.client("root").create(
            "as-admin", owner_access_key=api.keypairs["admin"].access_key, enqueueOnly=True
        )
    ).status == 201
    # Groups: a user may only use its own (400 "invalid group", as 19.09's manager).
    foreign = await api.client("bob").create("grp-01", group="research")
    assert foreign.status == 400 and "invalid group" in foreign.body["msg"]
    assert (await api.client("bob").create("dom-01", domain="other")).status == 400
    assert (await api.client("alice").create("grp-01", group="research", enqueueOnly=True)).status == 201


class TestSignatures:
    async def test_a_correct_signature_passes(self, api: RunningApi) -> None:
        assert (await api.client("alice").call("GET", "/kernel/none-01")).status == 404

    @pytest.mark.parametrize(
        "breakage",
        ["wrong secret", "unknown key", "tampered path", "tampered query", "signed for another host"],
    )
    async def test_bad_signatures_are_401_and_say_nothing(self, api: RunningApi, breakage: str) -> None:
        alice = api.client("alice")
        sign: dict = {}
        params = {"owner_access_key": api.keypairs["alice"].access_key}
        if breakage == "wrong secret":
            alice.secret_override = "not-the-secret-0123456789"
        elif breakage == "unknown key":
            alice = api.client("alice")
            alice.keypair = alice.keypair.model_copy(update={"access_key": "AKIANOBODY000000"})
        elif breakage == "tampered path":
            sign["sign_path"] = "/kernel/other-01?" + "owner_access_key=" + params["owner_access_key"]
        elif breakage == "tampered query":
            sign["sign_path"] = "/kernel/none-01?owner_access_key=AKIASOMEONEELSE"
        elif breakage == "signed for another host":
            alice.extra_headers = {"Host": "evil.example:443"}
        answer = await alice.call("GET", "/kernel/none-01", params=params, **sign)
        assert answer.status == 401, answer.body
        assert answer.body == {
            "type": problem("auth-failed"),
            "title": "Credential/signature mismatch.",
            "status": 401,
        }

    @pytest.mark.parametrize(
        ("header", "status", "kind"),
        [
            ("Authorization", 401, "auth-failed"),
            ("Date", 400, "invalid-auth-params"),
            ("X-BackendAI-Version", 400, "invalid-auth-params"),
        ],
    )
    async def test_missing_headers_say_which(
        self, api: RunningApi, header: str, status: int, kind: str
    ) -> None:
        """As the 19.09 manager: no credentials is 401; credentials without a date or
        a version are invalid auth parameters (400), and the CLI shows `msg`."""
        alice = api.client("alice")
        headers = alice.signed_headers("GET", "/kernel/none-01")
        headers.pop(header)
        async with api.http.get(
            api.base_url + "/kernel/none-01",
            headers=headers,
            skip_auto_headers=["Date"] if header == "Date" else (),
        ) as resp:
            body = await resp.json()
            assert resp.status == status and resp.content_type == PROBLEM and body["type"] == problem(kind)
            assert header.split("-")[-1].lower() in body["msg"].lower() and body["msg"] == body["detail"]

    @pytest.mark.parametrize("minutes", [16, -16])
    async def test_clock_skew_is_invalid_auth_params(self, api: RunningApi, minutes: int) -> None:
        answer = await api.client("alice").call(
            "GET", "/kernel/none-01", date=datetime.now(UTC) + timedelta(minutes=minutes)
        )
        assert answer.status == 400 and answer.problem_type == problem("invalid-auth-params")
        assert "sync" in answer.body["msg"]

    async def test_date_wins_over_x_backendai_date(self, api: RunningApi) -> None:
        """The request is signed with Date; an X-BackendAI-Date beside it is not what counts."""
        alice = api.client("alice")
        stale = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
        answer = await alice.call("GET", "/kernel/none-01", headers={"X-BackendAI-Date": stale})
        assert answer.status == 404, answer.body
        # Without Date, X-BackendAI-Date is the date: signed with it, the request passes.
        headers = alice.signed_headers("GET", "/kernel/none-01")
        headers["X-BackendAI-Date"] = headers.pop("Date")
        async with api.http.get(
            api.base_url + "/kernel/none-01", headers=headers, skip_auto_headers=["Date"]
        ) as resp:
            assert resp.status == 404, await resp.text()

    async def test_a_date_header_within_the_window_passes(self, api: RunningApi) -> None:
        answer = await api.client("alice").call(
            "GET", "/kernel/none-01", date=datetime.now(UTC) - timedelta(minutes=14)
        )
        assert answer.status == 404

    async def test_unsupported_version_is_400(self, api: RunningApi) -> None:
        answer = await api.client("alice").call(
            "GET", "/kernel/none-01", headers={"X-BackendAI-Version": "v3.1"}
        )
        assert answer.status == 400 and answer.problem_type == problem("unsupported-api-version")

    async def test_a_deactivated_keypair_is_refused(
        self, api: RunningApi, kube: client.ApiClient, namespace: str
    ) -> None:
        from kubernel_api import keypairs as kp

        bob = api.client("bob")
        assert (await bob.call("GET", "/kernel/none-01")).status == 404
        await client.CoreV1Api(kube).patch_namespaced_secret(
            kp.secret_name(api.keypairs["bob"].access_key), namespace, kp.activation_patch(False)
        )

        async def refused() -> bool:
            return (await bob.call("GET", "/kernel/none-01")).status == 401

        await wait_until(refused, timeout=10, what="bob's requests refused")


async def test_errors_of_routing_are_problems_too(api: RunningApi) -> None:
    async with api.http.get(api.base_url + "/nowhere") as resp:
        assert resp.status == 404 and resp.content_type == PROBLEM
        assert (await resp.json())["type"] == problem("generic-not-found")
    async with api.http.put(api.base_url + "/kernel/x-01") as resp:
        assert resp.status == 405 and resp.content_type == PROBLEM and "Allow" in resp.headers


async def test_the_lag_of_lifecycle_entries_is_measured(api: RunningApi) -> None:
    async def lag_count() -> float:
        async with api.http.get(api.metrics_url) as resp:
            text = await resp.text()
        return float(re.search(r"^kubernel_api_lifecycle_entry_lag_seconds_count (\S+)$", text, re.M)[1])

    before = await lag_count()
    assert (await api.client("alice").create("lag-01")).body["status"] == "RUNNING"

    async def measured() -> bool:  # preparing, creating and started at least (pulling if the image is new)
        return await lag_count() >= before + 3

    await wait_until(measured, timeout=10, what="three entries measured")


async def test_health_metrics_and_openapi(api: RunningApi) -> None:
    await api.client("alice").call("GET", "/kernel/none-01")
    async with api.http.get(api.base_url + "/healthz") as resp:
        assert resp.status == 200
    async with api.http.get(api.base_url + "/readyz") as resp:
        assert resp.status == 200
    async with api.http.get(api.metrics_url) as resp:
        text = await resp.text()
        assert (
            'kubernel_api_requests_total{method="GET",route="/kernel/{kernel_id}",status="404"} 1.0' in text
        )
        assert "kubernel_api_open_streams 0.0" in text and "kubernel_api_sse_events_sent_total" in text
        assert re.search(r'^kubernel_api_build_info\{.*version="[^"]+".*\} 1\.0$', text, re.M)
        assert re.search(r"^process_resident_memory_bytes \S+$", text, re.M)
    async with api.http.get(api.base_url + "/metrics") as resp:  # not on the API's port (the Ingress's)
        assert resp.status == 404
    async with api.http.get(api.base_url + "/openapi.json") as resp:
        doc = await resp.json()
        assert doc["openapi"].startswith("3.") and "/kernel/{kernel_id}" in doc["paths"]


async def test_folders_belong_to_someone(api: RunningApi, kube: client.ApiClient, namespace: str) -> None:
    """A claim is mountable by whom its labels name, read-only where they say so; a claim
    that is missing and one that is not the caller's get the same 404 (no oracle)."""
    core = client.CoreV1Api(kube)
    alice_key = api.keypairs["alice"].access_key
    for name, labels in (
        ("alice-data", {"kubernel.io/access-key": alice_key}),
        (
            "research-data",
            {"kubernel.io/group": "research", "kubernel.io/domain": "default", "kubernel.io/access": "ro"},
        ),
        ("plain", {}),
    ):
        await core.create_namespaced_persistent_volume_claim(
            namespace,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            },
        )
    alice, bob = api.client("alice"), api.client("bob")

    async def mounting(who, token: str, mounts: list[str], **fields):
        return await who.create(token, enqueueOnly=True, config={"mounts": mounts}, **fields)

    made = await mounting(alice, "fold-01", ["alice-data", "alice-data:inputs:ro"])
    assert made.status == 201, made.body
    body = await client.CustomObjectsApi(kube).get_namespaced_custom_object(
        r.GROUP, r.VERSION, namespace, r.PLURAL, r.session_name(alice_key, "fold-01")
    )
    assert body["spec"]["mounts"] == [
        {"name": "alice-data", "readOnly": False},
        {"name": "alice-data", "path": "inputs", "readOnly": True},
    ]
    research = await mounting(alice, "fold-02", ["research-data"], group="research")
    assert research.status == 201
    # Not theirs, missing, nobody's: one answer, whatever the reason.
    refusals = [
        await mounting(bob, "fold-03", ["alice-data"]),
        await mounting(bob, "fold-04", ["nosuch"]),
        await mounting(alice, "fold-05", ["plain"]),
        await mounting(alice, "fold-06", ["research-data"]),
    ]
    for refused in refusals:
        assert refused.status == 404 and refused.problem_type == problem("vfolder-not-found"), refused.body
    assert {r_.body["msg"].split("'")[0] for r_ in refusals} == {"no virtual folder "}
    # Read-only for the group: asking to write is refused; paths stay at home.
    writing = await mounting(alice, "fold-07", ["research-data:rw"], group="research")
    assert writing.status == 403 and "read-only" in writing.body["msg"]
    for path in ("alice-data:../etc", "alice-data:/etc", "alice-data:/home/work"):
        assert (await mounting(alice, "fold-08", [path])).status == 400


async def test_a_name_collision_hands_no_one_another_owners_session(
    api: RunningApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names are a slug of the token and a digest of (owner, token); with the digest cut to
    nothing (as a collision found by search would be), two owners' tokens share a name.
    Neither may touch the other's session, and the second create is refused, not handed
    the first one's session ("squatting")."""
    monkeypatch.setattr(r, "DIGEST_HEX", 0)
    alice, bob = api.client("alice"), api.client("bob")
    assert r.session_name(api.keypairs["alice"].access_key, "shared-01") == r.session_name(
        api.keypairs["bob"].access_key, "Shared_01"
    )
    assert (await alice.create("shared-01", enqueueOnly=True)).status == 201
    squat = await bob.create("Shared_01", enqueueOnly=True)
    assert squat.status == 400 and "taken" in squat.body["msg"], squat.body
    for method in ("GET", "PATCH", "DELETE"):
        for token in ("shared-01", "Shared_01"):
            assert (await bob.call(method, f"/kernel/{token}")).status == 404, (method, token)
    mine = await alice.call("GET", "/kernel/shared-01")
    assert mine.status == 200 and mine.body["ownerAccessKey"] == api.keypairs["alice"].access_key
    assert (await alice.call("DELETE", "/kernel/shared-01")).status == 200


async def test_logs_of_a_kernel_whose_node_serves_none_are_409(api: RunningApi) -> None:
    """A simulated node has no kubelet to give logs (the API server answers 500 for it):
    the kernel has no log now, which is not the cluster being unreachable (503)."""
    alice = api.client("alice")
    assert (await alice.create("nolog-01")).body["status"] == "RUNNING"
    answer = await alice.call("GET", "/kernel/nolog-01/logs")
    assert answer.status == 409 and answer.problem_type.endswith("kernel-not-running"), answer.body
