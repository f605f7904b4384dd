"""Warm pools at the edge: each KernelPool's Pods kept at its size, and a session's claim of
one (the decisions are ``pools.py``'s; docs/pools.md tells the story).

What the pools hold comes from the watches (the KernelPool watch and the operator's one
Pod watch), so a claim reads nothing from the API server: it takes a ready Pod from
memory, binds it to the session through the runner's ``POST /bind``, resizes it in place
when the session asked for other limits, and only then makes it the session's with one
patch. A Pod being claimed is the claim's alone (``_taken``); anything that fails on the
way discards the Pod, which is still the pool's, and the session starts cold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from kubernel import resource as r
from kubernel import runner as rn
from kubernel.images import ImageNotAllowed, ResolvedImage
from kubernel.jsondict import JsonDict
from kubernel.model import KernelSessionSpec
from kubernel.pool import KernelPoolSpec, KernelPoolStatus

from . import pools
from .kube import Kube
from .metrics import OperatorMetrics
from .settings import OperatorSettings

log = logging.getLogger("kubernel.operator.pools")
Key = tuple[str, str]  # (namespace, name)
SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
CLAIM_TRIES = 3
RETRY_SECONDS = (1, 2, 5, 10, 30)
RESIZE_POLL_SECONDS = 0.02
POOL_EMPTY = pools.ColdStart("pool-empty", "no ready kernel in the pool")


@dataclass(frozen=True)
class Claimed:
    pool: str
    pod: JsonDict  # the Pod as the claim's patch left it


class Discarded(Exception):
    """A kernel that cannot serve the session after all (its bind or resize failed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.cold_start = pools.ColdStart(code, message)


class Pools:
    def __init__(self, kube: Kube, settings: OperatorSettings, metrics: OperatorMetrics) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.bodies: dict[Key, JsonDict] = {}  # KernelPools, as the watch shows them
        self.pods: dict[Key, dict[str, JsonDict]] = {}  # pool -> its unclaimed Pods, by name
        self.expected: dict[Key, set[str]] = {}  # created, not yet shown by the watch
        self._taken: set[Key] = set()  # (namespace, Pod) being claimed
        self._changed: dict[Key, asyncio.Event] = {}  # (namespace, Pod) -> its next event
        self.claimed: dict[Key, int] = {}
        self.misses: dict[Key, int] = {}
        self.last_miss: dict[Key, str] = {}
        self._dirty: dict[Key, asyncio.Event] = {}
        self._loops: dict[Key, asyncio.Task[None]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._listed: set[Key] = set()  # pools whose Pods were listed once (the watch may lag at start)

    async def close(self) -> None:
        for task in self._loops.values():
            task.cancel()
        if self._http is not None:
            await self._http.close()

    # -- what the watches show -------------------------------------------------------
    def pool_event(self, key: Key, event_type: str | None, body: JsonDict) -> None:
        if event_type == "DELETED":
            self.bodies.pop(key, None)  # its Pods go with it (owner references)
            self.pods.pop(key, None)
            self.expected.pop(key, None)
            self._listed.discard(key)
            task = self._loops.pop(key, None)
            if task is not None:
                task.cancel()
            self._dirty.pop(key, None)
            return
        self.bodies[key] = body
        if event_type is None:
            # A (re-)listing of the pools: list their Pods again too, since a Pod deleted
            # while the Pod watch was re-listing sends no DELETED.
            self._listed.discard(key)
        self.poke(key)

    def pod_event(self, namespace: str, event_type: str | None, pod: JsonDict) -> None:
        """Any of the operator's Pods: a pool's unclaimed one is indexed; any other (a
        claimed one, a session's) is dropped from every pool of its namespace."""
        meta = pod.get("metadata") or {}
        name = meta.get("name", "")
        pool = (meta.get("labels") or {}).get(r.LABEL_POOL)
        changed = self._changed.get((namespace, name))
        if changed is not None:
            changed.set()
        if pool and event_type != "DELETED":
            key = (namespace, pool)
            self.pods.setdefault(key, {})[name] = pod
            self.expected.get(key, set()).discard(name)
            self.poke(key)
            return
        for key, held in self.pods.items():
            if key[0] == namespace and held.pop(name, None) is not None:
                self.poke(key)
        for key, names in self.expected.items():
            if key[0] == namespace and name in names:
                names.discard(name)
                self.poke(key)

    def poke(self, key: Key) -> None:
        """Ask for a reconcile of the pool; many pokes while one runs make one more."""
        dirty = self._dirty.setdefault(key, asyncio.Event())
        dirty.set()
        if key not in self._loops or self._loops[key].done():
            self._loops[key] = asyncio.create_task(self._loop(key), name=f"pool {key[0]}/{key[1]}")

    # -- keeping the pool full -------------------------------------------------------
    async def _loop(self, key: Key) -> None:
        failures = 0
        dirty = self._dirty[key]
        while key in self.bodies:
            await dirty.wait()
            dirty.clear()
            try:
                await self._reconcile(key)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried, with backoff
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("pool %s/%s: %s; retrying in %ss", *key, exc, delay)
                asyncio.get_running_loop().call_later(delay, dirty.set)

    def _image(self, spec: KernelPoolSpec) -> ResolvedImage:
        image = self.settings.images.to_run(spec.image, None)
        if not image.runner:
            raise ImageNotAllowed(f"{spec.image} has no code runner: its kernels cannot be warm")
        return image

    async def _reconcile(self, key: Key) -> None:
        namespace, name = key
        body = self.bodies.get(key)
        if body is None:
            return
        status = KernelPoolStatus(
            claimed=self.claimed.get(key, 0),
            misses=self.misses.get(key, 0),
            last_miss_reason=self.last_miss.get(key, ""),
            selector=f"{r.LABEL_POOL}={name}",
            observed_generation=body["metadata"].get("generation", 0),
        )
        try:
            spec = KernelPoolSpec.model_validate(body.get("spec") or {})
            image = self._image(spec)
        except (ValidationError, ImageNotAllowed) as exc:
            await self._write_status(key, status.model_copy(update={"message": str(exc)[:1024]}))
            return
        if key not in self._listed:  # at our start, the Pod watch may not have shown them yet
            listed = await self.kube.list_pods_labelled(namespace, f"{r.LABEL_POOL}={name}")
            previous = self.pods.get(key, {})
            self.pods[key] = {p["metadata"]["name"]: p for p in listed}
            for pod_name, pod in previous.items():  # one being claimed stays, whatever the list says
                if (namespace, pod_name) in self._taken:
                    self.pods[key].setdefault(pod_name, pod)
            self._listed.add(key)
        template = pools.pod_template(spec, image)
        current = pools.template_hash(template)
        held = [
            pools.pool_pod(p) for n, p in self.pods.get(key, {}).items() if (namespace, n) not in self._taken
        ]
        expected = self.expected.setdefault(key, set())
        held += [pools.PoolPod(n, current, False, False, False, "", None) for n in expected]
        plan = pools.plan(spec.replicas, current, held, spec.max_starting)
        versions = {p.name: p.resource_version for p in held}
        for doomed in plan.delete:
            # Never a session's (the resourceVersion: not claimed since we read it): nothing to lose.
            await self.kube.delete_pod(namespace, doomed, 0, resource_version=versions.get(doomed) or None)
        for _ in range(plan.create):
            pod_name = pools.pod_name(name, "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(6)))
            token = rn.bind_token(self.settings.runner_key, namespace, pod_name)
            expected.add(pod_name)
            try:
                await self.kube.create(namespace, pools.build_pool_pod(body, template, pod_name, token))
            except Exception:
                expected.discard(pod_name)
                raise
        kept = [p for p in held if p.name not in plan.delete and not p.deleting and not p.ended]
        ready = sum(1 for p in kept if p.ready and p.template == current)
        starting = len(kept) - ready + plan.create
        await self._write_status(
            key,
            status.model_copy(
                update={
                    "replicas": ready + starting,
                    "ready": ready,
                    "starting": starting,
                    "template_hash": current,
                }
            ),
        )

    async def _write_status(self, key: Key, status: KernelPoolStatus) -> None:
        document = status.model_dump(by_alias=True, mode="json")
        body = self.bodies.get(key)
        if body is not None and body.get("status") != document:
            await self.kube.patch_pool_status(*key, document)
            body["status"] = document  # until the watch brings it back

    # -- claims ----------------------------------------------------------------------
    def pool_for(self, namespace: str, image: str) -> tuple[Key, KernelPoolSpec] | None:
        """The namespace's pool of ``image`` (the first by name, if several)."""
        for key in sorted(self.bodies):
            body = self.bodies[key]
            if key[0] == namespace and (body.get("spec") or {}).get("image") == image:
                try:
                    return key, KernelPoolSpec.model_validate(body["spec"])
                except ValidationError:
                    return None
        return None

    def miss(self, key: Key, reason: pools.ColdStart) -> pools.ColdStart:
        self.misses[key] = self.misses.get(key, 0) + 1
        self.last_miss[key] = reason.message
        self.metrics.pool_misses.labels(reason=reason.code).inc()
        self.poke(key)
        return reason

    async def claim(
        self, key: Key, owner: JsonDict, spec: KernelSessionSpec
    ) -> Claimed | pools.ColdStart | None:
        """A warm kernel for the session ``key`` (``owner``, its body): claimed, bound and
        sized, or why the session starts cold (a pool of its image exists but cannot
        serve it), or None when no pool serves its image."""
        namespace = key[0]
        found = self.pool_for(namespace, spec.image)
        if found is None:
            return None
        pool_key, pool_spec = found
        reason = pools.cold_start_reason(spec, pool_spec)
        if reason is not None:
            return self.miss(pool_key, reason)
        try:
            session_image = self.settings.images.to_run(spec.image, spec.resolved_image)
            pool_image = self._image(pool_spec)
        except ImageNotAllowed as exc:
            return self.miss(pool_key, pools.ColdStart("image", str(exc)))
        current = pools.template_hash(pools.pod_template(pool_spec, pool_image))
        if pools.template_hash(pools.pod_template(pool_spec, session_image)) != current:
            return self.miss(
                pool_key, pools.ColdStart("image", "the session's image is another build than the pool's")
            )
        with self.metrics.pool_claim_duration.time():
            return await self._claim(key, owner, spec, pool_key, current, session_image)

    async def _claim(
        self,
        key: Key,
        owner: JsonDict,
        spec: KernelSessionSpec,
        pool_key: Key,
        current: str,
        session_image: ResolvedImage,
    ) -> Claimed | pools.ColdStart:
        namespace, name = key
        pool_spec = pool_spec_of(self.bodies[pool_key])
        for _ in range(CLAIM_TRIES):
            pod = self._take(pool_key, current)
            if pod is None:
                return self.miss(pool_key, POOL_EMPTY)
            reason: pools.ColdStart | None = None
            try:
                claimed = await self._claim_one(key, owner, spec, pool_spec, pool_key[1], pod, session_image)
            except Discarded as exc:
                reason = exc.cold_start
            except Exception as exc:  # noqa: BLE001 - whatever failed, the session still starts (cold)
                log.warning("%s/%s: claiming %s failed: %r", namespace, name, pod.name, exc)
                reason = pools.ColdStart("claim", f"the claim failed ({type(exc).__name__})")
            finally:
                # Claimed, gone or discarded: no longer the pool's, whatever the watch says yet.
                self.pods.get(pool_key, {}).pop(pod.name, None)
                self._taken.discard((namespace, pod.name))
                self._changed.pop((namespace, pod.name), None)
                self.poke(pool_key)  # the refill starts now
            if reason is not None:
                # Bound to this session (or half-claimed): of no use to anyone else.
                await self._discard(namespace, pod.name)
                return self.miss(pool_key, reason)
            if claimed is not None:
                self.claimed[pool_key] = self.claimed.get(pool_key, 0) + 1
                self.metrics.pool_claims.inc()
                log.info("%s/%s claimed %s from pool %s", namespace, name, pod.name, pool_key[1])
                return Claimed(pool_key[1], claimed)
        return self.miss(pool_key, POOL_EMPTY)

    async def _discard(self, namespace: str, pod: str) -> None:
        try:
            await self.kube.delete_pod(namespace, pod, 0)
        except Exception as exc:  # noqa: BLE001 - the session goes on; the Pod is logged
            log.warning("could not delete the discarded warm kernel %s/%s: %r", namespace, pod, exc)

    def _take(self, pool_key: Key, template: str) -> pools.PoolPod | None:
        """The oldest ready current Pod nobody is claiming, now reserved for this claim."""
        namespace, _ = pool_key
        ready = [
            pools.pool_pod(p)
            for n, p in sorted(
                self.pods.get(pool_key, {}).items(),
                key=lambda item: item[1]["metadata"].get("creationTimestamp", ""),
            )
            if (namespace, n) not in self._taken
        ]
        for pod in ready:
            if pod.ready and not pod.ended and pod.template == template and pod.address:
                self._taken.add((namespace, pod.name))
                return pod
        return None

    async def _claim_one(
        self,
        key: Key,
        owner: JsonDict,
        spec: KernelSessionSpec,
        pool_spec: KernelPoolSpec,
        pool: str,
        pod: pools.PoolPod,
        image: ResolvedImage,
    ) -> JsonDict | None:
        """Bind, resize, then make the Pod the session's; None if it went away meanwhile."""
        namespace, name = key
        token = rn.token(self.settings.runner_key, namespace, name, owner["metadata"]["uid"])
        await self._bind(namespace, pod, pools.bind_document(spec, token))
        if pools.needs_resize(spec.resources, pool_spec.resources):
            patch = pools.resize_patch(spec.resources, image)
            pod = await self._resize(namespace, pod, patch, spec, token)
        try:
            return await self.kube.patch_pod(
                namespace, pod.name, pools.claim_patch(pool, pod, name, spec, owner)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status != 409:
                raise
        # Moved on since we read it (a status update, most likely): once more, if it is still
        # the pool's and ready; its new resourceVersion guards this patch as the first did.
        fresh = await self.kube.read_pod(namespace, pod.name)
        again = pools.pool_pod(fresh) if fresh is not None else None
        if (
            fresh is None
            or again is None
            or r.LABEL_POOL not in (fresh["metadata"].get("labels") or {})
            or not again.ready
            or again.deleting
        ):
            raise Discarded("claim", "the warm kernel was changed by someone else")
        return await self.kube.patch_pod(
            namespace, pod.name, pools.claim_patch(pool, again, name, spec, owner)
        )

    async def _bind(self, namespace: str, pod: pools.PoolPod, document: JsonDict) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        token = rn.bind_token(self.settings.runner_key, namespace, pod.name)
        try:
            async with self._http.post(
                f"http://{pod.address}{rn.BIND_PATH}",
                json=document,
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=self.settings.pool_bind_timeout_seconds),
            ) as response:
                if response.status != 200:
                    raise Discarded("bind", f"the warm kernel refused its bind ({response.status})")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Discarded(
                "bind", f"the warm kernel did not answer its bind ({type(exc).__name__})"
            ) from None

    async def _resize(
        self, namespace: str, pod: pools.PoolPod, patch: JsonDict, spec: KernelSessionSpec, token: str
    ) -> pools.PoolPod:
        """Resize in place and wait, within the setting, until the container runs under the
        new limits: seen first by the runner (its cgroup, ``/stats``, polled) or in the Pod's
        status (the kubelet reports a resize a while after it made it); a kubelet that says
        it cannot (the node has no room) sends the session cold."""
        changed = self._changed.setdefault((namespace, pod.name), asyncio.Event())
        try:
            await self.kube.resize_pod(namespace, pod.name, patch)
        except ApiException as exc:
            raise Discarded(
                "resize", f"the warm kernel cannot be resized ({exc.status} {exc.reason})"
            ) from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.pool_resize_wait_seconds
        while True:
            changed.clear()  # before reading: an event after the read wakes the wait
            body = self._body(namespace, pod.name)
            state = pools.resize_state(body, patch) if body is not None else "refused"
            if state == "refused":
                raise Discarded("resize", "the node cannot resize the warm kernel to the session's limits")
            if body is not None and (state == "done" or await self._runs_under(pod, spec, token)):
                return pools.pool_pod(body)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Discarded("resize", "the warm kernel's resize took too long")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, RESIZE_POLL_SECONDS))

    async def _runs_under(self, pod: pools.PoolPod, spec: KernelSessionSpec, token: str) -> bool:
        assert self._http is not None  # the bind opened it
        try:
            async with self._http.get(
                f"http://{pod.address}/stats",
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=1),
            ) as response:
                figures = await response.json() if response.status == 200 else {}
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
        return isinstance(figures, dict) and pools.limits_applied(figures, spec.resources)

    def _body(self, namespace: str, pod: str) -> JsonDict | None:
        for key, held in self.pods.items():
            if key[0] == namespace and pod in held:
                return held[pod]
        return None


def pool_spec_of(body: Mapping[str, Any]) -> KernelPoolSpec:
    return KernelPoolSpec.model_validate(body.get("spec") or {})
