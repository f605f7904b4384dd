"""Backend.AI HMAC request signatures (pure; see DESIGN.md, "Authentication").

The reference client signs ``METHOD\\npath?query\\ndate\\nhost:..\\ncontent-type:..
\\nx-backendai-version:..\\nH(b"")`` with a key derived from the secret key, the
request's calendar date and the host. The server recomputes it from what it
received: the raw path and query, the Date header as sent, the Host header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

API_VERSION_HEADER = "X-BackendAI-Version"
# As the 19.09 manager reads them: Date, and X-BackendAI-Date when there is no Date
# (browsers may not set Date).
DATE_HEADERS = ("Date", "X-BackendAI-Date")
# The content type the reference client signs when it sends none (event streams).
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_AUTHORIZATION = re.compile(
    r"^BackendAI\s+signMethod=HMAC-(?P<hash>[A-Za-z0-9]+)\s*,\s*credential=(?P<key>[^:\s]+):(?P<sig>[0-9a-fA-F]+)\s*$"
)
SUPPORTED_HASHES = frozenset({"sha256", "sha384", "sha512", "sha1"})


class SignatureError(ValueError):
    """The request is not signed, or not signed right. The message is for logs only."""


class ClockSkew(SignatureError):
    """The request's date is too far from the server's clock (the client may be told)."""


@dataclass(frozen=True)
class Credential:
    access_key: str
    signature: str
    hash_name: str


@dataclass(frozen=True)
class SignedRequest:
    """What the signature covers, as received."""

    method: str
    path_qs: str
    date: str
    host: str
    content_type: str
    version: str


def parse_authorization(header: str | None) -> Credential:
    if not header:
        raise SignatureError("no Authorization header")
    match = _AUTHORIZATION.match(header)
    if not match:
        raise SignatureError("malformed Authorization header")
    hash_name = match["hash"].lower()
    if hash_name not in SUPPORTED_HASHES:
        raise SignatureError(f"unsupported signMethod HMAC-{match['hash']}")
    return Credential(match["key"], match["sig"].lower(), hash_name)


def request_date(headers: Mapping[str, str]) -> str | None:
    """The date a request is signed with, as sent (the first non-empty of DATE_HEADERS)."""
    return next((headers[h] for h in DATE_HEADERS if headers.get(h)), None)


def parse_date(raw: str | None) -> datetime:
    """ISO 8601 (what the reference client sends) or an HTTP date; no zone means UTC,
    as the 19.09 manager reads it."""
    if not raw:
        raise SignatureError("no Date or X-BackendAI-Date header")
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        try:
            parsed = parsedate_to_datetime(raw.strip())
        except (TypeError, ValueError, IndexError):
            raise SignatureError("the date is neither ISO 8601 nor an HTTP date") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def check_date(raw: str | None, *, now: datetime, max_skew: timedelta) -> datetime:
    """The request's date, if it is there, readable and within ``max_skew`` of ``now``."""
    date = parse_date(raw)
    if abs(now - date) > max_skew:
        raise ClockSkew(f"the request's date is more than {max_skew} from the server's clock")
    return date


def string_to_sign(request: SignedRequest, hash_name: str) -> str:
    body_hash = hashlib.new(hash_name, b"").hexdigest()  # >= v4.20181215: the body is not hashed
    return (
        f"{request.method.upper()}\n{request.path_qs}\n{request.date}\n"
        f"host:{request.host}\ncontent-type:{request.content_type.lower()}\n"
        f"x-backendai-version:{request.version}\n{body_hash}"
    )


def signature(request: SignedRequest, secret_key: str, hash_name: str) -> str:
    date = parse_date(request.date)
    key = hmac.new(secret_key.encode(), date.strftime("%Y%m%d").encode(), hash_name).digest()
    key = hmac.new(key, request.host.encode(), hash_name).digest()
    return hmac.new(key, string_to_sign(request, hash_name).encode(), hash_name).hexdigest()


def verify(
    request: SignedRequest, credential: Credential, secret_key: str, *, now: datetime, max_skew: timedelta
) -> None:
    """Raise SignatureError unless the request is signed with ``secret_key`` and dated near ``now``."""
    check_date(request.date, now=now, max_skew=max_skew)
    expected = signature(request, secret_key, credential.hash_name)
    if not hmac.compare_digest(expected, credential.signature):
        raise SignatureError("signature mismatch")


def authorization_header(access_key: str, signature_hex: str, hash_name: str = "sha256") -> str:
    return f"BackendAI signMethod=HMAC-{hash_name.upper()}, credential={access_key}:{signature_hex}"
