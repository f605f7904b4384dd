"""Cross-origin requests (pure). As the reference server, the API answers CORS for
signed requests, because Backend.AI's JavaScript SDK signs its requests in the browser
with a keypair; here only from the configured origins (default: any), and never with
credentials, so a browser never sends the console's cookie cross-origin with a
readable answer."""

from __future__ import annotations

from collections.abc import Collection, Mapping

ALLOWED_METHODS = "GET, POST, PATCH, DELETE"
ALLOWED_HEADERS = (
    "Authorization, Content-Type, Date, X-BackendAI-Date, X-BackendAI-Version, "
    "X-BackendAI-Client, Last-Event-ID"
)
EXPOSED_HEADERS = "Retry-After"
PREFLIGHT_MAX_AGE = "600"


def allowed_origin(origin: str | None, allowed: Collection[str]) -> str | None:
    """What Access-Control-Allow-Origin says for ``origin``, or None (no CORS answer)."""
    if not origin or origin == "null":
        return None
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return method == "OPTIONS" and "Access-Control-Request-Method" in headers


def cors_headers(origin: str | None, allowed: Collection[str], *, preflight: bool) -> dict[str, str]:
    """The CORS headers of an answer to a request from ``origin`` (empty: none)."""
    allow = allowed_origin(origin, allowed)
    if allow is None:
        return {}
    headers = {"Access-Control-Allow-Origin": allow}
    if allow != "*":
        headers["Vary"] = "Origin"
    if preflight:
        headers |= {
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        }
    else:
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    return headers
