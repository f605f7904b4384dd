"""A session's kernels in the cluster: creating them (Pods, headless Service, NetworkPolicy,
runner Secret, owned by the KernelSession), reading their facts, removing them."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import Counter

from kubernel import resource as r
from kubernel import runner as rn
from kubernel.images import ImageNotAllowed
from kubernel.jsondict import JsonDict
from kubernel.lifecycle import Phase, Reason, Result
from kubernel.model import KernelSessionSpec

from . import pods as builders
from .announce import as_body
from .facts import KernelFacts, kernel_facts
from .kube import Kube
from .observed import Observed, with_reasons
from .settings import OperatorSettings
from .store import Key
from .transitions import Ending, creation_gives_up, creation_refused, result_for


@dataclass(frozen=True)
class Created:
    pods: list[str]
    fresh: bool  # every object was new (not there from an earlier attempt)


class Kernels:
    def __init__(self, kube: Kube, settings: OperatorSettings, observed: Observed, failures: Counter) -> None:
        self.kube = kube
        self.settings = settings
        self.observed = observed
        self.failures = failures  # by outcome: rejected (the session ends), error (retried)
        # Errors in a row per session (retried with backoff until pod_create_attempts).
        self.failed_attempts: dict[Key, int] = {}

    async def create(self, key: Key, owner: JsonDict, spec: KernelSessionSpec) -> Created | Ending:
        """Create the Pods (and Service, and NetworkPolicy) of ``spec.restartCount``, or say why the
        session ends instead."""
        namespace, name = key
        try:
            image = self.settings.images.to_run(spec.image, spec.resolved_image)
        except ImageNotAllowed as exc:
            return Ending(Reason.FAILED_TO_CREATE, result_for(spec, success=False), str(exc))
        manifests = builders.build_pods(name, spec, image)
        service = builders.build_service(name, spec)
        if service is not None:
            manifests.insert(0, service)
            if await self.kube.kernels_isolated(namespace):
                # Only where kernels are isolated: alone, this policy would isolate them itself.
                manifests.insert(0, builders.build_network_policy(name, spec))
        owner_body = as_body(owner)
        for manifest in manifests:
            kopf.adopt(manifest, owner=owner_body)
        try:
            if builders.runs_runner(spec, image):  # before the Pods, which mount it
                token = rn.token(self.settings.runner_key, namespace, name, owner["metadata"]["uid"])
                secret = builders.build_runner_secret(name, spec, token)
                kopf.adopt(secret, owner=owner_body)
                await self.kube.create(namespace, secret)
            fresh = await asyncio.gather(*(self.kube.create(namespace, m) for m in manifests))
        except ApiException as exc:
            if creation_refused(exc.status, str(exc.body or "")):
                self.failures.labels("rejected").inc()
                self.failed_attempts.pop(key, None)
                return Ending(
                    Reason.FAILED_TO_CREATE, Result.UNDEFINED, f"Pod creation rejected: {exc.reason}"
                )
            self.failures.labels("error").inc()
            failed = self.failed_attempts[key] = self.failed_attempts.get(key, 0) + 1
            if creation_gives_up(failed, self.settings.pod_create_attempts):
                self.failed_attempts.pop(key, None)
                return Ending(
                    Reason.FAILED_TO_CREATE,
                    Result.UNDEFINED,
                    f"Pod creation failed {failed} times: {exc.status} {_first_line(exc)}",
                )
            raise
        self.failed_attempts.pop(key, None)
        return Created(
            pods=[m["metadata"]["name"] for m in manifests if m["kind"] == "Pod"], fresh=all(fresh)
        )

    async def facts(self, key: Key, status: JsonDict, owner_uid: str | None) -> list[KernelFacts]:
        """The facts of the current Pods: as the watches showed them, or, where they have
        not shown everything yet, as the API server lists them."""
        namespace, name = key
        restart = str(status.get("observedRestart", 0))
        kernels = self.observed.kernels(key, restart, status.get("pods") or [])
        if kernels is None:
            pods = [
                p
                for p in await self.kube.list_pods(namespace, name)
                if p["metadata"]["labels"].get(r.LABEL_RESTART) == restart
                and r.owner_uid(p) in (None, owner_uid)
            ]
            kernels = [kernel_facts(p, self.observed.reasons(key, p["metadata"]["name"])) for p in pods]
        main = next((k for k in kernels if k.index == 0), None)
        # A Pod that ran before its Pulled Event reached us: ask whether a pull happened.
        # The Events only matter until the session runs.
        if main is not None and main.ran and not main.pulled and status.get("phase") != Phase.RUNNING:
            reasons = await self.kube.pod_event_reasons(namespace, main.name)
            kernels = [with_reasons(k, reasons) if k is main else k for k in kernels]
        return kernels

    async def remove(self, key: Key, keep_generation: int | None = None) -> None:
        """Delete the session's Pods (all, or all but generation ``keep_generation``) and,
        when all go, its Service and NetworkPolicy."""
        namespace, name = key
        selector = f"{r.LABEL_SESSION}={name}"
        if keep_generation is not None:
            selector += f",{r.LABEL_RESTART}!={keep_generation}"
        await self.kube.delete_pods(namespace, selector, self.settings.pod_grace_seconds)
        if keep_generation is None:
            await self.kube.delete_service(namespace, name)
            await self.kube.delete_network_policy(namespace, f"{name}-kernels")


def _first_line(exc: ApiException) -> str:
    """The API server's message (its Status body) or reason, one line, bounded."""
    try:
        message = str(json.loads(exc.body or "{}").get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    return (message or str(exc.reason)).splitlines()[0][:300] if (message or exc.reason) else ""
