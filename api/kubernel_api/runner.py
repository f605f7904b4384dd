"""Calls to a kernel's code runner (the I/O edge): where it is, its token, bounded answers.

The runner (docs/runner.md) listens on the main kernel Pod's IP and accepts only
requests with its session's token, which the operator keeps in a Secret the
session's user never sees; the API derives the same token from the key the two
share (``kubernel.runner.token``) and reads no Secret. Every answer is read up to ``runner_response_bytes``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from kubernel import runner as rn
from kubernel.lifecycle import API_STATUS, Phase

from .kube import Kube
from .problems import Problem, ProblemType
from .settings import ApiSettings

LOOP_DECODE_BYTES = 1 << 16
STATS_TIMEOUT = 1.0  # GET and DELETE answer without them rather than wait
# What a runner's error status means to our client (its problem detail is kept).
RUNNER_STATUS = {
    400: ProblemType.INVALID_PARAMETERS,
    404: ProblemType.KERNEL_OBJECT_NOT_FOUND,
    409: ProblemType.KERNEL_BUSY,
    413: ProblemType.TOO_LARGE,
}


@dataclass(frozen=True)
class Target:
    """One kernel's runner: its base URL and the bearer token it accepts."""

    url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def runner_address(body: Mapping[str, Any]) -> str:
    """host:port of the session's runner, or the problem that it has none now (pure)."""
    status = body.get("status") or {}
    phase = status.get("phase", Phase.PENDING)
    if phase != Phase.RUNNING:
        raise Problem(
            ProblemType.KERNEL_NOT_RUNNING,
            f"the kernel is {API_STATUS[Phase(phase)]}; code runs once it is RUNNING",
        )
    address = status.get("kernelAddress")
    if not address:
        image = (body.get("spec") or {}).get("image", "")
        raise Problem(
            ProblemType.NO_CODE_RUNNER,
            f"the image {image!r} has no code runner in this cluster's "
            "image table (or its node is simulated)",
        )
    return address


def problem_of(status: int, body: bytes) -> Problem:
    """A runner's error answer as ours (pure): its detail kept, never its internals."""
    try:
        detail = str(json.loads(body).get("detail", ""))[:1000]
    except (ValueError, AttributeError):
        detail = ""
    kind = RUNNER_STATUS.get(status)
    if kind is None:  # 401 (token changed), 5xx: not the client's doing
        return Problem(ProblemType.RUNNER_FAILED, f"the code runner answered {status}")
    return Problem(kind, detail)


async def refuse_redirects(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Runner answers are never followed elsewhere: whatever answers on a kernel's Pod IP
    runs the user's code, and a redirect would have the API fetch (or POST to, with a 307)
    any address it can reach and pass the answer on. Each request of a redirect chain
    passes here (aiohttp's client middlewares), websockets' handshakes included."""
    response = await handler(request)
    if 300 <= response.status < 400:
        response.release()
        raise Problem(ProblemType.RUNNER_FAILED, "the code runner answered with a redirect")
    return response


class RunnerClient:
    def __init__(self, kube: Kube, settings: ApiSettings) -> None:
        self.kube = kube
        self.settings = settings
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            trust_env=False,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, connect=3),
            middlewares=(refuse_redirects,),
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "RunnerClient.start() not called"
        return self._http

    def target(self, body: Mapping[str, Any]) -> Target:
        address = runner_address(body)
        meta = body["metadata"]
        token = rn.token(
            self.settings.runner_key,
            meta.get("namespace") or self.settings.namespace,
            meta["name"],
            meta["uid"],
        )
        return Target(f"http://{address}", token)

    @asynccontextmanager
    async def open(
        self,
        target: Target,
        method: str,
        path: str,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A raw response (to stream); runner errors and unreachable runners raise Problems."""
        wait = aiohttp.ClientTimeout(total=timeout or self.settings.runner_timeout_seconds, connect=3)
        try:
            async with self.http.request(
                method,
                target.url + path,
                timeout=wait,
                headers={**target.headers, **(headers or {})},
                **kwargs,
            ) as response:
                if response.status >= 400:
                    raise problem_of(response.status, await self._bounded(response))
                yield response
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Problem(
                ProblemType.UNAVAILABLE,
                f"the kernel's code runner is not reachable ({type(exc).__name__}); try again",
            ) from None

    async def call(self, target: Target, method: str, path: str, **kwargs: Any) -> Any:
        """A JSON call: the decoded answer (None for 204)."""
        async with self.open(target, method, path, **kwargs) as response:
            data = await self._bounded(response)
            if response.status == 204 or not data:
                return None
            try:
                # A large answer is decoded off the event loop: 4 MiB of JSON is some 100 ms
                # of CPU that every other request would wait for.
                return (
                    json.loads(data)
                    if len(data) < LOOP_DECODE_BYTES
                    else await asyncio.to_thread(json.loads, data)
                )
            except ValueError:
                raise Problem(ProblemType.RUNNER_FAILED, "the code runner's answer is not JSON") from None

    async def stats(self, body: Mapping[str, Any]) -> dict | None:
        """The container's figures from its runner, or None (no runner, not running, no answer in time)."""
        status = body.get("status") or {}
        if status.get("phase") != Phase.RUNNING or not status.get("kernelAddress"):
            return None
        try:
            answer = await self.call(self.target(body), "GET", "/stats", timeout=STATS_TIMEOUT)
        except Problem:
            return None
        return answer if isinstance(answer, dict) else None

    async def websocket(self, target: Target, path: str) -> aiohttp.ClientWebSocketResponse:
        try:
            return await self.http.ws_connect(
                target.url + path,
                headers=target.headers,
                heartbeat=30,
                max_msg_size=self.settings.runner_response_bytes,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise problem_of(exc.status, b"") from None
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Problem(
                ProblemType.UNAVAILABLE,
                f"the kernel's code runner is not reachable ({type(exc).__name__}); try again",
            ) from None

    async def _bounded(self, response: aiohttp.ClientResponse) -> bytes:
        limit, size, chunks = self.settings.runner_response_bytes, 0, []
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise Problem(ProblemType.RUNNER_FAILED, f"the code runner's answer exceeds {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
