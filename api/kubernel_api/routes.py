"""HTTP handlers: parse and check the request, call the service, render the answer."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime

from aiohttp import web

import kubernel
from kubernel import model as m
from kubernel.images import ServicePort

from . import access, views
from .events import Cursor
from .keypairs import Role
from .keys import (
    CALLER,
    FANOUT,
    GUARD,
    HUB,
    KEYPAIR_INFORMER,
    KEYPAIRS,
    KUBE,
    LISTINGS,
    RUNNER,
    SERVICE,
    SESSIONS,
    SETTINGS,
)
from .problems import Problem, ProblemType
from .requests import (
    CreateRequest,
    DestroyQuery,
    OwnerQuery,
    StreamQuery,
    grant_mounts,
    mount_requests,
    parse,
    to_spec,
)
from .sse import write_stream
from .stream import StreamFilter

_TOKEN = re.compile(m.TOKEN_PATTERN)


def _now() -> datetime:
    return datetime.now(UTC)


async def json_object(request: web.Request) -> dict:
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_seconds):
            raw = await request.read()
    except TimeoutError:  # a client sending its body too slowly holds a handler no longer
        raise Problem(
            ProblemType.REQUEST_TIMEOUT,
            f"the body did not arrive within {request.app[SETTINGS].body_seconds} s",
        ) from None
    try:
        data = json.loads(raw.decode("utf-8")) if raw else {}
    except UnicodeDecodeError:
        raise Problem(ProblemType.INVALID_PARAMETERS, "the body is not valid UTF-8") from None
    except (ValueError, RecursionError):  # ValueError: JSONDecodeError, over 4300 digits
        raise Problem(ProblemType.INVALID_PARAMETERS, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Problem(ProblemType.INVALID_PARAMETERS, "the body must be a JSON object")
    return data


def query_of(request: web.Request) -> dict[str, str]:
    query: dict[str, str] = {}
    for name, value in request.query.items():
        if name in query:
            raise Problem(ProblemType.INVALID_PARAMETERS, f"query parameter {name!r} given twice")
        query[name] = value
    return query


def offered_ports(app: web.Application, body: dict) -> list[ServicePort]:
    """The app services the image table gives the session's image (alias)."""
    return app[SETTINGS].images.service_ports((body.get("spec") or {}).get("image", ""))


def kernel_id_of(request: web.Request) -> str:
    kernel_id = request.match_info["kernel_id"]
    if not _TOKEN.match(kernel_id) or not 4 <= len(kernel_id) <= 64:
        raise Problem(ProblemType.KERNEL_NOT_FOUND, f"no kernel {kernel_id!r}")
    return kernel_id


async def hello(_: web.Request) -> web.Response:
    return web.json_response({"version": kubernel.API_VERSION, "manager": kubernel.__version__})


async def create(request: web.Request) -> web.Response:
    app, caller = request.app, request[CALLER]
    body = parse(CreateRequest, await json_object(request))
    # As 19.09's manager: an owner_access_key in the query wins over the body's.
    named_owner = parse(OwnerQuery, {k: v for k, v in query_of(request).items() if k == "owner_access_key"})
    owner = access.acting_owner(
        caller, named_owner.owner_access_key or body.owner_access_key, app[KEYPAIRS].get
    )
    domain = access.check_domain(caller, owner, body.domain)
    group = access.check_group(caller, owner, body.group)
    wanted = mount_requests(body.config)
    claims = await app[KUBE].claim_labels({w.name for w in wanted}) if wanted else {}
    mounts = grant_mounts(wanted, claims, m.Owner(access_key=owner.access_key, domain=domain, group=group))
    spec = to_spec(
        body,
        access_key=owner.access_key,
        domain=domain,
        group=group,
        images=app[SETTINGS].images,
        idle_timeout_seconds=app[SETTINGS].default_idle_timeout_seconds,
        mounts=mounts,
    )
    outcome = await app[SERVICE].get_or_create(body, owner, spec)
    return web.json_response(
        views.create_response(
            outcome.body,
            created=outcome.created,
            timed_out=outcome.timed_out,
            offered=offered_ports(app, outcome.body),
        ),
        status=201 if outcome.created else 200,
    )


async def get_info(request: web.Request) -> web.Response:
    app, caller = request.app, request[CALLER]
    query = parse(OwnerQuery, query_of(request))
    owner = access.acting_owner(caller, query.owner_access_key, app[KEYPAIRS].get)
    service = app[SERVICE]
    found = await service.find(owner, kernel_id_of(request), live_only=False)
    measured = None
    if not views.is_terminated(found):
        found, measured = await asyncio.gather(service.record_access(found), app[RUNNER].stats(found))
    return web.json_response(views.kernel_info(found, _now(), measured, offered_ports(app, found)))


async def restart(request: web.Request) -> web.Response:
    app, caller = request.app, request[CALLER]
    query = parse(OwnerQuery, query_of(request))
    owner = access.acting_owner(caller, query.owner_access_key, app[KEYPAIRS].get)
    service = app[SERVICE]
    found = await service.record_access(await service.find(owner, kernel_id_of(request), live_only=True))
    app[GUARD].restart(found["metadata"]["name"], time.monotonic())  # 429 when restarted too often
    await service.restart(found)
    return web.Response(status=204)


async def destroy(request: web.Request) -> web.Response:
    app, caller = request.app, request[CALLER]
    query = parse(DestroyQuery, query_of(request))
    access.check_forced(caller, query.forced)
    owner = access.acting_owner(caller, query.owner_access_key, app[KEYPAIRS].get)
    service = app[SERVICE]
    found = await service.find(owner, kernel_id_of(request), live_only=True)
    measured = await app[RUNNER].stats(found)  # before the container goes
    final, _ = await service.destroy(found, forced=query.forced)
    return web.json_response({"stats": views.final_stats(final, _now(), measured)})


async def stream_events(request: web.Request) -> web.StreamResponse:
    app, caller = request.app, request[CALLER]
    query = parse(StreamQuery, query_of(request))
    owner_key = query.owner_access_key
    if owner_key:
        owner_key = access.acting_owner(caller, owner_key, app[KEYPAIRS].get).access_key
    session_id = None if query.session_id == "*" else query.session_id
    if session_id is not None:
        # A session that does not exist yet is fine: opening the stream first is the
        # race-free way to see a session's whole life (as Backend.AI's manager allows).
        owner_key = owner_key or caller.access_key
    group = None if query.group == "*" else query.group
    if group is not None and not app[KEYPAIRS].group_exists(
        group, None if caller.role == Role.SUPERADMIN else caller.domain
    ):
        raise Problem(ProblemType.GROUP_NOT_FOUND, f"no group {group!r}")
    cursor = None
    if request.headers.get("Last-Event-ID"):
        try:
            cursor = Cursor.decode(request.headers["Last-Event-ID"])
        except ValueError as exc:
            raise Problem(ProblemType.INVALID_PARAMETERS, f"Last-Event-ID: {exc}") from None
    stream_filter = StreamFilter(caller, session_id, owner_key, group)
    with app[GUARD].stream(caller.access_key):
        preface, subscriber = await app[HUB].open(stream_filter, cursor, app[LISTINGS])
        return await write_stream(request, app[HUB], subscriber, preface, app[FANOUT].pacing)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    sessions, keypairs = request.app[SESSIONS], request.app[KEYPAIR_INFORMER]
    ready = sessions.loaded.done() and keypairs.loaded.done() and sessions.healthy
    return web.json_response({"status": "ready" if ready else "not ready"}, status=200 if ready else 503)
