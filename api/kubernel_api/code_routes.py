"""HTTP handlers of the calls that run code in a kernel: checked here, passed to the
kernel's code runner (``runner.py``), answered in the 19.09 shapes.

Every call names a live session the caller may act on (the same rules as GET
/kernel/:id), reaches the runner only with its token, and counts as an access
(``numQueriesExecuted``, the idle clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from kubernetes_asyncio.client.exceptions import ApiException

from kubernel.resource import KERNEL_CONTAINER

from . import access
from .code_requests import (
    CompleteRequest,
    DownloadRequest,
    ExecuteRequest,
    FilesRequest,
    StreamExecuteRequest,
)
from .keys import CALLER, KEYPAIRS, KUBE, RUNNER, SERVICE, SETTINGS
from .problems import Problem, ProblemType
from .requests import OwnerQuery, parse
from .routes import json_object, kernel_id_of, query_of
from .runner import Target

log = logging.getLogger("kubernel.api")
TRANSFER_TIMEOUT = 600.0  # uploads and downloads: bounded by size, not by the call timeout
WS_MESSAGE_MAX = 1 << 16
INPUT_WAIT_SECONDS = 3600.0


async def _session(request: web.Request) -> dict:
    """The live session the request names, if the caller may act on it."""
    app, caller = request.app, request[CALLER]
    query = parse(OwnerQuery, query_of(request))
    owner = access.acting_owner(caller, query.owner_access_key, app[KEYPAIRS].get)
    return await app[SERVICE].find(owner, kernel_id_of(request), live_only=True)


async def _runner(request: web.Request) -> tuple[dict, Target]:
    found = await _session(request)
    return found, request.app[RUNNER].target(found)


async def execute(request: web.Request) -> web.Response:
    body = parse(ExecuteRequest, await json_object(request))
    found, target = await _runner(request)
    app = request.app
    _, result = await asyncio.gather(
        app[SERVICE].record_access(found), app[RUNNER].call(target, "POST", "/execute", json=body.to_runner())
    )
    return web.json_response({"result": result})


async def interrupt(request: web.Request) -> web.Response:
    found, target = await _runner(request)
    await request.app[SERVICE].record_access(found)
    await request.app[RUNNER].call(target, "POST", "/interrupt")
    return web.Response(status=204)


async def complete(request: web.Request) -> web.Response:
    body = parse(CompleteRequest, await json_object(request))
    found, target = await _runner(request)
    await request.app[SERVICE].record_access(found)
    answer = await request.app[RUNNER].call(target, "POST", "/complete", json=body.model_dump(mode="json"))
    return web.json_response(answer)


async def list_files(request: web.Request) -> web.Response:
    body = parse(FilesRequest, await json_object(request))
    found, target = await _runner(request)
    await request.app[SERVICE].record_access(found)
    answer = await request.app[RUNNER].call(target, "GET", "/files", params={"path": body.path})
    return web.json_response(answer)


async def _bounded_body(request: web.Request, limit: int, over: asyncio.Event) -> AsyncIterator[bytes]:
    """The request body as it arrives, stopping (and flagging) past ``limit`` bytes."""
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            over.set()
            return
        yield chunk


async def upload(request: web.Request) -> web.Response:
    limit = request.app[SETTINGS].upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Problem(ProblemType.TOO_LARGE, f"uploads are limited to {limit} bytes")
    if not request.content_type.startswith("multipart/"):
        raise Problem(ProblemType.INVALID_PARAMETERS, "the upload must be multipart/form-data")
    found, target = await _runner(request)
    await request.app[SERVICE].record_access(found)
    over = asyncio.Event()
    headers = {"Content-Type": request.headers["Content-Type"]}
    try:
        await request.app[RUNNER].call(
            target,
            "POST",
            "/upload",
            headers=headers,
            timeout=TRANSFER_TIMEOUT,
            data=_bounded_body(request, limit, over),
        )
    except Problem:
        if not over.is_set():
            raise
    if over.is_set():
        raise Problem(ProblemType.TOO_LARGE, f"uploads are limited to {limit} bytes")
    return web.Response(status=204)


async def download(request: web.Request) -> web.StreamResponse:
    body = parse(DownloadRequest, await json_object(request))
    found, target = await _runner(request)
    await request.app[SERVICE].record_access(found)
    params = [("file", name) for name in body.files]
    async with request.app[RUNNER].open(
        target, "GET", "/download", params=params, timeout=TRANSFER_TIMEOUT
    ) as upstream:
        response = web.StreamResponse(headers={"Content-Type": upstream.headers.get("Content-Type", "")})
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(1 << 16):  # streamed: never held whole
            await response.write(chunk)
        await response.write_eof()
    return response


async def logs(request: web.Request) -> web.Response:
    found = await _session(request)
    await request.app[SERVICE].record_access(found)
    pods = (found.get("status") or {}).get("pods") or []
    if not pods:
        raise Problem(ProblemType.KERNEL_NOT_RUNNING, "the kernel has no container yet")
    try:
        text = await request.app[KUBE].pod_log(pods[0], KERNEL_CONTAINER, request.app[SETTINGS].logs_bytes)
    except ApiException as exc:
        if exc.status in (400, 404):  # not started yet, or already removed
            raise Problem(ProblemType.KERNEL_NOT_RUNNING, "the kernel's container has no log now") from None
        if exc.status == 500:  # the API server answered for the node: its kubelet gave no log
            raise Problem(
                ProblemType.KERNEL_NOT_RUNNING, f"the kernel's node did not give its log ({exc.status})"
            ) from None
        raise
    return web.json_response({"result": {"logs": text}})


def _error_result(run_id: str | None, problem: Problem) -> dict:
    """A failure after the websocket opened, told the way the client prints results."""
    return {
        "runId": run_id,
        "status": "finished",
        "exitCode": 1,
        "options": {},
        "files": [],
        "console": [["stderr", f"[kubernel] {problem.kind.title} {problem.detail}".rstrip() + "\n"]],
    }


async def stream_execute(request: web.Request) -> web.WebSocketResponse:
    """GET /stream/kernel/:id/execute: one run, its results pushed as they come; the
    client answers waiting-input with the line typed. A client that leaves mid-run
    interrupts it."""
    found, target = await _runner(request)
    app = request.app
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=app[SETTINGS].max_body_bytes)
    await ws.prepare(request)
    run_id: str | None = None
    finished = False
    try:
        first = await ws.receive(timeout=30)
        if first.type != aiohttp.WSMsgType.TEXT:
            return ws
        try:
            start = parse(StreamExecuteRequest, first.json())
        except ValueError:
            raise Problem(ProblemType.INVALID_PARAMETERS, "the first message must be a JSON object") from None
        await app[SERVICE].record_access(found)
        message = start.to_runner()
        while True:
            result = await app[RUNNER].call(target, "POST", "/execute", json=message)
            run_id = result.get("runId", run_id)
            await ws.send_json(result)
            status = result.get("status")
            if status == "finished":
                finished = True
                break
            if status == "waiting-input":
                reply = await ws.receive(timeout=INPUT_WAIT_SECONDS)
                if reply.type != aiohttp.WSMsgType.TEXT:
                    break
                message = {"mode": "input", "code": reply.data[:WS_MESSAGE_MAX], "runId": run_id}
            else:
                message = {"mode": "continue", "code": "", "runId": run_id}
    except Problem as problem:
        finished = True
        if not ws.closed:
            await ws.send_json(_error_result(run_id, problem))
    except (TimeoutError, ConnectionResetError):
        pass
    finally:
        if run_id is not None and not finished:
            with contextlib.suppress(Problem):
                await app[RUNNER].call(target, "POST", "/interrupt")
        await ws.close()
    return ws


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    async for message in source:
        if message.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        else:
            break


async def stream_pty(request: web.Request) -> web.WebSocketResponse:
    """GET /stream/kernel/:id/pty: the runner's terminal, relayed both ways."""
    found, target = await _runner(request)
    await request.app[SERVICE].record_access(found)
    upstream = await request.app[RUNNER].websocket(target, "/pty")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=WS_MESSAGE_MAX)
    try:
        await ws.prepare(request)
        pumps = [asyncio.create_task(_pump(ws, upstream)), asyncio.create_task(_pump(upstream, ws))]
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                await task
    finally:
        await upstream.close()
        await ws.close()
    return ws
