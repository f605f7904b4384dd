"""The runner's HTTP side: one port, the session's token on every call but /health.

Answers are Backend.AI 19.09's shapes (the API passes them on); errors are RFC 7807
problems without internals. docs/runner.md lists the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import MultipartWriter, WSMsgType, web

from . import files, stats
from .batch import Batch
from .identity import Identity, read_identity
from .kernel import JupyterKernel
from .paths import OutsideWorkdir
from .runs import FINISHED, WAITING_INPUT, Run
from .settings import RunnerSettings
from .terminal import Terminal

log = logging.getLogger("kubernel.runner")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BIND_POLL_SECONDS = 0.5
HEALTH_WAIT_MAX = 30.0
MODES = ("query", "batch", "continue", "input")


def problem(status: int, detail: str) -> web.Response:
    titles = {400: "Bad request.", 401: "Authentication failed.", 404: "Not found.", 409: "Busy.",
              413: "Request too large.", 503: "Not ready."}
    return web.json_response({"type": "about:blank", "title": titles.get(status, "Error."), "status": status,
                              "detail": detail}, status=status, content_type="application/problem+json")


class Runner:
    """The bound session's kernel, its runs and the calls on them."""

    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings
        self.identity: Identity | None = None
        self.kernel = JupyterKernel(settings, self._kernel_died)
        self.batch: Batch | None = None
        self.runs: dict[str, Run] = {}
        self.active: Run | None = None
        self.exit_code: int | None = None
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()  # bound, and the interpreter answers

    @property
    def environ(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNEL_RUNNER_") and k != "IPYTHONDIR"}
        return {**base, **(self.identity.environ if self.identity else {}), "HOME": str(self.settings.workdir)}

    async def bind(self, identity: Identity) -> None:
        """The one place a session's identity arrives; the interpreter starts only now."""
        if self.identity is not None:
            raise RuntimeError("already bound")
        self.identity = identity
        await self.kernel.start(identity.environ)
        self.batch = Batch(self.settings, self.environ)
        self.ready.set()
        print(f"kernel ready: pid {os.getpid()}, python {sys.version.split()[0]}", flush=True)

    async def bind_from_directory(self) -> None:
        while (identity := read_identity(self.settings.identity_dir)) is None:
            await asyncio.sleep(BIND_POLL_SECONDS)  # a Secret volume is there at start; a pool would bind later
        await self.bind(identity)

    def _kernel_died(self, code: int | None) -> None:
        """The interpreter is gone (os._exit, the OOM killer): answer what waits, then exit 1."""
        print(f"the kernel exited (status {code}); the runner stops", flush=True)
        self.ready.clear()
        self.exit_code = 1
        if self.active is None or self.active.state == FINISHED:
            self.stopping.set()

    def answered(self, run: Run) -> None:
        """An answer went out: forget a finished run; stop after the last one of a dead kernel."""
        if run.state == FINISHED:
            self.runs.pop(run.id, None)
            if self.active is run:
                self.active = None
            if self.exit_code is not None:
                self.stopping.set()

    def start_run(self, mode: str, code: str, options: dict[str, Any]) -> Run:
        if self.active is not None and self.active.state != FINISHED:
            raise Busy(f"run {self.active.id} is still going; continue it or interrupt it")
        run = Run(self.settings.output_limit)
        self.runs[run.id], self.active = run, run
        if mode == "batch":
            assert self.batch is not None
            asyncio.create_task(self.batch.run(options, run))
        else:
            self.kernel.execute(code, run)
        return run


class Busy(Exception):
    pass


def make_app(runner: Runner) -> web.Application:
    settings = runner.settings

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != "/health":
            if runner.identity is None:
                return problem(503, "no session is bound to this kernel yet")
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {runner.identity.token}".encode()):
                return problem(401, "this kernel accepts only its session's token")
        try:
            return await handler(request)
        except (OutsideWorkdir, ValueError) as exc:  # bad paths, bad JSON, bad values
            return problem(400, str(exc)[:500])
        except FileNotFoundError as exc:
            return problem(404, str(exc)[:500])
        except files.TooLarge as exc:
            return problem(413, str(exc))
        except Busy as exc:
            return problem(409, str(exc))
        except web.HTTPException:
            raise
        except Exception:
            log.exception("runner call %s %s failed", request.method, request.path)
            return problem(500, "the runner failed")

    async def health(request: web.Request) -> web.Response:
        """``?wait=N``: answer as soon as the kernel is ready, within N seconds (at most
        30): a readiness probe with a longer timeout then succeeds the moment it can,
        instead of failing (a Warning Event each time) until then."""
        try:
            wait = min(float(request.query.get("wait", "0")), HEALTH_WAIT_MAX)
        except ValueError:
            wait = 0.0
        if wait > 0 and not runner.ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runner.ready.wait(), wait)
        if runner.identity is None:
            return web.json_response({"status": "unbound"}, status=503)
        if not runner.kernel.alive:
            return web.json_response({"status": "dead" if runner.exit_code else "starting"}, status=503)
        return web.json_response({"status": "ready"})

    async def execute(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not isinstance(body, dict) or body.get("mode", "query") not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        mode, code = body.get("mode", "query"), str(body.get("code") or "")
        if not runner.kernel.alive:
            return problem(503, "the kernel is not running")
        if mode in ("query", "batch"):
            run = runner.start_run(mode, code, body.get("options") or {})
        else:
            run_id = str(body.get("runId") or "")
            run = runner.runs.get(run_id) or _missing(run_id)
            if mode == "input":
                if run.state != WAITING_INPUT:
                    return problem(409, f"run {run_id} is not waiting for input")
                run.resume()
                runner.kernel.send_input(code)
        answer = await run.answer(settings.continue_seconds)
        response = web.json_response(answer)
        await response.prepare(request)
        await response.write_eof()  # sent before a dead kernel's runner exits
        runner.answered(run)
        return response

    async def interrupt(_: web.Request) -> web.Response:
        if runner.active is not None and runner.active.state != FINISHED and runner.batch is not None:
            runner.batch.interrupt()
        await runner.kernel.interrupt()
        return web.Response(status=204)

    async def complete(request: web.Request) -> web.Response:
        body = await request.json()
        code, options = str(body.get("code") or ""), body.get("options") or {}
        line, post = str(options.get("line") or ""), str(options.get("post") or "")
        text = code or line + post
        cursor = len(code) if code else len(line)
        matches = await runner.kernel.complete(text, cursor)
        return web.json_response({"result": {"status": "finished", "completions": matches}})

    async def list_files(request: web.Request) -> web.Response:
        return web.json_response(files.listing(settings.workdir, request.query.get("path", ".")))

    async def upload(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > settings.upload_limit:
            raise files.TooLarge(f"uploads are limited to {settings.upload_limit} bytes")
        uid, gid = (settings.uid, settings.gid) if settings.drops_privileges else (None, None)
        await files.save_uploads(await request.multipart(), settings.workdir, settings.upload_limit, uid, gid)
        return web.Response(status=204)

    async def download(request: web.Request) -> web.Response:
        names = request.query.getall("file", [])
        if not names:
            raise ValueError("name at least one file")
        archives = [files.archive(settings.workdir, name) for name in names]  # all checked before sending
        writer = MultipartWriter("mixed")
        for name, archive in zip(names, archives):
            part = writer.append(archive, {"Content-Type": "application/x-tar"})
            part.set_content_disposition("attachment", filename=os.path.basename(name) + ".tar")
        return web.Response(body=writer)

    async def kernel_stats(_: web.Request) -> web.Response:
        return web.json_response(stats.read())

    async def terminal(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1 << 16)
        await ws.prepare(request)
        term = Terminal(settings, runner.environ, ws.send_str)
        await term.start()
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    break
                try:
                    await term.handle(json.loads(message.data))
                except (ValueError, TypeError, OSError):
                    continue  # a malformed frame is ignored, as 19.09's relay did
        finally:
            await term.stop()
        return ws

    app = web.Application(middlewares=[guard], client_max_size=settings.upload_limit + (1 << 20))
    app.add_routes([web.get("/health", health), web.post("/execute", execute), web.post("/interrupt", interrupt),
                    web.post("/complete", complete), web.get("/files", list_files), web.post("/upload", upload),
                    web.get("/download", download), web.get("/stats", kernel_stats), web.get("/pty", terminal)])
    return app


def _missing(run_id: str) -> Run:
    raise FileNotFoundError(f"no run {run_id!r}")
