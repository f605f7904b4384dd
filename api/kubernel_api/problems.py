"""RFC 7807 errors (``application/problem+json``), one stable ``type`` per error.

The type URIs are Backend.AI's own (``https://api.backend.ai/probs/<slug>``)
where its manager has the same error, so clients written for it recognise them;
the slugs Backend.AI lacks use the same base. docs/api.md lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://api.backend.ai/probs/"


class ProblemType(Enum):
    """slug, HTTP status, title (the 19.09 manager's title where it has the type)."""

    INVALID_PARAMETERS = ("invalid-api-params", 400, "Missing or invalid API parameters.")
    UNSUPPORTED_VERSION = ("unsupported-api-version", 400, "Unsupported API version.")
    INVALID_AUTH_PARAMETERS = ("invalid-auth-params", 400, "Missing or invalid authorization parameters.")
    KERNEL_EXISTS = (
        "kernel-already-exists",
        400,
        "The kernel already exists with a different runtime type (language).",
    )
    AUTH_FAILED = ("auth-failed", 401, "Credential/signature mismatch.")
    FORBIDDEN = ("generic-forbidden", 403, "Forbidden operation.")
    KERNEL_NOT_FOUND = ("kernel-not-found", 404, "No such kernel.")
    GROUP_NOT_FOUND = ("group-not-found", 404, "No such user group.")
    VFOLDER_NOT_FOUND = ("vfolder-not-found", 404, "No such virtual folder.")
    IMAGE_NOT_FOUND = ("image-not-found", 404, "No such environment image.")
    URL_NOT_FOUND = ("generic-not-found", 404, "Unknown URL path.")
    METHOD_NOT_ALLOWED = ("method-not-allowed", 405, "HTTP Method Not Allowed.")
    LIMIT_EXCEEDED = ("resource-limit-exceeded", 406, "The requested resources exceed the server's limits.")
    KERNEL_OBJECT_NOT_FOUND = ("kernel-object-not-found", 404, "No such run or file in the kernel.")
    KERNEL_NOT_RUNNING = ("kernel-not-running", 409, "The kernel is not running.")
    NO_CODE_RUNNER = ("kernel-cannot-execute", 409, "This session's kernel cannot execute code.")
    KERNEL_BUSY = ("kernel-busy", 409, "The kernel is running another execution.")
    REQUEST_TIMEOUT = ("request-timeout", 408, "The request's body did not arrive in time.")
    TOO_MANY_REQUESTS = ("too-many-requests", 429, "You have reached your API query rate limit.")
    QUOTA_EXCEEDED = ("quota-exceeded", 412, "You have reached your resource limit.")
    TOO_LARGE = ("request-too-large", 413, "Request body too large.")
    UNSUPPORTED_MEDIA_TYPE = ("unsupported-media-type", 415, "Unsupported media type.")
    INTERNAL = ("internal-server-error", 500, "Something went wrong on our side.")
    RUNNER_FAILED = ("kernel-runner-failed", 502, "The kernel's code runner gave no usable answer.")
    UNAVAILABLE = ("service-unavailable", 503, "The cluster is not reachable right now; try again.")

    @property
    def slug(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def title(self) -> str:
        return self.value[2]

    @property
    def uri(self) -> str:
        return TYPE_BASE + self.slug


@dataclass
class Problem(Exception):
    kind: ProblemType
    detail: str = ""
    headers: dict[str, str] | None = None  # e.g. Retry-After with 429

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "type": self.kind.uri,
            "title": self.kind.title,
            "status": self.kind.status,
        }
        if self.detail:
            # The 19.09 CLI prints `title` and `msg` (its manager's key for the detail).
            body["detail"] = body["msg"] = self.detail
        return body


# aiohttp's own HTTP errors (routing, body size) mapped to ours by status.
BY_STATUS = {
    p.status: p
    for p in (
        ProblemType.INVALID_PARAMETERS,
        ProblemType.AUTH_FAILED,
        ProblemType.FORBIDDEN,
        ProblemType.URL_NOT_FOUND,
        ProblemType.METHOD_NOT_ALLOWED,
        ProblemType.TOO_LARGE,
        ProblemType.UNSUPPORTED_MEDIA_TYPE,
        ProblemType.UNAVAILABLE,
    )
}
