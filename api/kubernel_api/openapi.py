"""The OpenAPI 3.1 document of the service, served at /openapi.json.

Request schemas come from the pydantic models the handlers validate with;
a test checks that every route of the application is documented and nothing
else is.
"""

from __future__ import annotations

import functools

from aiohttp import web
from pydantic import BaseModel

import kubernel
from kubernel.lifecycle import API_STATUS

from .code_requests import CompleteRequest, DownloadRequest, ExecuteRequest, FilesRequest
from .problems import PROBLEM_CONTENT_TYPE, ProblemType
from .requests import CreateRequest
from .views import KERNEL_STATS

AUTH: list[dict[str, list[str]]] = [{"BackendAI": []}, {"Cookie": []}]
_ID = {
    "name": "kernel_id",
    "in": "path",
    "required": True,
    "description": "The kernel id (client session token).",
    "schema": {"type": "string", "minLength": 4, "maxLength": 64},
}
_OWNER = {
    "name": "owner_access_key",
    "in": "query",
    "required": False,
    "description": "Act on another keypair's session (domain admins and superadmins).",
    "schema": {"type": "string", "maxLength": 128},
}


def _problem(*kinds: ProblemType) -> dict:
    """One response per status; several problems of one status share it (titles and types listed)."""
    by_status: dict[int, list[ProblemType]] = {}
    for kind in kinds:
        if kind not in by_status.setdefault(kind.status, []):
            by_status[kind.status].append(kind)
    return {
        str(status): {
            "description": " / ".join(f"{k.title} ({k.slug})" for k in group),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status, group in by_status.items()
    }


def _json(description: str, ref: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_COMMON = (
    ProblemType.AUTH_FAILED,
    ProblemType.INVALID_AUTH_PARAMETERS,
    ProblemType.UNSUPPORTED_VERSION,
    ProblemType.UNAVAILABLE,
)
# A call that runs in the kernel: the session must be RUNNING with a code runner.
_KERNEL = (
    ProblemType.KERNEL_NOT_FOUND,
    ProblemType.FORBIDDEN,
    ProblemType.INVALID_PARAMETERS,
    ProblemType.KERNEL_NOT_RUNNING,
    ProblemType.RUNNER_FAILED,
    *_COMMON,
)


def _body(ref: str) -> dict:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _kernel_call(
    operation_id: str,
    summary: str,
    responses: dict,
    body: str | None = None,
    extra: tuple[ProblemType, ...] = (),
) -> dict:
    operation = {
        "operationId": operation_id,
        "summary": summary,
        "security": AUTH,
        "parameters": [_ID, _OWNER],
        "responses": {**responses, **_problem(*_KERNEL, *extra)},
    }
    if body:
        operation["requestBody"] = _body(body)
    return operation


def _schemas(*models: type[BaseModel]) -> dict:
    schemas: dict = {}
    for model in models:
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


_SERVICE_PORTS = {
    "type": "array",
    "description": "The app services of a RUNNING session (the image table's).",
    "items": {
        "type": "object",
        "required": ["name", "protocol", "ports"],
        "properties": {
            "name": {"type": "string"},
            "protocol": {"type": "string"},
            "ports": {"type": "array", "items": {"type": "integer"}},
        },
    },
}
_ANY_JSON = {
    "description": "The runner's answer (docs/runner.md).",
    "content": {"application/json": {"schema": {}}},
}
_RESULT = {
    "description": "The execution result object under `result` (docs/api.md, Code).",
    "content": {"application/json": {"schema": {"type": "object", "required": ["result"]}}},
}
_WEBSOCKET = {"101": {"description": "Switching to a websocket (docs/api.md, Code)."}}


def _create_operation(operation_id: str) -> dict:
    return {
        "operationId": operation_id,
        "summary": "Get or create a session",
        "security": AUTH,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateRequest"}}},
        },
        "responses": {
            "201": _json("Created (and started, unless enqueueOnly or TIMEOUT).", "CreateResponse"),
            "200": _json("An existing session with this token and image (created: false).", "CreateResponse"),
            **_problem(
                ProblemType.INVALID_PARAMETERS,
                ProblemType.IMAGE_NOT_FOUND,
                ProblemType.VFOLDER_NOT_FOUND,
                ProblemType.KERNEL_EXISTS,
                ProblemType.FORBIDDEN,
                ProblemType.LIMIT_EXCEEDED,
                ProblemType.QUOTA_EXCEEDED,
                ProblemType.TOO_LARGE,
                *_COMMON,
            ),
        },
    }


_LOGIN_ANSWER = {
    "description": "Logged in",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "accessKey": {"type": "string"},
                    "role": {"type": "string"},
                    "csrfToken": {"type": "string"},
                },
            }
        }
    },
}


@functools.cache
def document() -> dict:
    create_schema = CreateRequest.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    defs = create_schema.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kubernel: Backend.AI kernel-session API",
            "version": kubernel.__version__,
            "description": f"Backend.AI API {kubernel.API_VERSION} on Kubernetes. Authenticated "
            "requests carry X-BackendAI-Version, Date and an HMAC Authorization header "
            "(see the README).",
        },
        "components": {
            "securitySchemes": {
                "BackendAI": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "BackendAI signMethod=HMAC-SHA256, credential=<access key>:<signature>",
                },
                "Cookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "KUBERNEL_SESSION",
                    "description": "A browser's login (POST /server/login); state-changing requests "
                    "also need its csrfToken in X-Kubernel-CSRF (docs/console.md)",
                },
            },
            "schemas": {
                **defs,
                "CreateRequest": create_schema,
                **_schemas(ExecuteRequest, CompleteRequest, FilesRequest, DownloadRequest),
                "CreateResponse": {
                    "type": "object",
                    "required": ["kernelId", "created", "status"],
                    "properties": {
                        "kernelId": {"type": "string"},
                        "created": {"type": "boolean"},
                        "status": {
                            "type": "string",
                            "enum": [*API_STATUS.values(), "TIMEOUT"],
                        },
                        "servicePorts": _SERVICE_PORTS,
                    },
                },
                "KernelInfo": {
                    "type": "object",
                    "required": [
                        "lang",
                        "status",
                        "age",
                        "memoryLimit",
                        "numQueriesExecuted",
                        "cpuCreditUsed",
                    ],
                    "properties": {
                        "lang": {"type": "string"},
                        "image": {"type": "string"},
                        "type": {"type": "string"},
                        "status": {"type": "string"},
                        "statusInfo": {"type": ["string", "null"]},
                        "result": {"type": "string", "enum": ["UNDEFINED", "SUCCESS", "FAILURE"]},
                        "age": {"type": "integer", "description": "ms"},
                        "memoryLimit": {"type": "integer", "description": "KiB"},
                        "numQueriesExecuted": {"type": "integer"},
                        "cpuCreditUsed": {"type": "integer", "description": "ms"},
                        "creationTime": {"type": "string", "format": "date-time"},
                        "terminationTime": {"type": ["string", "null"], "format": "date-time"},
                        "tag": {"type": ["string", "null"]},
                        "clusterSize": {"type": "integer"},
                        "domain": {"type": "string"},
                        "group": {"type": "string"},
                        "ownerAccessKey": {"type": "string"},
                        "servicePorts": _SERVICE_PORTS,
                    },
                },
                "DestroyResponse": {
                    "type": "object",
                    "required": ["stats"],
                    "properties": {
                        "stats": {
                            "type": "object",
                            "properties": {
                                **{k: {"type": "integer"} for k in KERNEL_STATS},
                                "cpu_used": {"type": "integer", "description": "ms"},
                                "status": {"type": "string"},
                            },
                        }
                    },
                },
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status"],
                    "properties": {
                        "type": {"type": "string", "format": "uri"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "msg": {
                            "type": "string",
                            "description": "The detail again, where the 19.09 CLI reads it.",
                        },
                    },
                },
            },
        },
        "paths": {
            "/": {
                "get": {
                    "operationId": "hello",
                    "summary": "API version (no authentication)",
                    "responses": {
                        "200": {
                            "description": "Versions",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["version", "manager"],
                                        "properties": {
                                            "version": {"type": "string"},
                                            "manager": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/kernel": {"post": _create_operation("create")},
            "/kernel/create": {"post": _create_operation("create_legacy")},
            "/kernel/{kernel_id}": {
                "get": {
                    "operationId": "get_info",
                    "summary": "Session information",
                    "security": AUTH,
                    "parameters": [_ID, _OWNER],
                    "responses": {
                        "200": _json("The session.", "KernelInfo"),
                        **_problem(
                            ProblemType.KERNEL_NOT_FOUND,
                            ProblemType.FORBIDDEN,
                            ProblemType.INVALID_PARAMETERS,
                            *_COMMON,
                        ),
                    },
                },
                "patch": {
                    "operationId": "restart",
                    "summary": "Restart the session",
                    "security": AUTH,
                    "parameters": [_ID, _OWNER],
                    "responses": {
                        "204": {"description": "Restarting."},
                        **_problem(
                            ProblemType.KERNEL_NOT_FOUND,
                            ProblemType.FORBIDDEN,
                            ProblemType.INVALID_PARAMETERS,
                            *_COMMON,
                        ),
                    },
                },
                "delete": {
                    "operationId": "destroy",
                    "summary": "Terminate the session",
                    "security": AUTH,
                    "parameters": [
                        _ID,
                        _OWNER,
                        {
                            "name": "forced",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["true", "false"]},
                            "description": "Force-terminate (admins).",
                        },
                    ],
                    "responses": {
                        "200": _json("Terminated; final stats.", "DestroyResponse"),
                        **_problem(
                            ProblemType.KERNEL_NOT_FOUND,
                            ProblemType.FORBIDDEN,
                            ProblemType.INVALID_PARAMETERS,
                            *_COMMON,
                        ),
                    },
                },
                "post": _kernel_call(
                    "execute",
                    "Run code (query, batch, continue, input)",
                    {"200": _RESULT},
                    "ExecuteRequest",
                    (
                        ProblemType.KERNEL_BUSY,
                        ProblemType.NO_CODE_RUNNER,
                        ProblemType.KERNEL_OBJECT_NOT_FOUND,
                        ProblemType.TOO_LARGE,
                    ),
                ),
            },
            "/kernel/{kernel_id}/interrupt": {
                "post": _kernel_call(
                    "interrupt",
                    "Interrupt the running execution",
                    {"204": {"description": "Interrupted."}},
                    extra=(ProblemType.NO_CODE_RUNNER,),
                )
            },
            "/kernel/{kernel_id}/complete": {
                "post": _kernel_call(
                    "complete",
                    "Completion candidates",
                    {"200": _ANY_JSON},
                    "CompleteRequest",
                    (ProblemType.NO_CODE_RUNNER,),
                )
            },
            "/kernel/{kernel_id}/logs": {
                "get": _kernel_call(
                    "logs",
                    "The kernel container's log",
                    {
                        "200": {
                            "description": '`{"result": {"logs": ...}}`',
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                )
            },
            "/kernel/{kernel_id}/files": {
                "get": _kernel_call(
                    "list_files",
                    "Files in a directory of the working directory",
                    {"200": _ANY_JSON},
                    "FilesRequest",
                    (ProblemType.NO_CODE_RUNNER, ProblemType.KERNEL_OBJECT_NOT_FOUND),
                )
            },
            "/kernel/{kernel_id}/upload": {
                "post": {
                    **_kernel_call(
                        "upload",
                        "Upload files into the working directory",
                        {"204": {"description": "Stored."}},
                        extra=(ProblemType.NO_CODE_RUNNER, ProblemType.TOO_LARGE),
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {"schema": {"type": "object"}}},
                    },
                }
            },
            "/kernel/{kernel_id}/download": {
                "get": _kernel_call(
                    "download",
                    "Download files (multipart, one tar archive each)",
                    {
                        "200": {
                            "description": "multipart/mixed",
                            "content": {"multipart/mixed": {"schema": {}}},
                        }
                    },
                    "DownloadRequest",
                    (ProblemType.NO_CODE_RUNNER, ProblemType.KERNEL_OBJECT_NOT_FOUND),
                )
            },
            "/stream/kernel/{kernel_id}/execute": {
                "get": _kernel_call(
                    "stream_execute",
                    "Run code over a websocket",
                    _WEBSOCKET,
                    extra=(ProblemType.NO_CODE_RUNNER,),
                )
            },
            "/stream/kernel/{kernel_id}/pty": {
                "get": _kernel_call(
                    "stream_pty",
                    "A terminal in the kernel over a websocket",
                    _WEBSOCKET,
                    extra=(ProblemType.NO_CODE_RUNNER,),
                )
            },
            "/admin/graphql": {
                "post": {
                    "operationId": "graphql",
                    "summary": "Session listing (GraphQL subset of 19.09)",
                    "security": AUTH,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["query"],
                                    "properties": {
                                        "query": {"type": "string", "maxLength": 16384},
                                        "variables": {"type": "object"},
                                        "operationName": {"type": ["string", "null"]},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The GraphQL `data` object itself (as 19.09 answered).",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_problem(ProblemType.INVALID_PARAMETERS, *_COMMON),
                    },
                }
            },
            "/stream/kernel/_/events": {
                "get": {
                    "operationId": "stream_events",
                    "summary": "Lifecycle events (Server-Sent Events)",
                    "security": AUTH,
                    "parameters": [
                        {
                            "name": "sessionId",
                            "in": "query",
                            "schema": {"type": "string", "maxLength": 64},
                            "description": "A session id, or * (default) for every visible session.",
                        },
                        {
                            "name": "ownerAccessKey",
                            "in": "query",
                            "schema": {"type": "string", "maxLength": 128},
                            "description": "Owner of the session (admins); owner_access_key also accepted.",
                        },
                        {
                            "name": "owner_access_key",
                            "in": "query",
                            "schema": {"type": "string", "maxLength": 128},
                        },
                        {
                            "name": "group",
                            "in": "query",
                            "schema": {"type": "string", "maxLength": 64},
                            "description": "A group name, or * (default).",
                        },
                        {
                            "name": "groupName",
                            "in": "query",
                            "schema": {"type": "string", "maxLength": 64},
                            "description": "Backend.AI 19.09's spelling of `group`.",
                        },
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "schema": {"type": "string", "maxLength": 64},
                            "description": "Resume after this message id.",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "text/event-stream: kernel_enqueued, kernel_pending, kernel_preparing, "
                            "kernel_pulling, kernel_creating, kernel_started, "
                            "kernel_cancelled, kernel_terminating, kernel_success, "
                            "kernel_failure, kernel_terminated (docs/lifecycle.md)",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_problem(
                            ProblemType.GROUP_NOT_FOUND,
                            ProblemType.FORBIDDEN,
                            ProblemType.INVALID_PARAMETERS,
                            *_COMMON,
                        ),
                    },
                }
            },
            "/server/login": {
                "post": {
                    "operationId": "login",
                    "summary": "Log a browser in: sets the KUBERNEL_SESSION cookie (docs/console.md)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["accessKey", "secretKey"],
                                    "properties": {
                                        "accessKey": {"type": "string"},
                                        "secretKey": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _LOGIN_ANSWER,
                        **_problem(
                            ProblemType.AUTH_FAILED,
                            ProblemType.FORBIDDEN,
                            ProblemType.TOO_MANY_REQUESTS,
                            ProblemType.INVALID_PARAMETERS,
                        ),
                    },
                },
                "get": {
                    "operationId": "whoami",
                    "summary": "The cookie's login, while it stands",
                    "responses": {"200": _LOGIN_ANSWER, **_problem(ProblemType.AUTH_FAILED)},
                },
            },
            "/server/logout": {
                "post": {
                    "operationId": "logout",
                    "summary": "Clear the login cookie",
                    "responses": {"200": {"description": "Logged out"}},
                }
            },
            "/console": {
                "get": {
                    "operationId": "console_redirect",
                    "summary": "To /console/",
                    "responses": {"308": {"description": "/console/"}},
                }
            },
            "/console/": {
                "get": {
                    "operationId": "console_index",
                    "summary": "The web console's page (docs/console.md)",
                    "responses": {"200": {"description": "HTML"}},
                }
            },
            "/console/{file}": {
                "get": {
                    "operationId": "console",
                    "summary": "The web console (docs/console.md)",
                    "parameters": [
                        {"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {"description": "HTML, JavaScript or CSS"},
                        "404": {"description": "No such file"},
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness",
                    "responses": {"200": {"description": "Alive"}},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness (caches loaded, watch connected)",
                    "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
        },
    }


async def serve(_: web.Request) -> web.Response:
    return web.json_response(document())
