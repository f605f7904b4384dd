"""What the endpoints do with KernelSessions, between HTTP and Kubernetes.

Reads for decisions go to the API server (read-your-writes); waiting goes
through the shared informer (no polling, no watch per request).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes_asyncio.client.exceptions import ApiException

from kubernel import resource as r
from kubernel.lifecycle import Phase, Reason
from kubernel.model import KernelSession, KernelSessionSpec

from .holdings import Holdings, asked_by, beyond_totals
from .informer import Informer
from .keypairs import Keypair
from .kube import Kube
from .limits import exceeded
from .problems import Problem, ProblemType
from .quota import KeypairLock
from .requests import CreateRequest
from .settings import ApiSettings
from .views import is_restarted, is_settled, is_terminated, parse_session


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    body: dict
    created: bool
    timed_out: bool = False


def manifest(name: str, spec: KernelSessionSpec) -> dict:
    """The KernelSession to create (pure)."""
    body = KernelSession(spec=spec).model_dump(mode="json", by_alias=True, exclude_none=True)
    body["metadata"] = {
        "name": name,
        "labels": {
            r.LABEL_NAME: "kernelsession",
            r.LABEL_MANAGED_BY: r.MANAGED_BY,
            r.LABEL_PART_OF: r.MANAGED_BY,
            r.LABEL_ACCESS_KEY: r.label_value(spec.owner.access_key),
            r.LABEL_DOMAIN: r.label_value(spec.owner.domain),
            r.LABEL_GROUP: r.label_value(spec.owner.group),
            # With the operator's finalizer already there, kopf runs the create handler on the
            # first event instead of adding it and waiting for the next one (one round trip).
        },
        "finalizers": [r.FINALIZER],
    }
    return body


class SessionService:
    def __init__(self, kube: Kube, sessions: Informer, settings: ApiSettings, holdings: Holdings) -> None:
        self.kube = kube
        self.sessions = sessions
        self.settings = settings
        self.holdings = holdings
        self._keypair_lock = KeypairLock(kube)

    def key(self, name: str) -> tuple[str, str]:
        return self.settings.namespace, name

    async def live_sessions_of(self, access_key: str) -> int:
        """Counted at the API server: the watch cache may not show our own last create yet."""
        listed = await self.kube.sessions_labelled(f"{r.LABEL_ACCESS_KEY}={r.label_value(access_key)}")
        return sum(
            1
            for b in listed
            if (b.get("spec") or {}).get("owner", {}).get("accessKey") == access_key
            and not is_terminated(b)
            and not b["metadata"].get("deletionTimestamp")
        )

    def _quota_lock(self, owner: Keypair) -> contextlib.AbstractAsyncContextManager[None]:
        """Creates of a keypair with a session limit go one at a time across every API
        replica (a Lease per keypair, quota.py), so two of them cannot both see the last
        free slot. Keypairs without a limit take no lock."""
        if owner.limits.concurrent_sessions is None:
            return contextlib.nullcontext()
        return self._keypair_lock.held(owner.access_key)

    async def get_or_create(self, request: CreateRequest, owner: Keypair, spec: KernelSessionSpec) -> Outcome:
        violations = exceeded(spec.resources, spec.cluster_size, self.settings.server_limits, owner.limits)
        if violations:
            raise Problem(ProblemType.LIMIT_EXCEEDED, "; ".join(violations))
        name = r.session_name(owner.access_key, spec.session_id)
        held = self.holdings.held(owner.access_key)
        new = self.sessions.get(self.key(name)) is None
        beyond = (
            beyond_totals(self.holdings.usage(owner.access_key), asked_by(spec), owner.limits) if new else []
        )
        if beyond:
            raise Problem(ProblemType.QUOTA_EXCEEDED, f"keypair {owner.access_key}: " + "; ".join(beyond))
        if held >= self.settings.sessions_per_keypair and new:
            raise Problem(
                ProblemType.QUOTA_EXCEEDED,
                f"keypair {owner.access_key} holds {held} sessions, live and ended, the most it may "
                "(an ended session is kept until its retention passes)",
            )
        async with self._quota_lock(owner):
            outcome = await self._claim(name, request, owner, spec)
        if outcome.created and not request.enqueue_only:
            return await self._wait_started(name, outcome.body, request.max_wait_seconds)
        return outcome

    async def _claim(
        self, name: str, request: CreateRequest, owner: Keypair, spec: KernelSessionSpec
    ) -> Outcome:
        """Create the session, or find the live one of this token to reuse."""
        limit = owner.limits.concurrent_sessions
        # Create first and look only when the name is taken: a new session costs one call.
        for _ in range(10):
            over_quota = limit is not None and await self.live_sessions_of(owner.access_key) >= limit
            if not over_quota:
                try:
                    return Outcome(await self.kube.create_session(manifest(name, spec)), True)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
            existing = await self.kube.get_session(name)
            if existing is not None and not r.owns(existing, owner.access_key, spec.session_id):
                # Another owner's session holds the name (a digest collision): never hand it out.
                raise Problem(
                    ProblemType.KERNEL_EXISTS,
                    f"the name of token {spec.session_id!r} is taken; choose another token",
                )
            ended = existing is not None and (
                is_terminated(existing) or existing["metadata"].get("deletionTimestamp")
            )
            if over_quota and (existing is None or ended):  # a live session of this token is reused even so
                raise Problem(
                    ProblemType.QUOTA_EXCEEDED, f"keypair {owner.access_key} may run {limit} session(s)"
                )
            if existing is None:  # deleted between our create and our read
                continue
            if ended:
                await self._replace_ended(name, existing)
                continue
            return self._reuse(request, existing, spec.resolved_image)
        raise Problem(ProblemType.UNAVAILABLE, "the session with this token kept changing; try again")

    def _reuse(self, request: CreateRequest, existing: dict, resolved_image: str | None) -> Outcome:
        """As 19.09's manager: the same resolved image is reused (``python:3.6`` and the
        reference it stands for are one image), unless reuseIfExists is false."""
        token = request.client_session_token
        if parse_session(existing).spec.resolved_image != resolved_image:
            raise Problem(ProblemType.KERNEL_EXISTS, f"session {token!r} exists with another image")
        if not request.reuse_if_exists:
            raise Problem(ProblemType.KERNEL_EXISTS, f"session {token!r} exists and reuseIfExists is false")
        return Outcome(existing, False)

    async def _replace_ended(self, name: str, ended: dict) -> None:
        """A terminated session's token is free again: remove the old resource first."""
        uid = ended["metadata"]["uid"]
        await self.kube.delete_session(name, uid)
        try:
            await self.sessions.wait_for(
                self.key(name),
                lambda b: b is None or b["metadata"]["uid"] != uid,
                timeout=self.settings.destroy_wait_seconds,
            )
        except TimeoutError:
            raise Problem(
                ProblemType.UNAVAILABLE,
                "the ended session with this token is still being cleaned up; try again",
            ) from None

    async def _wait_started(self, name: str, created: dict, max_wait: int) -> Outcome:
        cap = self.settings.max_wait_seconds
        wait = min(max_wait, cap) if max_wait else cap
        uid = created["metadata"]["uid"]
        try:
            # None is not an answer: the watch may not have delivered our own create yet. A
            # session deleted meanwhile is seen Terminated first (the finalizer records it).
            body = await self.sessions.wait_for(
                self.key(name),
                lambda b: b is not None and (b["metadata"]["uid"] != uid or is_settled(b)),
                timeout=wait,
            )
        except TimeoutError:
            return Outcome(self.sessions.get(self.key(name)) or created, True, timed_out=True)
        if body is None or body["metadata"]["uid"] != uid:  # replaced meanwhile: ours ended
            return Outcome(created | {"status": {"phase": Phase.TERMINATED.value}}, True)
        return Outcome(body, True)

    async def find(self, owner: Keypair, kernel_id: str, *, live_only: bool) -> dict:
        body = await self.kube.get_session(r.session_name(owner.access_key, kernel_id))
        if body is not None and not r.owns(body, owner.access_key, kernel_id):
            body = None  # a name is not an owner: another's session does not exist for this caller
        if body is None or (live_only and (is_terminated(body) or body["metadata"].get("deletionTimestamp"))):
            raise Problem(ProblemType.KERNEL_NOT_FOUND, f"no kernel {kernel_id!r}")
        return body

    async def record_access(self, body: dict) -> dict:
        """Count an access (numQueriesExecuted) and restart the idle clock; optimistic, retried."""
        name = body["metadata"]["name"]
        for _ in range(8):
            status = body.get("status") or {}
            try:
                return await self.kube.patch_session_status(
                    name,
                    {"accessCount": status.get("accessCount", 0) + 1, "lastAccessAt": now().isoformat()},
                    body["metadata"]["resourceVersion"],
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
            fresh = await self.kube.get_session(name)
            if fresh is None or fresh["metadata"]["uid"] != body["metadata"]["uid"]:
                raise Problem(ProblemType.KERNEL_NOT_FOUND, "the kernel ended meanwhile")
            body = fresh
            await asyncio.sleep(0)
        return body  # counted next time; the figures may be a few seconds stale by contract

    async def restart(self, body: dict) -> None:
        """Bump spec.restartCount (optimistically: two restarts asked at once are two
        restarts) and wait, as 19.09's manager does, until the new kernel runs (or the
        session ended, or the wait is over: the restart then goes on without us)."""
        name, uid = body["metadata"]["name"], body["metadata"]["uid"]
        for _ in range(8):
            wanted = (body.get("spec") or {}).get("restartCount", 0) + 1
            try:
                await self.kube.patch_session(
                    name,
                    {
                        "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                        "spec": {"restartCount": wanted},
                    },
                )
                break
            except ApiException as exc:
                if exc.status != 409:
                    raise
            fresh = await self.kube.get_session(name)
            if fresh is None or fresh["metadata"]["uid"] != uid or is_terminated(fresh):
                raise Problem(ProblemType.KERNEL_NOT_FOUND, "the kernel ended meanwhile")
            body = fresh
        else:
            raise Problem(ProblemType.UNAVAILABLE, "the session kept changing; try again")
        with contextlib.suppress(TimeoutError):
            await self.sessions.wait_for(
                self.key(name),
                lambda b: b is None or b["metadata"]["uid"] != uid or is_restarted(b, wanted),
                timeout=self.settings.destroy_wait_seconds,
            )

    async def destroy(self, body: dict, *, forced: bool) -> tuple[dict, bool]:
        """Ask the operator to end the session; the final state, and whether it ended in time."""
        name, uid = body["metadata"]["name"], body["metadata"]["uid"]
        reason = Reason.FORCE_TERMINATED if forced else Reason.USER_REQUESTED
        await self.kube.patch_session(name, {"spec": {"terminationRequested": reason}})
        try:
            final = await self.sessions.wait_for(
                self.key(name),
                lambda b: b is None or b["metadata"]["uid"] != uid or is_terminated(b),
                timeout=self.settings.destroy_wait_seconds,
            )
        except TimeoutError:
            return self.sessions.get(self.key(name)) or body, False
        if final is None or final["metadata"]["uid"] != uid:
            return body, True
        return final, True
