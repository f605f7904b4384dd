"""A signed HTTP client for the tests (our own, so each header can be broken on purpose)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from kubernel_api.keypairs import Keypair
from kubernel_api.signing import SignedRequest, authorization_header, signature

VERSION = "v4.20190615"


def signed_headers(
    keypair: Keypair,
    method: str,
    path_qs: str,
    host: str,
    content_type: str,
    *,
    secret: str | None = None,
    date: datetime | None = None,
) -> dict[str, str]:
    """Date, version and Authorization headers as the Backend.AI client signs them."""
    when = (date or datetime.now(UTC)).isoformat()
    signed = SignedRequest(method, path_qs, when, host, content_type, VERSION)
    sig = signature(signed, secret or keypair.secret_key, "sha256")
    return {
        "Date": when,
        "X-BackendAI-Version": VERSION,
        "Authorization": authorization_header(keypair.access_key, sig),
    }


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def problem_type(self) -> str:
        return self.body.get("type", "") if isinstance(self.body, dict) else ""


@dataclass
class ApiClient:
    base_url: str
    keypair: Keypair
    http: aiohttp.ClientSession
    secret_override: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.base_url.split("://", 1)[1]

    def signed_headers(
        self,
        method: str,
        path_qs: str,
        content_type: str = "application/octet-stream",
        *,
        date: datetime | None = None,
        sign_path: str | None = None,
    ) -> dict[str, str]:
        return signed_headers(
            self.keypair,
            method,
            sign_path or path_qs,
            self.host,
            content_type,
            secret=self.secret_override,
            date=date,
        )

    def raw_head(
        self,
        method: str,
        path: str,
        *,
        http: str = "1.1",
        extra: str = "",
        content_type: str | None = None,
        date: datetime | None = None,
    ) -> bytes:
        """A signed request head for tests and tools that speak HTTP over a bare socket
        (``date``: its signature's, so that many heads signed at once differ)."""
        headers = self.signed_headers(method, path, content_type or "application/octet-stream", date=date)
        if content_type:
            headers["Content-Type"] = content_type
        return (
            f"{method} {path} HTTP/{http}\r\nHost: {self.host}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + extra
            + "\r\n"
        ).encode()

    def url(self, path: str, params: dict | None = None) -> URL:
        """The URL as the client will send it; its relative part is what gets signed."""
        url = URL(self.base_url + path, encoded=True)
        return url.with_query(params) if params else url

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        **sign: Any,
    ) -> Answer:
        url = self.url(path, params)
        path_qs = str(url.relative())
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        content_type = "application/json" if data is not None else "application/octet-stream"
        all_headers = self.signed_headers(method, path_qs, content_type, **sign)
        if data is not None:
            all_headers["Content-Type"] = content_type
        all_headers.update(self.extra_headers)
        all_headers.update(headers or {})
        async with self.http.request(method, url, data=data, headers=all_headers) as resp:
            text = await resp.read()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text.decode(errors="replace")
            return Answer(resp.status, dict(resp.headers), parsed)

    async def create(self, token: str, image: str = "python:3.6", **fields: Any) -> Answer:
        return await self.call(
            "POST", "/kernel", body={"clientSessionToken": token, "image": image, **fields}
        )
