"""The runner's HTTP side: one port, the session's token on every call but /health.

Answers are Backend.AI 19.09's shapes (the API passes them on); errors are RFC 7807
problems without internals. docs/runner.md lists the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import signal
import sys
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import MultipartWriter, WSMsgType, web

from . import calls, files, stats
from .batch import Batch
from .identity import Identity, environ_code, parse_bind, read_identity, session_environ
from .kernel import JupyterKernel
from .paths import OutsideWorkdir
from .runs import FINISHED, WAITING_INPUT, Run
from .settings import RunnerSettings
from .terminal import Terminal, error_frame, parse_frame

log = logging.getLogger("kubernel.runner")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BIND_POLL_SECONDS = 0.5
BIND_TIMEOUT = 10.0
"""How long a warm kernel's interpreter may take to take on its session's environment."""
HEALTH_WAIT_MAX = 30.0
DEATH_GRACE_SECONDS = 10.0
"""After the kernel died: how long the runner waits for the pending run's last answer to be fetched."""
TITLES = {
    400: "Bad request.",
    401: "Authentication failed.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Busy.",
    413: "Request too large.",
    503: "Not ready.",
    500: "Internal error.",
}


def problem(status: int, detail: str) -> web.Response:
    """An RFC 7807 answer."""
    return web.json_response(
        {"type": "about:blank", "title": TITLES.get(status, "Error."), "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


class Busy(Exception):
    pass


class AlreadyBound(Exception):
    """A second bind: a kernel serves one session, ever."""


class Runner:
    """The bound session's kernel, its runs and the calls on them."""

    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings
        self.identity: Identity | None = None
        self.environ: dict[str, str] = {}
        self.kernel = JupyterKernel(settings, self._kernel_died)
        self.batch: Batch | None = None
        self.runs: dict[str, Run] = {}  # runs whose last answer was not taken yet
        self.active: Run | None = None
        self.exit_code: int | None = None
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()  # bound, and the interpreter answers
        self.warm = asyncio.Event()  # a warm pool's kernel: the interpreter answers, no session yet
        # What a warm kernel used before its session came (its start): not the session's.
        self.used_before_bind: dict[str, int] = {}
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self._tasks: set[asyncio.Task] = set()

    # -- binding ---------------------------------------------------------------------
    def _environ_of(self, identity: Identity) -> dict[str, str]:
        user = self.settings.user_name if self.settings.uid is not None else None
        return session_environ(os.environ, identity, self.settings.workdir, user)

    async def warm_up(self) -> None:
        """A warm pool's kernel: start the interpreter now, with the container's environment
        and no session's (there is none yet); ``bind`` gives it the session's later."""
        await self.kernel.start(self._environ_of(Identity(token="")))
        self.warm.set()
        print(f"kernel warm: pid {os.getpid()}, python {sys.version.split()[0]}", flush=True)

    async def bind(self, identity: Identity) -> None:
        """The one place a session's identity arrives, once: its token guards the calls from
        now on. A cold kernel's interpreter starts only now, with the session's environment;
        a warm one's takes that environment on before any of the session's code runs. A warm
        kernel whose interpreter refuses it ends (exit 1): it serves no session then."""
        if self.identity is not None:
            raise AlreadyBound("this kernel is bound to a session already")
        self.identity = identity  # before any await: a concurrent second bind is refused
        environ = self._environ_of(identity)
        if self.settings.warm:
            self.used_before_bind = stats.cumulative(await asyncio.to_thread(stats.read))
            try:
                await self.kernel.run_silently(environ_code(environ, self.settings.workdir), BIND_TIMEOUT)
            except RuntimeError:
                self.exit_code = 1
                self.stopping.set()
                raise
        else:
            await self.kernel.start(environ)
        self.environ = environ
        self.batch = Batch(self.settings, self.environ)
        self.ready.set()
        print(f"kernel ready: pid {os.getpid()}, python {sys.version.split()[0]}", flush=True)

    async def bind_from_directory(self) -> None:
        """Bind with the identity directory's files, waiting for them if they are not there yet."""
        assert self.settings.identity_dir is not None
        while (identity := read_identity(self.settings.identity_dir)) is None:  # noqa: ASYNC110 - files, not an event, announce it
            await asyncio.sleep(BIND_POLL_SECONDS)
        await self.bind(identity)

    # -- the kernel's end --------------------------------------------------------------
    def _kernel_died(self, code: int | None) -> None:
        """The interpreter is gone (os._exit, the OOM killer): answer what waits, then exit 1."""
        print(f"the kernel exited (status {code}); the runner stops", flush=True)
        self.ready.clear()
        self.exit_code = 1
        if not any(run.state == FINISHED and not run.final_taken for run in self.runs.values()):
            self.stopping.set()
        else:  # the pending run's answer is fetched first (answered), or not at all
            asyncio.get_running_loop().call_later(DEATH_GRACE_SECONDS, self.stopping.set)

    def answered(self, run: Run) -> None:
        """An answer went out: forget a finished run; stop after the last one of a dead kernel."""
        if run.final_taken:
            self.runs.pop(run.id, None)
            if self.active is run:
                self.active = None
            if self.exit_code is not None:
                self.stopping.set()

    # -- runs --------------------------------------------------------------------------
    async def start_run(self, call: calls.ExecuteRequest) -> Run:
        active = self.active
        if active is not None and active.state != FINISHED:
            if active.state != WAITING_INPUT:
                raise Busy(f"run {active.id} is still going: continue it or interrupt it")
            # Abandoned at its input prompt: interrupted (its input() raises), and forgotten.
            self.runs.pop(active.id, None)
            await self.kernel.interrupt()
        self.runs.clear()  # earlier runs whose last answer nobody fetched
        run = Run(self.settings.output_limit, call.run_id)
        self.runs[run.id], self.active = run, run
        if call.mode == "batch":
            assert self.batch is not None
            task = asyncio.create_task(self.batch.run(call.options, run))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self.kernel.execute(call.code, run)
        return run

    async def interrupt(self) -> None:
        """The batch command if one runs (19.09 did the same), else the interpreter."""
        if self.batch is not None and self.batch.process is not None:
            self.batch.signal()
        else:
            await self.kernel.interrupt()

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self.batch is not None:
            self.batch.signal(signal.SIGKILL)
        await self.kernel.stop()


def make_app(runner: Runner) -> web.Application:
    settings = runner.settings

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/bind":
            if settings.bind_token is None:
                return problem(404, "this kernel is bound at start, not by a call")
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {settings.bind_token}".encode()):
                return problem(401, "only the operator binds this kernel")
        elif request.path != "/health":
            if runner.identity is None:
                return problem(503, "no session is bound to this kernel yet")
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {runner.identity.token}".encode()):
                return problem(401, "this kernel accepts only its session's token")
        try:
            return await handler(request)
        except (
            OutsideWorkdir,
            ValueError,
            NotADirectoryError,
            IsADirectoryError,
        ) as exc:  # paths, JSON, values
            return problem(400, str(exc)[:500] or "the request is not usable")
        except FileNotFoundError as exc:
            return problem(404, str(exc)[:500])
        except files.TooLarge as exc:
            return problem(413, str(exc))
        except (Busy, AlreadyBound) as exc:
            return problem(409, str(exc))
        except web.HTTPRequestEntityTooLarge:
            return problem(413, "the request body is too large")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return problem(exc.status, exc.reason)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("runner call %s %s failed", request.method, request.path)
            return problem(500, "the runner failed")

    async def health(request: web.Request) -> web.Response:
        """No token, nothing but the state. ``?wait=N``: answer as soon as the kernel is
        ready, within N seconds (at most 30), so that a readiness probe with a longer
        timeout succeeds the moment it can instead of failing until then."""
        try:
            wait = min(float(request.query.get("wait", "0")), HEALTH_WAIT_MAX)
        except ValueError:
            wait = 0.0
        awaited = runner.warm if settings.warm and runner.identity is None else runner.ready
        if wait > 0 and not awaited.is_set() and runner.exit_code is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(awaited.wait(), wait)
        if runner.exit_code is not None:
            return web.json_response({"status": "dead"}, status=503)
        if runner.identity is None and runner.warm.is_set() and runner.kernel.alive:
            return web.json_response({"status": "warm"})  # ready to be claimed: the Pod is Ready
        if runner.identity is None:
            return web.json_response({"status": "unbound"}, status=503)
        if not runner.ready.is_set() or not runner.kernel.alive:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ready"})

    async def bind(request: web.Request) -> web.Response:
        if not runner.warm.is_set() or not runner.kernel.alive:
            return problem(503, "the interpreter is not up yet")
        try:
            await runner.bind(parse_bind(await request.json()))
        except RuntimeError as exc:  # the interpreter refused: this kernel ends
            return problem(503, f"the bind failed: {exc}")
        return web.json_response({"status": "ready"})

    async def execute(request: web.Request) -> web.StreamResponse:
        call = calls.parse_execute(await request.json())
        if call.mode in ("query", "batch"):
            if not runner.kernel.alive or runner.exit_code is not None:
                return problem(503, "the kernel is not running")
            run = await runner.start_run(call)
        else:
            assert call.run_id is not None
            run = runner.runs.get(call.run_id) or _missing(call.run_id)
            if call.mode == "input":
                if run.state != WAITING_INPUT:
                    return problem(409, f"run {run.id} is not waiting for input")
                run.resume()
                runner.kernel.send_input(call.code)
        response = web.json_response(await run.answer(settings.continue_seconds))
        await response.prepare(request)
        await response.write_eof()  # sent before a dead kernel's runner exits
        runner.answered(run)
        return response

    async def interrupt(_: web.Request) -> web.Response:
        await runner.interrupt()
        return web.Response(status=204)

    async def complete(request: web.Request) -> web.Response:
        text, cursor = calls.parse_complete(await request.json())
        active = runner.active
        busy = active is not None and active.state != FINISHED  # the kernel would answer after the run
        matches = [] if busy or not runner.kernel.alive else await runner.kernel.complete(text, cursor)
        return web.json_response({"result": {"status": "finished", "completions": matches}})

    async def list_files(request: web.Request) -> web.Response:
        path = calls.parse_path(request.query.get("path"), ".")
        return web.json_response(await asyncio.to_thread(files.listing, settings.workdir, path))

    async def upload(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > settings.upload_limit:
            raise files.TooLarge(f"uploads are limited to {settings.upload_limit} bytes per request")
        if not request.content_type.startswith("multipart/"):
            raise ValueError("an upload is multipart/form-data")
        owner = (settings.uid, settings.gid) if settings.drops_privileges else None
        await files.save_uploads(await request.multipart(), settings.workdir, settings.upload_limit, owner)  # type: ignore[arg-type]
        return web.Response(status=204)

    async def download(request: web.Request) -> web.Response:
        names = calls.parse_download(request.query.getall("file", []))
        archives = []
        try:
            for name in names:  # all of them checked before anything is sent
                archives.append(await asyncio.to_thread(files.archive, settings.workdir, name))
        except BaseException:
            for spool in archives:
                spool.close()
            raise
        writer = MultipartWriter("mixed")
        for spool in archives:  # as 19.09: one tar archive per part
            writer.append(spool, {"Content-Type": "application/octet-stream", "Content-Encoding": "identity"})
        return web.Response(body=writer)

    async def kernel_stats(_: web.Request) -> web.Response:
        return web.json_response(stats.since(await asyncio.to_thread(stats.read), runner.used_before_bind))

    async def terminal(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1 << 20)
        await ws.prepare(request)
        runner.sockets.add(ws)
        term = Terminal(settings, runner.environ, ws.send_str)
        try:
            await term.start()
        except OSError as exc:
            await ws.send_str(error_frame(f"the terminal could not start: {exc.strerror or exc}"))
            await ws.close()
            return ws

        async def receive() -> None:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    break
                try:
                    await term.handle(*parse_frame(message.data))
                except (ValueError, OSError) as exc:
                    await ws.send_str(error_frame(str(exc)[:500]))

        tasks = [asyncio.create_task(receive()), asyncio.create_task(term.ended.wait())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await term.stop()
            await ws.close()
        return ws

    async def on_shutdown(_: web.Application) -> None:
        for ws in list(runner.sockets):
            await ws.close()

    app = web.Application(middlewares=[guard], client_max_size=1 << 22)
    app.on_shutdown.append(on_shutdown)
    app.add_routes(
        [
            web.get("/health", health),
            web.post("/bind", bind),
            web.post("/execute", execute),
            web.post("/interrupt", interrupt),
            web.post("/complete", complete),
            web.get("/files", list_files),
            web.post("/upload", upload),
            web.get("/download", download),
            web.get("/stats", kernel_stats),
            web.get("/pty", terminal),
        ]
    )
    return app


def _missing(run_id: str) -> Any:
    raise FileNotFoundError(f"there is no run {run_id!r} (unknown, or finished and answered)")
