"""One list+watch per kind per process, a cache, and waiters on it.

Readers await ``loaded`` before reading, so they never see an empty cache
before the first listing. Every change is passed on as a batch
``(previous resourceVersion, resourceVersion, [(old, new), ...])``: one item
per watch event, many after a re-list (the difference between the old cache
and the new listing), so the SSE ids stay exact across re-lists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import watch
from kubernetes_asyncio.client.exceptions import ApiException

from kubernel.client.raw import read_json

log = logging.getLogger("kubernel.api.informer")
Key = tuple[str, str]
Change = tuple[dict | None, dict | None]
OnChange = Callable[[str, str, list[Change]], None]
ListFn = Callable[..., Awaitable[Any]]


def key_of(body: dict) -> Key:
    return body["metadata"].get("namespace", ""), body["metadata"]["name"]


@dataclass
class _Waiter:
    predicate: Callable[[dict | None], bool]
    future: asyncio.Future


@dataclass
class Informer:
    """list_fn is a kubernetes_asyncio list call with its positional arguments bound."""

    what: str
    list_fn: ListFn
    on_change: OnChange | None = None
    label_selector: str | None = None
    watch_timeout_seconds: int = 300
    cache: dict[Key, dict] = field(default_factory=dict)
    resource_version: str = ""
    healthy: bool = False
    _loaded: asyncio.Future | None = None
    _waiters: dict[Key, list[_Waiter]] = field(default_factory=dict)

    @property
    def loaded(self) -> asyncio.Future:
        if self._loaded is None:
            self._loaded = asyncio.get_running_loop().create_future()
        return self._loaded

    def get(self, key: Key) -> dict | None:
        return self.cache.get(key)

    async def wait_for(
        self, key: Key, predicate: Callable[[dict | None], bool], timeout: float
    ) -> dict | None:
        """The object once ``predicate(object or None)`` holds; raises TimeoutError."""
        await self.loaded
        current = self.cache.get(key)
        if predicate(current):
            return current
        waiter = _Waiter(predicate, asyncio.get_running_loop().create_future())
        self._waiters.setdefault(key, []).append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        finally:
            waiters = self._waiters.get(key, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(key, None)

    def _kwargs(self) -> dict[str, Any]:
        return {"label_selector": self.label_selector} if self.label_selector else {}

    async def _relist(self) -> None:
        listing = await read_json(
            await self.list_fn(**self._kwargs(), _request_timeout=30, _preload_content=False)
        )
        items = {key_of(b): b for b in listing.get("items") or []}
        rv = listing["metadata"]["resourceVersion"]
        changes: list[Change] = [
            (self.cache.get(k), b)
            for k, b in items.items()
            if (self.cache.get(k) or {}).get("metadata", {}).get("resourceVersion")
            != b["metadata"]["resourceVersion"]
        ]
        changes += [(old, None) for k, old in self.cache.items() if k not in items]
        previous, self.cache, self.resource_version = self.resource_version, items, rv
        if changes:  # previous is "" for the first listing
            self._publish(previous, rv, changes)
        for k in {key_of(body) for o, n in changes if (body := n or o)}:
            self._wake(k)
        if not self.loaded.done():
            self.loaded.set_result(None)

    def _publish(self, previous: str, rv: str, changes: list[Change]) -> None:
        if self.on_change is not None:
            try:
                self.on_change(previous, rv, changes)
            except Exception:  # a subscriber bug must not stop the watch
                log.exception("%s: change handler failed", self.what)

    def _wake(self, key: Key) -> None:
        current = self.cache.get(key)
        for waiter in list(self._waiters.get(key, [])):
            if not waiter.future.done() and waiter.predicate(current):
                waiter.future.set_result(current)

    def _apply(self, kind: str, body: dict) -> None:
        rv = body["metadata"]["resourceVersion"]
        previous = self.resource_version
        self.resource_version = rv
        if kind == "BOOKMARK":
            return
        key = key_of(body)
        old = self.cache.get(key)
        if kind == "DELETED":
            self.cache.pop(key, None)
            self._publish(previous, rv, [(old, None)])
        else:
            self.cache[key] = body
            self._publish(previous, rv, [(old, body)])
        self._wake(key)

    async def run(self) -> None:
        """List, then watch from there for ever; re-list when the history is gone (410)."""
        backoff = 0.2
        must_list = True
        while True:
            try:
                if must_list:
                    await self._relist()
                    must_list = False
                    log.info(
                        "%s: listed %d at resourceVersion %s",
                        self.what,
                        len(self.cache),
                        self.resource_version,
                    )
                self.healthy = True
                backoff = 0.2
                stream = watch.Watch()
                async with stream:
                    async for event in stream.stream(
                        self.list_fn,
                        resource_version=self.resource_version,
                        allow_watch_bookmarks=True,
                        timeout_seconds=self.watch_timeout_seconds,
                        **self._kwargs(),
                        _request_timeout=self.watch_timeout_seconds + 30,
                    ):
                        self._apply(event["type"], event["raw_object"])
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status == 410:
                    must_list = True
                    continue
                self._unhealthy(f"API error {exc.status} {exc.reason}")
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                self._unhealthy(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _unhealthy(self, why: str) -> None:
        if self.healthy:
            log.warning("%s: watch interrupted (%s); retrying", self.what, why)
        self.healthy = False
