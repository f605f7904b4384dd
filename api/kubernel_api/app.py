"""The aiohttp application: routes, middlewares, and the informers' lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from aiohttp import web
from aiohttp_session import session_middleware
from kubernetes_asyncio.client.exceptions import ApiException

from kubernel import resource as r

from . import code_routes, console_routes, graphql, login_routes, openapi, routes
from . import keypairs as kp
from .auth import KeypairIndex, access_key_of, authenticate
from .cookies import COOKIE_NAME
from .cors import cors_headers, is_preflight
from .guard import Guard
from .holdings import Holdings
from .informer import Change, Informer
from .keys import (
    CALLER,
    FANOUT,
    GUARD,
    HUB,
    KEYPAIR_INFORMER,
    KEYPAIRS,
    KUBE,
    LISTINGS,
    LOGIN_THROTTLES,
    METRICS,
    RATE,
    RUNNER,
    SERVICE,
    SESSIONS,
    SETTINGS,
)
from .kube import Kube
from .listings import SharedListings
from .metrics import Metrics
from .problems import BY_STATUS, PROBLEM_CONTENT_TYPE, Problem, ProblemType
from .recent import Recent
from .runner import RunnerClient
from .service import SessionService
from .settings import ApiSettings
from .sse import Fanout, Pacing
from .stream import Hub
from .throttle import Throttle

log = logging.getLogger("kubernel.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    name: str
    public: bool = False


ROUTES = (
    Route("GET", "/", routes.hello, "hello", public=True),
    Route("POST", "/kernel", routes.create, "create"),
    Route("POST", "/kernel/create", routes.create, "create_legacy"),
    Route("GET", "/kernel/{kernel_id}", routes.get_info, "get_info"),
    Route("PATCH", "/kernel/{kernel_id}", routes.restart, "restart"),
    Route("DELETE", "/kernel/{kernel_id}", routes.destroy, "destroy"),
    Route("POST", "/kernel/{kernel_id}", code_routes.execute, "execute"),
    Route("POST", "/kernel/{kernel_id}/interrupt", code_routes.interrupt, "interrupt"),
    Route("POST", "/kernel/{kernel_id}/complete", code_routes.complete, "complete"),
    Route("GET", "/kernel/{kernel_id}/logs", code_routes.logs, "logs"),
    Route("GET", "/kernel/{kernel_id}/files", code_routes.list_files, "list_files"),
    Route("POST", "/kernel/{kernel_id}/upload", code_routes.upload, "upload"),
    Route("GET", "/kernel/{kernel_id}/download", code_routes.download, "download"),
    Route("GET", "/stream/kernel/_/events", routes.stream_events, "stream_events"),
    Route("GET", "/stream/kernel/{kernel_id}/execute", code_routes.stream_execute, "stream_execute"),
    Route("GET", "/stream/kernel/{kernel_id}/pty", code_routes.stream_pty, "stream_pty"),
    Route("POST", "/admin/graphql", graphql.serve, "graphql"),
    Route("POST", "/server/login", login_routes.login, "login", public=True),
    Route("GET", "/server/login", login_routes.whoami, "whoami", public=True),
    Route("POST", "/server/logout", login_routes.logout, "logout", public=True),
    Route("GET", "/console", console_routes.redirect, "console_redirect", public=True),
    Route("GET", "/console/", console_routes.index, "console_index", public=True),
    Route("GET", "/console/{file}", console_routes.serve, "console", public=True),
    Route("GET", "/healthz", routes.healthz, "healthz", public=True),
    Route("GET", "/readyz", routes.readyz, "readyz", public=True),
    Route("GET", "/openapi.json", openapi.serve, "openapi", public=True),
)
PUBLIC = frozenset(r.name for r in ROUTES if r.public)
ANY_HOST = frozenset({"healthz", "readyz"})


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        problem.body(), status=problem.kind.status, content_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as application/problem+json; never a stack trace to the client."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem, problem.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = BY_STATUS.get(
            exc.status, ProblemType.INVALID_PARAMETERS if exc.status < 500 else ProblemType.INTERNAL
        )
        detail = "" if kind is ProblemType.INTERNAL else exc.reason
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return problem_response(Problem(kind, detail), allow)
    except ApiException as exc:
        if exc.status in (0, 429) or exc.status >= 500:
            return problem_response(
                Problem(ProblemType.UNAVAILABLE, f"Kubernetes API: {exc.status} {exc.reason}")
            )
        if exc.status == 403 and r.QUOTA_EXCEEDED in str(exc.body or ""):  # the namespace's ResourceQuota
            return problem_response(
                Problem(ProblemType.QUOTA_EXCEEDED, "the sessions namespace's ResourceQuota is used up")
            )
        if exc.status == 403 and r.QUOTA_NOT_READY in str(exc.body or ""):  # a quota just made
            return problem_response(Problem(ProblemType.UNAVAILABLE, "the namespace's quota is being set up"))
        if exc.status == 422:  # the API server's own validation of the resource
            return problem_response(
                Problem(ProblemType.INVALID_PARAMETERS, "rejected by the cluster's validation")
            )
        log.error(
            "unexpected Kubernetes API answer on %s %s: %s %s",
            request.method,
            request.path,
            exc.status,
            exc.reason,
        )
        return problem_response(Problem(ProblemType.INTERNAL))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        log.warning("Kubernetes API unreachable on %s %s: %r", request.method, request.path, exc)
        return problem_response(Problem(ProblemType.UNAVAILABLE))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(Problem(ProblemType.INTERNAL))


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    started = time.perf_counter()
    response = await handler(request)
    metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
    metrics.requests.labels(request.method, route, str(response.status)).inc()
    return response


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only the Host names the API serves (KUBERNEL_API_ALLOWED_HOSTS); health checks come
    to the Pod's address, so they answer any."""
    if request.match_info.route.name not in ANY_HOST and not request.app[GUARD].serves_host(request.host):
        raise Problem(ProblemType.INVALID_PARAMETERS, "this API does not serve that Host")
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A signed request, or a browser's login cookie (docs/console.md): the same caller,
    counted against its keypair's rate limit."""
    if request.match_info.route.name not in PUBLIC and request.match_info.http_exception is None:
        app = request.app
        await app[KEYPAIR_INFORMER].loaded
        now = time.monotonic()
        if "Authorization" not in request.headers and COOKIE_NAME in request.cookies:
            caller = await login_routes.cookie_caller(request)
        else:
            caller = _signed_caller(request, app[GUARD], now)
        request[CALLER] = caller
        request[RATE] = app[GUARD].count_request(caller, now)
    return await handler(request)


def _signed_caller(request: web.Request, guard: Guard, now: float) -> kp.Keypair:
    """The signer. A valid signature is never refused for failures of its key or address
    (behind an ingress every client shares its address, and anyone can send garbage with
    someone else's key); a failed one is 429 once its key or address failed too often,
    else counted and 401."""
    authorization = request.headers.get("Authorization")
    access_key, address = access_key_of(authorization), request.remote or ""
    try:
        return authenticate(
            request,
            request.app[KEYPAIRS],
            timedelta(seconds=request.app[SETTINGS].clock_skew_seconds),
            lambda signature: guard.first_use(signature, now),
        )
    except Problem as problem:
        if authorization and problem.kind in (ProblemType.AUTH_FAILED, ProblemType.INVALID_AUTH_PARAMETERS):
            guard.check_failures(access_key, address, now)
            guard.failed(access_key, address, now)
        raise


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS preflights for signed requests from the configured origins (docs/console.md)."""
    if is_preflight(request.method, request.headers):
        headers = cors_headers(
            request.headers.get("Origin"), request.app[SETTINGS].cors_origins, preflight=True
        )
        return web.Response(status=204 if headers else 403, headers=headers)
    return await handler(request)


async def _rate_answer(request: web.Request, response: web.StreamResponse) -> None:
    """Where the caller stands against its rate limit, on every answer to a caller (streams
    too, before their headers go out), as Backend.AI's manager says it."""
    rate = request.get(RATE)
    if rate is not None:
        response.headers.update(rate.headers())


async def _cors_answer(request: web.Request, response: web.StreamResponse) -> None:
    """The CORS headers of every answer, streams too (before their headers go out);
    never Access-Control-Allow-Credentials."""
    if not is_preflight(request.method, request.headers):
        origin = request.headers.get("Origin")
        response.headers.update(cors_headers(origin, request.app[SETTINGS].cors_origins, preflight=False))


def make_app(settings: ApiSettings, kube: Kube) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            cors_middleware,
            metrics_middleware,
            problems_middleware,
            host_middleware,
            session_middleware(
                login_routes.CookieStorage(
                    login_routes.cookie_key(settings.runner_key),
                    settings.login_max_age_seconds,
                    settings.cookie_secure,
                )
            ),
            auth_middleware,
        ],
    )
    metrics = Metrics()
    sessions = Informer("KernelSessions", kube.list_sessions)
    hub = Hub(sessions, metrics, settings.stream_queue_size, Recent(settings.resume_entries))
    keypair_index = KeypairIndex(on_revoke=hub.revoke)
    holdings = Holdings()

    def on_session_change(previous: str, rv: str, changes: list[Change]) -> None:
        holdings.on_change(previous, rv, changes)
        hub.on_change(previous, rv, changes)

    sessions.on_change = on_session_change
    keypair_informer = Informer(
        "keypairs", kube.list_keypairs, on_change=keypair_index.on_change, label_selector=kp.SELECTOR
    )
    app[SETTINGS], app[KUBE], app[METRICS] = settings, kube, metrics
    app[LISTINGS] = SharedListings(kube.sessions_at)
    app[FANOUT] = Fanout(
        hub,
        Pacing(
            settings.retry_ms,
            settings.heartbeat_seconds,
            settings.stream_flush_seconds,
            settings.stream_buffer_bytes,
        ),
        metrics.events_sent,
    )
    app[SESSIONS], app[KEYPAIR_INFORMER], app[KEYPAIRS], app[HUB] = (
        sessions,
        keypair_informer,
        keypair_index,
        hub,
    )
    app.on_response_prepare.append(_cors_answer)
    app.on_response_prepare.append(_rate_answer)
    app[GUARD] = Guard.of(settings)
    app[LOGIN_THROTTLES] = (
        Throttle(settings.login_attempts_per_key, 60),
        Throttle(settings.login_attempts_per_address, 60),
    )
    app[SERVICE] = SessionService(kube, sessions, settings, holdings)
    app[RUNNER] = RunnerClient(kube, settings)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
    app.cleanup_ctx.append(_informers)
    app.on_shutdown.append(_end_streams)
    return app


async def _informers(app: web.Application) -> AsyncIterator[None]:
    await app[RUNNER].start()
    tasks = [
        asyncio.create_task(app[SESSIONS].run(), name="watch-kernelsessions"),
        asyncio.create_task(app[KEYPAIR_INFORMER].run(), name="watch-keypairs"),
        asyncio.create_task(_watch_health(app), name="watch-health"),
        asyncio.create_task(app[FANOUT].run(), name="sse-fanout"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await app[RUNNER].close()


async def _watch_health(app: web.Application) -> None:
    while True:
        app[METRICS].watch_healthy.set(1 if app[SESSIONS].healthy else 0)
        await asyncio.sleep(1)


async def _end_streams(app: web.Application) -> None:
    app[HUB].shutdown()
