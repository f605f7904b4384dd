"""The OpenAPI 3.1 document of the service, served at /openapi.json.

Request schemas come from the pydantic models the handlers validate with;
a test checks that every route of the application is documented and nothing
else is.
"""

from __future__ import annotations

import functools

from aiohttp import web

import kubernel

from .problems import PROBLEM_CONTENT_TYPE, ProblemType
from .requests import CreateRequest

AUTH = [{"BackendAI": []}]
_ID = {"name": "kernel_id", "in": "path", "required": True, "description": "The kernel id (client session token).",
       "schema": {"type": "string", "minLength": 4, "maxLength": 64}}
_OWNER = {"name": "owner_access_key", "in": "query", "required": False,
          "description": "Act on another keypair's session (domain admins and superadmins).",
          "schema": {"type": "string", "maxLength": 128}}


def _problem(*kinds: ProblemType) -> dict:
    return {str(k.status): {"description": k.title, "content": {PROBLEM_CONTENT_TYPE: {
        "schema": {"$ref": "#/components/schemas/Problem"}}}} for k in kinds}


def _json(description: str, ref: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


_COMMON = (ProblemType.AUTH_FAILED, ProblemType.UNSUPPORTED_VERSION, ProblemType.UNAVAILABLE)


def _create_operation(operation_id: str) -> dict:
    return {
        "operationId": operation_id, "summary": "Get or create a session", "security": AUTH,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/CreateRequest"}}}},
        "responses": {"201": _json("Created (and started, unless enqueueOnly or TIMEOUT).", "CreateResponse"),
                      "200": _json("An existing session with this token and image (created: false).",
                                   "CreateResponse"),
                      **_problem(ProblemType.INVALID_PARAMETERS, ProblemType.IMAGE_NOT_ALLOWED,
                                 ProblemType.FORBIDDEN, ProblemType.LIMIT_EXCEEDED, ProblemType.SESSION_EXISTS,
                                 ProblemType.QUOTA_EXCEEDED, ProblemType.TOO_LARGE, *_COMMON)},
    }


@functools.cache
def document() -> dict:
    create_schema = CreateRequest.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    defs = create_schema.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kubernel: Backend.AI kernel-session API", "version": kubernel.__version__,
                 "description": f"Backend.AI API {kubernel.API_VERSION} on Kubernetes. Authenticated "
                                "requests carry X-BackendAI-Version, Date and an HMAC Authorization header "
                                "(see the README)."},
        "components": {
            "securitySchemes": {"BackendAI": {"type": "apiKey", "in": "header", "name": "Authorization",
                                              "description": "BackendAI signMethod=HMAC-SHA256, "
                                                             "credential=<access key>:<signature>"}},
            "schemas": {
                **defs, "CreateRequest": create_schema,
                "CreateResponse": {"type": "object", "required": ["kernelId", "created", "status"], "properties": {
                    "kernelId": {"type": "string"}, "created": {"type": "boolean"},
                    "status": {"type": "string", "enum": ["PENDING", "PREPARING", "PULLING", "BUILDING", "RUNNING",
                                                          "RESTARTING", "TERMINATING", "TERMINATED", "TIMEOUT"]},
                    "servicePorts": {"type": "array", "items": {}}}},
                "KernelInfo": {"type": "object", "required": ["lang", "status", "age", "memoryLimit",
                                                              "numQueriesExecuted", "cpuCreditUsed"], "properties": {
                    "lang": {"type": "string"}, "image": {"type": "string"}, "type": {"type": "string"},
                    "status": {"type": "string"}, "statusInfo": {"type": ["string", "null"]},
                    "result": {"type": "string", "enum": ["UNDEFINED", "SUCCESS", "FAILURE"]},
                    "age": {"type": "integer", "description": "ms"},
                    "memoryLimit": {"type": "integer", "description": "KiB"},
                    "numQueriesExecuted": {"type": "integer"},
                    "cpuCreditUsed": {"type": "integer", "description": "ms"},
                    "creationTime": {"type": "string", "format": "date-time"},
                    "terminationTime": {"type": ["string", "null"], "format": "date-time"},
                    "tag": {"type": ["string", "null"]}, "clusterSize": {"type": "integer"},
                    "domain": {"type": "string"}, "group": {"type": "string"},
                    "ownerAccessKey": {"type": "string"}, "servicePorts": {"type": "array", "items": {}}}},
                "DestroyResponse": {"type": "object", "required": ["stats"], "properties": {"stats": {
                    "type": "object", "properties": {
                        "cpu_used": {"type": "integer", "description": "ms"},
                        "exit_code": {"type": ["integer", "null"]}, "status": {"type": "string"},
                        "reason": {"type": ["string", "null"]}}}}},
                "Problem": {"type": "object", "required": ["type", "title", "status"], "properties": {
                    "type": {"type": "string", "format": "uri"}, "title": {"type": "string"},
                    "status": {"type": "integer"}, "detail": {"type": "string"}}},
            },
        },
        "paths": {
            "/": {"get": {"operationId": "hello", "summary": "API version (no authentication)", "responses": {
                "200": {"description": "Versions", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["version", "manager"], "properties": {
                        "version": {"type": "string"}, "manager": {"type": "string"}}}}}}}}},
            "/kernel": {"post": _create_operation("create")},
            "/kernel/create": {"post": _create_operation("create_legacy")},
            "/kernel/{kernel_id}": {
                "get": {"operationId": "get_info", "summary": "Session information", "security": AUTH,
                        "parameters": [_ID, _OWNER],
                        "responses": {"200": _json("The session.", "KernelInfo"),
                                      **_problem(ProblemType.KERNEL_NOT_FOUND, ProblemType.FORBIDDEN,
                                                 ProblemType.INVALID_PARAMETERS, *_COMMON)}},
                "patch": {"operationId": "restart", "summary": "Restart the session", "security": AUTH,
                          "parameters": [_ID, _OWNER],
                          "responses": {"204": {"description": "Restarting."},
                                        **_problem(ProblemType.KERNEL_NOT_FOUND, ProblemType.FORBIDDEN,
                                                   ProblemType.INVALID_PARAMETERS, *_COMMON)}},
                "delete": {"operationId": "destroy", "summary": "Terminate the session", "security": AUTH,
                           "parameters": [_ID, _OWNER, {"name": "forced", "in": "query", "required": False,
                                                        "schema": {"type": "string", "enum": ["true", "false"]},
                                                        "description": "Force-terminate (admins)."}],
                           "responses": {"200": _json("Terminated; final stats.", "DestroyResponse"),
                                         **_problem(ProblemType.KERNEL_NOT_FOUND, ProblemType.FORBIDDEN,
                                                    ProblemType.INVALID_PARAMETERS, *_COMMON)}},
            },
            "/stream/kernel/_/events": {"get": {
                "operationId": "stream_events", "summary": "Lifecycle events (Server-Sent Events)", "security": AUTH,
                "parameters": [
                    {"name": "sessionId", "in": "query", "schema": {"type": "string", "maxLength": 64},
                     "description": "A session id, or * (default) for every visible session."},
                    {"name": "ownerAccessKey", "in": "query", "schema": {"type": "string", "maxLength": 128},
                     "description": "Owner of the session (admins); owner_access_key also accepted."},
                    {"name": "owner_access_key", "in": "query", "schema": {"type": "string", "maxLength": 128}},
                    {"name": "group", "in": "query", "schema": {"type": "string", "maxLength": 64},
                     "description": "A group name, or * (default)."},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string", "maxLength": 64},
                     "description": "Resume after this message id."}],
                "responses": {"200": {"description": "text/event-stream: kernel_preparing, kernel_pulling, "
                                                     "kernel_creating, kernel_started, kernel_terminated",
                                      "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              **_problem(ProblemType.KERNEL_NOT_FOUND, ProblemType.FORBIDDEN,
                                         ProblemType.INVALID_PARAMETERS, *_COMMON)}}},
            "/healthz": {"get": {"operationId": "healthz", "summary": "Liveness",
                                 "responses": {"200": {"description": "Alive"}}}},
            "/readyz": {"get": {"operationId": "readyz", "summary": "Readiness (caches loaded, watch connected)",
                                "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}}}},
            "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text/plain exposition format"}}}},
            "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        },
    }


async def serve(_: web.Request) -> web.Response:
    return web.json_response(document())
