"""HMAC signatures as DESIGN.md specifies them, re-derived here independently."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from kubernel_api.signing import (
    ClockSkew,
    Credential,
    SignatureError,
    SignedRequest,
    authorization_header,
    parse_authorization,
    parse_date,
    request_date,
    signature,
    verify,
)

NOW = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
SECRET = "0123456789abcdefghijklmnopqrstuvwxyzABCD"
REQUEST = SignedRequest(
    "GET",
    "/kernel/demo-01?owner_access_key=AKIAX",
    NOW.isoformat(),
    "api.example:8090",
    "application/octet-stream",
    "v4.20190615",
)


def by_the_book(request: SignedRequest, secret: str) -> str:
    empty = hashlib.sha256(b"").hexdigest()
    text = (
        f"{request.method}\n{request.path_qs}\n{request.date}\nhost:{request.host}\n"
        f"content-type:{request.content_type}\nx-backendai-version:{request.version}\n{empty}"
    )
    key = hmac.new(secret.encode(), b"20261121", hashlib.sha256).digest()
    key = hmac.new(key, request.host.encode(), hashlib.sha256).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def test_signature_matches_the_reference_derivation() -> None:
    assert signature(REQUEST, SECRET, "sha256") == by_the_book(REQUEST, SECRET)


def test_verify_accepts_the_right_signature() -> None:
    verify(
        REQUEST,
        Credential("AKIAX", by_the_book(REQUEST, SECRET), "sha256"),
        SECRET,
        now=NOW,
        max_skew=timedelta(minutes=15),
    )


@pytest.mark.parametrize(
    "change",
    [
        {"method": "DELETE"},
        {"path_qs": "/kernel/demo-02?owner_access_key=AKIAX"},
        {"path_qs": "/kernel/demo-01?owner_access_key=AKIAY"},
        {"host": "other.example:8090"},
        {"content_type": "application/json"},
        {"version": "v4.20181215"},
    ],
)
def test_any_change_to_what_is_signed_breaks_it(change: dict) -> None:
    good = by_the_book(REQUEST, SECRET)
    tampered = SignedRequest(**{**REQUEST.__dict__, **change})
    with pytest.raises(SignatureError):
        verify(tampered, Credential("AKIAX", good, "sha256"), SECRET, now=NOW, max_skew=timedelta(minutes=15))


def test_wrong_secret_fails() -> None:
    with pytest.raises(SignatureError):
        verify(
            REQUEST,
            Credential("AKIAX", by_the_book(REQUEST, "x" * 40), "sha256"),
            SECRET,
            now=NOW,
            max_skew=timedelta(minutes=15),
        )


@pytest.mark.parametrize(("offset", "ok"), [(14, True), (-14, True), (16, False), (-16, False)])
def test_clock_skew_window(offset: int, ok: bool) -> None:
    credential = Credential("AKIAX", by_the_book(REQUEST, SECRET), "sha256")

    def check() -> object:
        return verify(
            REQUEST, credential, SECRET, now=NOW + timedelta(minutes=offset), max_skew=timedelta(minutes=15)
        )

    if ok:
        check()
    else:
        with pytest.raises(ClockSkew):
            check()


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer x",
        "BackendAI signMethod=HMAC-MD5, credential=AK:ab",
        "BackendAI signMethod=HMAC-SHA256, credential=AK",
        "BackendAI credential=AK:ab",
    ],
)
def test_malformed_authorization_headers(header: str | None) -> None:
    with pytest.raises(SignatureError):
        parse_authorization(header)


def test_authorization_header_round_trip() -> None:
    parsed = parse_authorization(authorization_header("AKIAX", "ABCDEF01"))
    assert parsed == Credential("AKIAX", "abcdef01", "sha256")


@pytest.mark.parametrize(
    "raw", [None, "", "yesterday", "2026-13-21T23:30:00", "Sat, 32 Nov 2026 23:30:00 GMT"]
)
def test_unreadable_dates_are_refused(raw: str | None) -> None:
    with pytest.raises(SignatureError):
        parse_date(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-21T23:30:00+00:00",
        "2026-11-22T00:30:00+01:00",
        "2026-11-21T23:30:00",
        "Sat, 21 Nov 2026 23:30:00 GMT",
    ],
)
def test_dates_the_reference_reads(raw: str) -> None:
    """ISO 8601 with or without a zone (none is UTC) and HTTP dates, as 19.09's dateutil reads them."""
    assert parse_date(raw) == NOW


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Date": "a", "X-BackendAI-Date": "b"}, "a"),  # the reference reads Date first
        ({"X-BackendAI-Date": "b"}, "b"),
        ({"Date": "", "X-BackendAI-Date": "b"}, "b"),
        ({}, None),
    ],
)
def test_date_header_precedence(headers: dict[str, str], expected: str | None) -> None:
    assert request_date(headers) == expected
