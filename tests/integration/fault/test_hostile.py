"""Hostile input against a real API process: clear 4xx answers, a server that
stays up, and memory that stays bounded (RSS read from /proc)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from kubernel_api import keypairs as kp
from kubernel_testkit.api_client import ApiClient

from ..api_process import ApiProcess
from ..test_api_stream import stream, until_started

MAX_BODY = 1 << 20  # the documented default (KUBERNEL_API_MAX_BODY)
STREAM_QUEUE = 64
MiB = 1 << 20


def rss(process: ApiProcess) -> int:
    status = Path(f"/proc/{process.proc.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) * 1024


@pytest.fixture
async def hostile(
    kubeconfig: str, namespace: str, keypairs: dict[str, kp.Keypair], operator: object, tmp_path: Path
) -> AsyncIterator[tuple[ApiProcess, ApiClient]]:
    server = ApiProcess(kubeconfig, namespace, tmp_path, {"KUBERNEL_API_STREAM_QUEUE": str(STREAM_QUEUE)})
    server.start()
    async with aiohttp.ClientSession() as http:
        yield server, ApiClient(server.base_url, keypairs["alice"], http)
    server.stop()


async def still_serves(client: ApiClient) -> None:
    answer = await client.call("GET", "/kernel/no-such-kernel")
    assert answer.status == 404 and answer.problem_type.endswith("/kernel-not-found")


def raw_exchange(base_url: str, head: bytes, body_chunks: int = 0, chunk: bytes = b"") -> bytes:
    """Send a raw request (and up to body_chunks chunks of body), return what the server answers."""
    host, port = base_url.split("://")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):  # the server may answer and close before it all went
            for _ in range(body_chunks):
                sock.sendall(chunk)
        answer = b""
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                answer += data
                if b"\r\n\r\n" in answer:
                    break
        return answer


async def test_oversized_bodies_are_refused_without_being_read(hostile: tuple[ApiProcess, ApiClient]) -> None:
    server, alice = hostile
    before = rss(server)

    def head(length_or_chunked: str) -> bytes:
        return alice.raw_head("POST", "/kernel", content_type="application/json", extra=length_or_chunked)

    declared = await asyncio.to_thread(
        raw_exchange, alice.base_url, head(f"Content-Length: {100 * MiB}\r\n"), 100, b"x" * MiB
    )
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    chunked_chunk = b"100000\r\n" + b"x" * MiB + b"\r\n"
    chunked = await asyncio.to_thread(
        raw_exchange, alice.base_url, head("Transfer-Encoding: chunked\r\n"), 100, chunked_chunk
    )
    assert chunked.startswith(b"HTTP/1.1 413"), chunked[:200]
    just_over = await alice.call("POST", "/kernel", raw=b"{" + b" " * MAX_BODY + b"}")
    assert just_over.status == 413 and just_over.problem_type.endswith("/request-too-large"), just_over.body
    assert rss(server) - before < 20 * MiB, "the refused bodies were buffered"
    await still_serves(alice)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("deeply-nested-arrays", b"[" * 200_000 + b"]" * 200_000),
        ("deeply-nested-objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        ("invalid-utf8", b'{"clientSessionToken": "\xff\xfe\xfd", "image": "python:3.6"}'),
        ("lone-surrogate", b'{"clientSessionToken": "\\ud800abcd", "image": "python:3.6"}'),
        ("nul-bytes", b'{"clientSessionToken": "ab\\u0000cd", "image": "python:3.6"}'),
        (
            "huge-number",
            b'{"clientSessionToken": "abcd", "image": "python:3.6", "maxWaitSeconds": 1' + b"0" * 5000 + b"}",
        ),
    ],
)
async def test_malformed_bodies_get_a_clear_400(
    hostile: tuple[ApiProcess, ApiClient], name: str, body: bytes
) -> None:
    _, alice = hostile
    answer = await alice.call("POST", "/kernel", raw=body)
    assert answer.status == 400, (name, answer.body)
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert "Traceback" not in str(answer.body)
    await still_serves(alice)


async def test_huge_headers_are_refused_and_the_server_stays_up(
    hostile: tuple[ApiProcess, ApiClient],
) -> None:
    server, alice = hostile
    one_huge = await asyncio.to_thread(
        raw_exchange,
        alice.base_url,
        (f"GET / HTTP/1.1\r\nHost: {alice.host}\r\nX-Huge: {'a' * 256 * 1024}\r\n\r\n").encode(),
    )
    many = await asyncio.to_thread(
        raw_exchange,
        alice.base_url,
        (
            f"GET / HTTP/1.1\r\nHost: {alice.host}\r\n"
            + "".join(f"X-H{i}: v\r\n" for i in range(5000))
            + "\r\n"
        ).encode(),
    )
    for answer in (one_huge, many):
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:200]
    assert server.proc.poll() is None
    await still_serves(alice)


async def test_a_client_that_never_reads_costs_bounded_memory(hostile: tuple[ApiProcess, ApiClient]) -> None:
    """A stalled reader does not grow the server: what it misses waits in the kernel's
    socket buffers (about 2 MB on loopback), then in at most KUBERNEL_API_STREAM_QUEUE
    messages, after which the server drops it (it resumes with Last-Event-ID)."""
    server, alice = hostile
    host, port = alice.base_url.split("://")[1].split(":")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # a tiny window, never read
    stalled.connect((host, int(port)))
    stalled.sendall(alice.raw_head("GET", "/stream/kernel/_/events"))
    try:
        before = rss(server)
        async with stream(alice) as events:  # a healthy client beside it gets everything
            for round_ in range(4):
                tokens = {f"nr-{round_}{i:02}" for i in range(25)}
                answers = await asyncio.gather(*(alice.create(t, enqueueOnly=True) for t in sorted(tokens)))
                assert all(a.status == 201 for a in answers)
                await until_started(events, tokens, timeout=60)
        assert rss(server) - before < 30 * MiB
        await still_serves(alice)
    finally:
        stalled.close()
