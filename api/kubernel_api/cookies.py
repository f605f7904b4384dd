"""Cookie sessions for browsers (pure): what a login cookie holds, when it still
stands for its keypair, and the CSRF rules of requests that carry it.

EventSource cannot sign requests, so browsers log in once (``POST /server/login``)
and send the session cookie. The cookie is encrypted and authenticated by
aiohttp-session (Fernet), so it is opaque and unforgeable; what it holds is checked
again on every request against the keypair as it is now.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from .keypairs import Keypair

COOKIE_NAME = "KUBERNEL_SESSION"
CSRF_HEADER = "X-Kubernel-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Login:
    """What a session cookie holds."""

    access_key: str
    secret_fingerprint: str
    """A hash of the secret key at login: a rotated secret ends the cookie session."""
    csrf_token: str

    def to_data(self) -> dict[str, str]:
        return {"accessKey": self.access_key, "secret": self.secret_fingerprint, "csrf": self.csrf_token}

    @classmethod
    def from_data(cls, data: Mapping[str, object]) -> Login | None:
        fields = (data.get("accessKey"), data.get("secret"), data.get("csrf"))
        if not all(isinstance(f, str) and f for f in fields):
            return None
        access_key, secret, csrf = (str(f) for f in fields)
        return cls(access_key, secret, csrf)


def fingerprint(secret_key: str) -> str:
    return hashlib.sha256(b"kubernel login\0" + secret_key.encode()).hexdigest()[:32]


def new_login(keypair: Keypair) -> Login:
    return Login(keypair.access_key, fingerprint(keypair.secret_key), secrets.token_urlsafe(32))


def secret_matches(keypair: Keypair, secret_key: str) -> bool:
    return hmac.compare_digest(keypair.secret_key.encode(), secret_key.encode())


def still_valid(login: Login, keypair: Keypair | None) -> bool:
    """The cookie's keypair still exists, is active, and has the secret it logged in with."""
    return (
        keypair is not None
        and keypair.active
        and hmac.compare_digest(fingerprint(keypair.secret_key), login.secret_fingerprint)
    )


def own_origin(scheme: str, host: str) -> str:
    return f"{scheme}://{host}"


def csrf_refusal(method: str, headers: Mapping[str, str], login: Login, origin_of_server: str) -> str | None:
    """Why a cookie-authenticated request is refused as cross-site, or None.

    Any request whose Origin is not the server's own, or that the browser marks
    ``Sec-Fetch-Site: cross-site``; and a state-changing one without the session's
    CSRF token in the header (a header a cross-site form or image cannot set).
    """
    origin = headers.get("Origin")
    if origin is not None and origin != origin_of_server:
        return f"cookie sessions are same-origin only (Origin {origin})"
    if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return "cookie sessions are same-origin only"
    if method not in SAFE_METHODS:
        token = headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode(), login.csrf_token.encode()):
            return f"a {CSRF_HEADER} header with the login's token is required"
    return None
