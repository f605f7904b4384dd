"""Browser login, console-server style: ``POST /server/login`` sets an encrypted session
cookie (aiohttp-session), ``GET /server/login`` says who it is, ``POST /server/logout``
clears it. docs/console.md."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp_session import Session, get_session, new_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field

from . import cookies
from .keypairs import Keypair
from .keys import KEYPAIRS, LOGIN_THROTTLES
from .problems import Problem, ProblemType
from .requests import parse
from .routes import json_object
from .throttle import retry_after


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    access_key: str = Field(alias="accessKey", min_length=1, max_length=64)
    secret_key: str = Field(alias="secretKey", min_length=1, max_length=256)


class CookieStorage(EncryptedCookieStorage):
    """aiohttp-session's encrypted cookie, marked Secure when the request came over TLS
    (to this process, or to the proxy in front, which says so in X-Forwarded-Proto)."""

    def __init__(self, key: bytes, max_age: int, secure: bool | None) -> None:
        super().__init__(
            key, cookie_name=cookies.COOKIE_NAME, max_age=max_age, httponly=True, samesite="Strict", path="/"
        )
        self.secure = secure

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        await super().save_session(request, response, session)
        secure = self.secure if self.secure is not None else is_tls(request)
        if secure and self.cookie_name in response.cookies:
            response.cookies[self.cookie_name]["secure"] = True


def is_tls(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def cookie_key(runner_key: bytes) -> bytes:
    """The cookie sessions' key (32 bytes, for Fernet), derived from the runner key (a
    Secret every API replica mounts), so replicas accept each other's cookies; a key of
    its own use, not the runner key itself."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kubernel cookie sessions").derive(
        runner_key
    )


def server_origin(request: web.Request) -> str:
    return cookies.own_origin("https" if is_tls(request) else "http", request.host)


def _answer(keypair: Keypair, login: cookies.Login) -> web.Response:
    return web.json_response(
        {"accessKey": keypair.access_key, "role": keypair.role.value, "csrfToken": login.csrf_token}
    )


def _throttled(request: web.Request, access_key: str) -> None:
    """429 once failed logins of the key or the address are too many, else count this one."""
    by_key, by_address = request.app[LOGIN_THROTTLES]
    now = time.monotonic()
    for throttle, key in ((by_address, request.remote or ""), (by_key, access_key)):
        wait = throttle.attempt(key, now)
        if wait is not None:
            raise Problem(
                ProblemType.TOO_MANY_REQUESTS,
                "too many login attempts",
                headers={"Retry-After": retry_after(wait)},
            )


async def login(request: web.Request) -> web.Response:
    origin = request.headers.get("Origin")
    if origin is not None and origin != server_origin(request):
        raise Problem(ProblemType.FORBIDDEN, "log in from the server's own pages")
    body = parse(LoginRequest, await json_object(request))
    keypair = request.app[KEYPAIRS].get(body.access_key)
    if keypair is None or not keypair.active or not cookies.secret_matches(keypair, body.secret_key):
        # Only failures count, and a right login is never refused for them: behind an
        # ingress all browsers share its address, and anyone may send someone's key.
        _throttled(request, body.access_key)
        raise Problem(ProblemType.AUTH_FAILED)  # no detail: which part was wrong is not told
    session = await new_session(request)  # a fresh cookie at each login
    made = cookies.new_login(keypair)
    session.update(made.to_data())
    return _answer(keypair, made)


async def _standing(request: web.Request) -> tuple[cookies.Login, Keypair] | None:
    """The cookie's login and its keypair, while the login stands; else None."""
    made = cookies.Login.from_data(await get_session(request))
    keypair = request.app[KEYPAIRS].get(made.access_key) if made else None
    if made is None or keypair is None or not cookies.still_valid(made, keypair):
        return None
    return made, keypair


async def whoami(request: web.Request) -> web.Response:
    standing = await _standing(request)
    if standing is None:
        raise Problem(ProblemType.AUTH_FAILED, "not logged in")
    made, keypair = standing
    return _answer(keypair, made)


async def logout(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.invalidate()
    return web.json_response({})


async def cookie_caller(request: web.Request) -> Keypair:
    """The keypair a cookie session stands for, checked as a signed request would be
    (active, same secret) plus the CSRF rules. Raises Problem (401, 403)."""
    standing = await _standing(request)
    if standing is None:
        raise Problem(ProblemType.AUTH_FAILED, "no valid login")
    made, keypair = standing
    refusal = cookies.csrf_refusal(request.method, request.headers, made, server_origin(request))
    if refusal is not None:
        raise Problem(ProblemType.FORBIDDEN, refusal)
    return keypair
