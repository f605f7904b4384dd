"""Kubernetes responses as plain JSON, skipping kubernetes_asyncio's models.

Building ``V1Pod`` and friends only to turn them back into dicts was the largest
single cost of a reconcile (make bench, docs/performance.md). Asking for the raw
response (``_preload_content=False``) also skips the client's status check, so
it is made here: an error response raises ``ApiException`` as usual, instead of
reading as a JSON ``Status`` with no items (which read as "nothing there").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException


async def read_bytes(response: Any) -> bytes:
    """The body of a response requested with ``_preload_content=False``; raises ApiException."""
    async with response:
        data = await response.read()
        if not 200 <= response.status <= 299:
            error = ApiException(status=response.status, reason=response.reason)
            error.body, error.headers = data, response.headers
            raise error
        return data


async def read_json(response: Any) -> dict:
    """The JSON body of a response requested with ``_preload_content=False``; raises ApiException."""
    return json.loads(await read_bytes(response))


async def read_items(response: Any) -> list[dict]:
    """The items of a raw list response; raises ApiException."""
    return (await read_json(response)).get("items") or []


async def claim_labels(
    core: CoreV1Api, namespace: str, names: Iterable[str], **request: Any
) -> dict[str, dict[str, str] | None]:
    """The labels of each named PersistentVolumeClaim (None: there is none): whose folder
    it is (kubernel/folders.py). The operator and the API both ask."""

    async def labels_of(name: str) -> dict[str, str] | None:
        try:
            claim = await read_json(
                await core.read_namespaced_persistent_volume_claim(
                    name, namespace, _preload_content=False, **request
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict((claim.get("metadata") or {}).get("labels") or {})

    wanted = sorted(set(names))
    return dict(zip(wanted, await asyncio.gather(*(labels_of(n) for n in wanted)), strict=True))
