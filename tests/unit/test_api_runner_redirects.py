"""A kernel cannot send the API elsewhere: a runner's redirect is refused, for plain calls
and websockets alike, and the address it names is never asked (real sockets, no cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pydantic import SecretBytes

from kubernel_api.problems import Problem
from kubernel_api.runner import RunnerClient, Target
from kubernel_api.settings import ApiSettings
from kubernel_testkit.processes import free_port


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[str, list[str]]]:
    """A "runner" that redirects everything to an internal service, which records its visitors."""
    visits: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        visits.append(f"{request.method} {request.path}")
        return web.Response(text="the cluster's secrets")

    inside, inside_url = await serve(_app(internal))

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(inside_url + "/api/v1/secrets")

    outside, outside_url = await serve(_app(redirect))
    yield outside_url, visits
    await outside.cleanup()
    await inside.cleanup()


def _app(handler) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.fixture
async def client() -> AsyncIterator[RunnerClient]:
    runners = RunnerClient(None, ApiSettings(runner_key_value=SecretBytes(b"k" * 32)))  # type: ignore[arg-type]
    await runners.start()
    yield runners
    await runners.close()


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_redirecting_runner_is_refused(
    client: RunnerClient, hostile: tuple[str, list[str]], method: str
) -> None:
    url, visits = hostile
    with pytest.raises(Problem) as refused:
        await client.call(Target(url, "t" * 40), method, "/execute", json={"mode": "query", "code": "1"})
    assert refused.value.kind.value[1] == 502 and "redirect" in refused.value.detail
    assert visits == []


async def test_a_redirecting_runner_gets_no_websocket(
    client: RunnerClient, hostile: tuple[str, list[str]]
) -> None:
    url, visits = hostile
    with pytest.raises(Problem) as refused:
        await client.websocket(Target(url, "t" * 40), "/pty")
    assert "redirect" in refused.value.detail
    assert visits == []
