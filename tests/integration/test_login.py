"""Cookie login for browsers, CSRF and CORS, through a real socket (docs/console.md)."""

from __future__ import annotations

from http.cookies import SimpleCookie

import aiohttp
import pytest
from kubernetes_asyncio import client
from yarl import URL

from kubernel_api import keypairs as kp
from kubernel_testkit.waiting import wait_until

from .conftest import RunningApi

PROBLEM = "application/problem+json"


def cookie_of(response: aiohttp.ClientResponse) -> SimpleCookie:
    jar = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


async def login(api: RunningApi, name: str, http: aiohttp.ClientSession, **headers: str) -> dict:
    keypair = api.keypairs[name]
    async with http.post(
        api.base_url + "/server/login",
        json={"accessKey": keypair.access_key, "secretKey": keypair.secret_key},
        headers=headers,
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


@pytest.fixture
async def browser_http() -> aiohttp.ClientSession:
    """A client with a cookie jar, as a browser has (unsafe: the test server is an IP)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield http


async def test_login_sets_a_strict_http_only_cookie(api: RunningApi) -> None:
    keypair = api.keypairs["alice"]
    body = {"accessKey": keypair.access_key, "secretKey": keypair.secret_key}
    async with api.http.post(api.base_url + "/server/login", json=body) as resp:
        assert resp.status == 200
        who = await resp.json()
        morsel = cookie_of(resp)["KUBERNEL_SESSION"]
    assert who["accessKey"] == keypair.access_key and who["role"] == "user" and len(who["csrfToken"]) >= 32
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert int(morsel["max-age"]) == 8 * 3600 and not morsel["secure"]  # plain HTTP here
    async with api.http.post(
        api.base_url + "/server/login", json=body, headers={"X-Forwarded-Proto": "https"}
    ) as resp:
        again = cookie_of(resp)["KUBERNEL_SESSION"]
        assert again["secure"] and again.value != morsel.value  # TLS at the proxy; a new cookie
        assert (await resp.json())["csrfToken"] != who["csrfToken"]


@pytest.mark.parametrize(
    "body",
    [
        {"accessKey": "AKIAALICE", "secretKey": "wrong"},
        {"accessKey": "AKIANOSUCHKEY00000", "secretKey": "x" * 40},
    ],
)
async def test_a_wrong_login_is_401_without_detail(api: RunningApi, body: dict) -> None:
    if body["accessKey"] == "AKIAALICE":
        body = {**body, "accessKey": api.keypairs["alice"].access_key}
    async with api.http.post(api.base_url + "/server/login", json=body) as resp:
        assert resp.status == 401 and resp.content_type == PROBLEM
        problem = await resp.json()
        assert "detail" not in problem and "Set-Cookie" not in resp.headers


async def test_bad_login_bodies_are_400(api: RunningApi) -> None:
    for body in ({}, {"accessKey": "x" * 65, "secretKey": "y"}, {"accessKey": "a", "secretKey": "b", "c": 1}):
        async with api.http.post(api.base_url + "/server/login", json=body) as resp:
            assert resp.status == 400 and resp.content_type == PROBLEM


async def test_the_cookie_authorises_like_a_signature(api: RunningApi, browser_http) -> None:
    who = await login(api, "alice", browser_http)
    csrf = {"X-Kubernel-CSRF": who["csrfToken"]}
    async with browser_http.post(
        api.base_url + "/kernel",
        json={"clientSessionToken": "cookie-01", "image": "python:3.6"},
        headers=csrf,
    ) as resp:
        assert resp.status == 201, await resp.text()
    async with browser_http.get(api.base_url + "/kernel/cookie-01") as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "RUNNING"
    # The same rules as alice's signature: bob's session is not hers.
    await api.client("bob").create("bobs-01")
    owner = api.keypairs["bob"].access_key
    async with browser_http.get(api.base_url + f"/kernel/bobs-01?owner_access_key={owner}") as resp:
        assert resp.status == 403
    async with browser_http.get(api.base_url + "/server/login") as resp:
        assert resp.status == 200 and (await resp.json())["csrfToken"] == who["csrfToken"]
    # GraphQL lists hers only.
    query = {"query": "{ compute_session_list(limit: 10, offset: 0) { items { sess_id access_key } } }"}
    async with browser_http.post(api.base_url + "/admin/graphql", json=query, headers=csrf) as resp:
        items = (await resp.json())["compute_session_list"]["items"]
        assert [i["sess_id"] for i in items] == ["cookie-01"]


async def test_state_changes_need_the_csrf_token_and_the_own_origin(api: RunningApi, browser_http) -> None:
    who = await login(api, "alice", browser_http)
    create = {"clientSessionToken": "csrf-01", "image": "python:3.6"}
    for headers in (
        {},  # no token
        {"X-Kubernel-CSRF": "not-the-token"},
        {"X-Kubernel-CSRF": who["csrfToken"], "Origin": "https://evil.example"},
        {"X-Kubernel-CSRF": who["csrfToken"], "Sec-Fetch-Site": "cross-site"},
    ):
        async with browser_http.post(api.base_url + "/kernel", json=create, headers=headers) as resp:
            assert resp.status == 403 and resp.content_type == PROBLEM, headers
    async with browser_http.get(
        api.base_url + "/kernel/csrf-01", headers={"Origin": "https://evil.example"}
    ) as r:
        assert r.status == 403
    async with browser_http.get(api.base_url + "/kernel/csrf-01") as resp:
        assert resp.status == 404  # nothing was created
    async with browser_http.post(
        api.base_url + "/server/login",
        json={"accessKey": api.keypairs["alice"].access_key, "secretKey": api.keypairs["alice"].secret_key},
        headers={"Origin": "https://evil.example"},
    ) as resp:
        assert resp.status == 403  # no login from another site's page


async def test_missing_forged_and_logged_out_cookies_are_401(api: RunningApi, browser_http) -> None:
    async with api.http.get(
        api.base_url + "/kernel/x-01", headers={"Cookie": "KUBERNEL_SESSION=forged"}
    ) as r:
        assert r.status == 401 and r.content_type == PROBLEM
    async with api.http.get(api.base_url + "/server/login") as resp:
        assert resp.status == 401
    await login(api, "alice", browser_http)
    async with browser_http.post(api.base_url + "/server/logout") as resp:
        assert resp.status == 200
    async with browser_http.get(api.base_url + "/server/login") as resp:
        assert resp.status == 401


async def test_a_login_dies_with_its_keypair(
    api: RunningApi, browser_http, kube: client.ApiClient, namespace: str
) -> None:
    await login(api, "bob", browser_http)
    async with browser_http.get(api.base_url + "/server/login") as resp:
        assert resp.status == 200
    secrets = await client.CoreV1Api(kube).list_namespaced_secret(namespace, label_selector=kp.SELECTOR)
    bobs = next(
        s
        for s in secrets.items
        if kp.from_secret(kube.sanitize_for_serialization(s)).access_key == api.keypairs["bob"].access_key
    )
    await client.CoreV1Api(kube).patch_namespaced_secret(
        bobs.metadata.name, namespace, kp.activation_patch(False)
    )

    async def refused() -> bool:
        async with browser_http.get(api.base_url + "/server/login") as resp:
            return resp.status == 401

    await wait_until(refused, timeout=10, what="the deactivated keypair's login refused")
    async with browser_http.get(api.base_url + "/kernel/any-01") as resp:
        assert resp.status == 401


async def test_login_attempts_are_limited(api: RunningApi) -> None:
    body = {"accessKey": api.keypairs["root"].access_key, "secretKey": "wrong" * 8}
    statuses = []
    for _ in range(12):
        async with api.http.post(api.base_url + "/server/login", json=body) as resp:
            statuses.append(resp.status)
            if resp.status == 429:
                assert int(resp.headers["Retry-After"]) >= 1 and resp.content_type == PROBLEM
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    # The right secret is never refused for the failures of others (or of its own key).
    right = {"accessKey": api.keypairs["root"].access_key, "secretKey": api.keypairs["root"].secret_key}
    async with api.http.post(api.base_url + "/server/login", json=right) as resp:
        assert resp.status == 200
    # Another key from the same address is not throttled by root's count (yet).
    other = {"accessKey": api.keypairs["admin"].access_key, "secretKey": api.keypairs["admin"].secret_key}
    async with api.http.post(api.base_url + "/server/login", json=other) as resp:
        assert resp.status == 200


async def test_cors_for_signed_requests_never_with_credentials(api: RunningApi) -> None:
    origin = {"Origin": "https://app.example"}
    preflight = {
        **origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    async with api.http.options(api.base_url + "/kernel", headers=preflight) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
        assert "Access-Control-Allow-Credentials" not in resp.headers
    answer = await api.client("alice").call("GET", "/kernel/none-01", headers=origin)
    assert answer.status == 404 and answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    async with api.http.options(api.base_url + "/kernel") as resp:  # not a preflight
        assert resp.status == 405


async def test_another_replica_accepts_the_cookie(
    api: RunningApi, browser_http, kube: client.ApiClient, namespace: str
) -> None:
    """Replicas share the runner key's Secret, so the cookie key too."""
    from .conftest import api_settings, start_api

    who = await login(api, "alice", browser_http)
    runner, other_url = await start_api(kube, api_settings(namespace))
    try:
        cookie = {
            "Cookie": f"KUBERNEL_SESSION={browser_http.cookie_jar.filter_cookies(URL(api.base_url))['KUBERNEL_SESSION'].value}"
        }

        async def answered() -> bool:  # once its keypair cache is loaded
            async with api.http.get(other_url + "/server/login", headers=cookie) as resp:
                return resp.status == 200 and (await resp.json())["csrfToken"] == who["csrfToken"]

        await wait_until(answered, timeout=10, what="the other replica's answer")
    finally:
        await runner.cleanup()


async def test_an_expired_cookie_is_401(
    api: RunningApi, browser_http, kube: client.ApiClient, namespace: str
) -> None:
    """Older than its Max-Age, a cookie is refused even when the client keeps sending it."""
    from .conftest import api_settings, start_api

    runner, short_url = await start_api(kube, api_settings(namespace, login_max_age_seconds=1))
    keypair = api.keypairs["alice"]
    body = {"accessKey": keypair.access_key, "secretKey": keypair.secret_key}
    try:

        async def logged_in() -> str | None:
            async with api.http.post(short_url + "/server/login", json=body) as resp:
                return cookie_of(resp)["KUBERNEL_SESSION"].value if resp.status == 200 else None

        cookie = {"Cookie": f"KUBERNEL_SESSION={await wait_until(logged_in, timeout=10, what='a login')}"}

        async def expired() -> bool:
            async with api.http.get(short_url + "/server/login", headers=cookie) as resp:
                return resp.status == 401

        await wait_until(expired, timeout=10, what="the cookie expired")
        async with api.http.get(short_url + "/kernel/any-01", headers=cookie) as resp:
            assert resp.status == 401 and resp.content_type == PROBLEM
    finally:
        await runner.cleanup()
