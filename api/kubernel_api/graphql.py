"""POST /admin/graphql: the subset of Backend.AI 19.09's admin GraphQL its client
uses to list sessions (``backend.ai ps``, ``backend.ai admin sessions``/``session``)
and to ask whether its keypair is an admin. Served with ariadne (schema first).

The rules are REST's (``access.py``): a user sees its own sessions only, a domain
admin its domain's, a superadmin all. As the 19.09 manager did, a successful
answer is the ``data`` object itself; errors are a 400 problem.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from ariadne import QueryType, ScalarType, graphql, make_executable_schema
from ariadne.validation import cost_validator
from graphql import ASTValidationRule, GraphQLError, GraphQLResolveInfo

from kubernel.lifecycle import API_STATUS, Phase
from kubernel.resource import owns, session_name

from . import access, views
from .keypairs import Keypair, Role
from .keys import CALLER, KEYPAIRS, SESSIONS, SETTINGS
from .problems import Problem, ProblemType
from .routes import json_object

PAGE_MAX = 100
QUERY_MAX = 16384
log = logging.getLogger("kubernel.api")
# ariadne logs every error with its traceback, the client's syntax errors too: those
# are answered (400) and not logged; a resolver's own failure is logged by
# _format_error below.
_CLIENT_ERRORS = logging.getLogger("kubernel.api.graphql-client-errors")
_CLIENT_ERRORS.addHandler(logging.NullHandler())
_CLIENT_ERRORS.propagate = False

SCHEMA = """
scalar BigInt
scalar DateTime
scalar JSONString

type Query {
  keypair(access_key: String): KeyPair
  compute_session(sess_id: String!, access_key: String): ComputeSession
  compute_session_list(limit: Int!, offset: Int!, access_key: String, status: String,
                       domain_name: String, group_id: String): ComputeSessionList
}

type KeyPair {
  access_key: String
  secret_key: String
  is_active: Boolean
  is_admin: Boolean
  user_id: String
  domain_name: String
  created_at: DateTime
}

type ComputeSessionList {
  items: [ComputeSession]!
  total_count: Int!
}

type ComputeSession {
  id: ID
  sess_id: String
  sess_type: String
  role: String
  image: String
  lang: String
  registry: String
  tag: String
  domain_name: String
  group_name: String
  group_id: String
  access_key: String
  status: String
  status_info: String
  status_changed: DateTime
  created_at: DateTime
  terminated_at: DateTime
  result: String
  agent: String
  container_id: String
  occupied_slots: JSONString
  service_ports: JSONString
  mounts: [String]
  num_queries: BigInt
  cpu_used: BigInt
  mem_max_bytes: BigInt
  mem_cur_bytes: BigInt
  net_rx_bytes: BigInt
  net_tx_bytes: BigInt
  io_read_bytes: BigInt
  io_write_bytes: BigInt
  io_max_scratch_size: BigInt
  io_cur_scratch_size: BigInt
  cpu_using: Float
}
"""

# A query's cost: 1 per field, and a session list costs its `limit` (its items cost no
# more: one page is the unit of work). The 19.09 client's lists cost about 100-140; 289
# aliased lists of 100 in 16 KiB cost 29,478 and held the event loop for 1.27 s.
COST_MAP = {"Query": {"compute_session_list": {"complexity": 1, "multipliers": ["limit"]}}}


def cost_rule(variables: dict[str, Any], maximum: int) -> type[ASTValidationRule]:
    """The validation rule that refuses a query costing more than ``maximum`` before it runs."""
    return cost_validator(maximum_cost=maximum, default_cost=1, variables=variables, cost_map=COST_MAP)


query = QueryType()
big_int = ScalarType("BigInt", serializer=int)  # byte counts pass GraphQL's 32-bit Int


def _caller(info: GraphQLResolveInfo) -> Keypair:
    return info.context["request"][CALLER]


def _owner_filter(caller: Keypair, access_key: str | None, lookup: Any) -> str | None:
    """The access key to filter by; a user naming another key is refused."""
    if access_key is None or access_key == caller.access_key:
        return access_key if caller.role != Role.USER else caller.access_key
    try:
        return access.acting_owner(caller, access_key, lookup).access_key
    except Problem as problem:
        raise GraphQLError(problem.detail) from None


def _statuses(status: str | None) -> set[str] | None:
    return {s.strip().upper() for s in status.split(",") if s.strip()} if status else None


def visible_sessions(
    caller: Keypair, bodies: list[dict], access_key: str | None, statuses: set[str] | None
) -> list[dict]:
    """What the caller may see, filtered and newest first (pure)."""
    chosen = []
    for body in bodies:
        spec, status = body.get("spec") or {}, body.get("status") or {}
        owner = spec.get("owner") or {}
        if not access.can_see(caller, owner.get("accessKey", ""), owner.get("domain", "")):
            continue
        if access_key is not None and owner.get("accessKey") != access_key:
            continue
        if statuses is not None and API_STATUS[Phase(status.get("phase", Phase.PENDING))] not in statuses:
            continue
        chosen.append(body)
    chosen.sort(key=lambda b: b["metadata"].get("creationTimestamp", ""), reverse=True)
    return chosen


@query.field("keypair")
def resolve_keypair(_: Any, info: GraphQLResolveInfo, access_key: str | None = None) -> dict | None:
    caller = _caller(info)
    keypair = caller
    if access_key is not None and access_key != caller.access_key:
        keypair = info.context["request"].app[KEYPAIRS].get(_owner_filter(caller, access_key, _lookup(info)))
    if keypair is None:
        return None
    own = keypair.access_key == caller.access_key
    return {
        "access_key": keypair.access_key,
        "secret_key": keypair.secret_key if own else None,
        "is_active": keypair.active,
        "is_admin": keypair.role != Role.USER,
        "user_id": keypair.access_key,
        "domain_name": keypair.domain,
        "created_at": keypair.created_at.isoformat() if keypair.created_at else None,
    }


def _lookup(info: GraphQLResolveInfo) -> Any:
    return info.context["request"].app[KEYPAIRS].get


@query.field("compute_session_list")
def resolve_session_list(
    _: Any,
    info: GraphQLResolveInfo,
    limit: int,
    offset: int,
    access_key: str | None = None,
    status: str | None = None,
    domain_name: str | None = None,
    group_id: str | None = None,
) -> dict:
    if not 0 <= limit <= PAGE_MAX or offset < 0:
        raise GraphQLError(f"limit must be 0..{PAGE_MAX} and offset >= 0")
    caller = _caller(info)
    owner_key = _owner_filter(caller, access_key, _lookup(info))
    app = info.context["request"].app
    bodies = visible_sessions(caller, list(app[SESSIONS].cache.values()), owner_key, _statuses(status))
    bodies = [
        b
        for b in bodies
        if (domain_name is None or b["spec"]["owner"].get("domain") == domain_name)
        and (group_id is None or b["spec"]["owner"].get("group") == group_id)
    ]
    now = datetime.now(UTC)
    return {
        "items": [views.compute_session(b, now) for b in bodies[offset : offset + limit]],
        "total_count": len(bodies),
    }


@query.field("compute_session")
def resolve_session(
    _: Any, info: GraphQLResolveInfo, sess_id: str, access_key: str | None = None
) -> dict | None:
    caller = _caller(info)
    owner_key = _owner_filter(caller, access_key, _lookup(info)) or caller.access_key
    app = info.context["request"].app
    body = app[SESSIONS].get((app[SETTINGS].namespace, session_name(owner_key, sess_id)))
    if body is None or not owns(body, owner_key, sess_id) or not visible_sessions(caller, [body], None, None):
        return None
    return views.compute_session(body, datetime.now(UTC))


schema = make_executable_schema(SCHEMA, query, big_int)


def _format_error(error: GraphQLError, debug: bool = False) -> dict:
    """The client's mistake as its message; our own failure logged and marked."""
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        log.error("GraphQL resolver failed", exc_info=original)
        return {"message": "internal error", "internal": True}
    return {"message": error.message}


async def serve(request: web.Request) -> web.Response:
    data = await json_object(request)
    text, variables = data.get("query"), data.get("variables") or {}
    if not isinstance(text, str) or not text or len(text) > QUERY_MAX:
        raise Problem(
            ProblemType.INVALID_PARAMETERS, f"query must be a GraphQL document of 1..{QUERY_MAX} characters"
        )
    if not isinstance(variables, dict):
        raise Problem(ProblemType.INVALID_PARAMETERS, "variables must be an object")
    await request.app[SESSIONS].loaded
    _, result = await graphql(
        schema,
        {"query": text, "variables": variables, "operationName": data.get("operationName")},
        context_value={"request": request},
        debug=False,
        introspection=False,
        logger=_CLIENT_ERRORS,
        error_formatter=_format_error,
        validation_rules=[cost_rule(variables, request.app[SETTINGS].graphql_max_cost)],
    )
    if any(e.get("internal") for e in result.get("errors") or ()):
        raise Problem(ProblemType.INTERNAL)
    if result.get("errors"):
        raise Problem(
            ProblemType.INVALID_PARAMETERS,
            "; ".join(str(e.get("message", "")) for e in result["errors"])[:2000],
        )
    return web.json_response(result.get("data"))
