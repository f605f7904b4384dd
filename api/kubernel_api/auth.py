"""Request authentication: keypairs by access key, and the HMAC check."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from .informer import Change
from .keypairs import Keypair, from_secret, revokes
from .problems import Problem, ProblemType
from .signing import (
    API_VERSION_HEADER,
    DEFAULT_CONTENT_TYPE,
    SignatureError,
    SignedRequest,
    check_date,
    parse_authorization,
    request_date,
    verify,
)

log = logging.getLogger("kubernel.api.auth")
SUPPORTED_VERSIONS = frozenset({"v4.20190615"})


class KeypairIndex:
    """Keypairs by access key, kept current by the keypair Secrets' informer.

    ``on_revoke`` hears the access keys whose grants a change ended (deleted,
    deactivated, another role...): open streams authenticated as them close.
    """

    def __init__(self, on_revoke: Callable[[set[str]], None] | None = None) -> None:
        self._by_key: dict[str, Keypair] = {}
        self._key_of_secret: dict[tuple[str, str], str] = {}
        self.on_revoke = on_revoke

    def get(self, access_key: str) -> Keypair | None:
        return self._by_key.get(access_key)

    def group_exists(self, group: str, domain: str | None) -> bool:
        """A group some keypair (of ``domain``; None: of any) belongs to: groups have no
        objects of their own here (docs/api.md, "Roles")."""
        return any(
            group in k.groups and (domain is None or k.domain == domain) for k in self._by_key.values()
        )

    def on_change(self, _previous: str, _rv: str, changes: list[Change]) -> None:
        revoked: set[str] = set()
        for old, new in changes:
            secret_key = (old or new or {}).get("metadata", {})
            ident = (secret_key.get("namespace", ""), secret_key.get("name", ""))
            stale = self._key_of_secret.pop(ident, None)
            before = self._by_key.pop(stale, None) if stale is not None else None
            keypair = None
            if new is not None:
                try:
                    keypair = from_secret(new)
                except (ValueError, KeyError) as exc:
                    log.warning("ignoring malformed keypair Secret %s/%s: %s", *ident, exc)
            if before is not None and revokes(
                before, keypair if keypair and keypair.access_key == stale else None
            ):
                revoked.add(before.access_key)
            if keypair is not None:
                self._by_key[keypair.access_key] = keypair
                self._key_of_secret[ident] = keypair.access_key
        if revoked and self.on_revoke is not None:
            self.on_revoke(revoked)


def access_key_of(authorization: str | None) -> str | None:
    """The access key an Authorization header names, if it is readable (for throttles)."""
    try:
        return parse_authorization(authorization).access_key
    except SignatureError:
        return None


def authenticate(
    request: web.Request,
    index: KeypairIndex,
    max_skew: timedelta,
    first_use: Callable[[str], bool] = lambda _signature: True,
) -> Keypair:
    """The active keypair that signed ``request``. Raises Problem.

    No credentials at all: 401. Then in the 19.09 manager's order: the date
    (missing, unreadable or too far from our clock: 400 ``invalid-auth-params``),
    the credentials (malformed, or no API version: 400 ``invalid-auth-params``,
    saying what is wrong), the key and signature (401 ``auth-failed``, saying
    nothing). A valid signature used before (``first_use`` says False) is a replay: 401.
    """
    version = request.headers.get(API_VERSION_HEADER)
    if version is not None and version not in SUPPORTED_VERSIONS:
        raise Problem(
            ProblemType.UNSUPPORTED_VERSION,
            f"{API_VERSION_HEADER} {version!r} is not supported; use {', '.join(SUPPORTED_VERSIONS)}",
        )
    authorization = request.headers.get("Authorization")
    if not authorization:  # no credentials at all: 401, whatever else is missing
        raise Problem(ProblemType.AUTH_FAILED, "no Authorization header")
    date = request_date(request.headers)
    try:
        check_date(date, now=datetime.now(UTC), max_skew=max_skew)
    except SignatureError as exc:
        raise Problem(ProblemType.INVALID_AUTH_PARAMETERS, f"date/time sync error: {exc}") from None
    try:
        credential = parse_authorization(authorization)
        if version is None:
            raise SignatureError(f"no {API_VERSION_HEADER} header")
    except SignatureError as exc:
        raise Problem(ProblemType.INVALID_AUTH_PARAMETERS, str(exc)) from None
    signed = SignedRequest(
        method=request.method,
        path_qs=request.raw_path,
        date=date or "",
        host=request.host,
        content_type=request.content_type if "Content-Type" in request.headers else DEFAULT_CONTENT_TYPE,
        version=version,
    )
    try:
        keypair = index.get(credential.access_key)
        if keypair is None or not keypair.active:
            raise SignatureError(f"unknown or inactive access key {credential.access_key!r}")
        verify(signed, credential, keypair.secret_key, now=datetime.now(UTC), max_skew=max_skew)
        if not first_use(credential.signature):
            raise SignatureError("a signature already used (a replay)")
    except SignatureError as exc:
        log.info("401 %s %s: %s", request.method, request.path, exc)
        raise Problem(ProblemType.AUTH_FAILED) from None
    return keypair
