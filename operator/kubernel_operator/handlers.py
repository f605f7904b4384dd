"""kopf handlers: thin triggers into ``Sessions``.

Settings chosen on purpose (see docs/operator.md):
- handler progress and the diff base live in annotations, never in status, so
  the status schema stays ours and kopf's bookkeeping never triggers us;
- only the explicit ``kopf.event`` calls post Kubernetes Events (kopf >= 1.44
  does not post its log lines by itself; we keep it that way);
- Pods are watched with a server-side label selector and Events with a field
  selector (kind=Pod), so neither other workloads' Pods nor unrelated Events
  reach this process; Events are read, never stored;
- watch streams end server-side after 5 minutes and are re-listed, and a
  stream silent for longer than the inactivity timeout is considered dead.
"""

from __future__ import annotations

import logging
import re

import kopf

from kubernel import resource as r
from kubernel.connect import connect
from kubernel.lifecycle import Reason

from .kube import Kube
from .sessions import Sessions
from .settings import OperatorSettings

KS = (r.GROUP, r.VERSION, r.PLURAL)
POD_NAME = re.compile(r"^(?P<session>.+)-r\d+-\d+$")
LIFECYCLE_EVENT_REASONS = {"Pulling", "Pulled"}


@kopf.on.startup(errors=kopf.ErrorsMode.PERMANENT)
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_) -> None:
    ours: OperatorSettings = memo.get("settings") or OperatorSettings.from_env()
    settings.persistence.finalizer = r.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=f"kopf.{r.GROUP}")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=f"kopf.{r.GROUP}", key="last-handled-configuration")
    settings.posting.loggers = False
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 120
    settings.watching.label_selectors["v1", "pods"] = f"{r.LABEL_MANAGED_BY}={r.MANAGED_BY}"
    settings.watching.field_selectors["v1", "events"] = "involvedObject.kind=Pod"
    settings.execution.max_workers = 20
    settings.scanning.disabled = not ours.scans_cluster
    memo.settings = ours
    memo.sessions = Sessions(Kube(await connect()), ours)
    logger.info("kubernel operator: namespaces=%s idle=%ss start-deadline=%ss",
                ",".join(ours.namespaces) or "*", ours.idle_timeout_seconds, ours.start_deadline_seconds)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_) -> None:
    await memo.sessions.kube.api.close()


@kopf.on.create(*KS)
@kopf.on.resume(*KS)
async def start(body: kopf.Body, name: str, namespace: str, memo: kopf.Memo, **_) -> None:
    await memo.sessions.start((namespace, name), dict(body))


# Not on creation (old absent): the start handles the first generation, and a second
# handler in the create cycle would cost kopf a second annotation patch.
@kopf.on.field(*KS, field="spec.restartCount", old=kopf.PRESENT)
async def restart(name: str, namespace: str, old: int | None, new: int | None, memo: kopf.Memo, **_) -> None:
    if (new or 0) > (old or 0):
        await memo.sessions.restart((namespace, name))


@kopf.on.field(*KS, field="spec.terminationRequested")
async def end_on_request(name: str, namespace: str, new: str | None, memo: kopf.Memo, **_) -> None:
    if new:
        await memo.sessions.end_on_request((namespace, name), Reason(new))


@kopf.on.delete(*KS)
async def finalize(body: kopf.Body, name: str, namespace: str, memo: kopf.Memo, **_) -> None:
    await memo.sessions.finalize((namespace, name), dict(body))


# The interval is read once at import: kopf fixes it when the handler registers.
@kopf.timer(*KS, interval=OperatorSettings.from_env().timer_interval_seconds, sharp=False)
async def deadlines(body: kopf.Body, name: str, namespace: str, memo: kopf.Memo, **_) -> None:
    await memo.sessions.tick((namespace, name), dict(body))


@kopf.on.event(*KS)
async def session_seen(type: str | None, body: kopf.Body, name: str, namespace: str, memo: kopf.Memo, **_) -> None:
    # The latest copy saves a read before each status write (a conflict makes us read afresh).
    memo.sessions.seen((namespace, name), None if type == "DELETED" else dict(body))


@kopf.on.event("v1", "pods", labels={r.LABEL_MANAGED_BY: r.MANAGED_BY})
async def pod_changed(type: str | None, body: kopf.Body, labels: kopf.Labels, namespace: str, memo: kopf.Memo,
                      **_) -> None:
    session = labels.get(r.LABEL_SESSION)
    # The initial listing (type None) counts too: the Pod watch may start after a
    # resume handler read the Pods, and a Pod that became Ready in between sends no
    # further event (found by the kill -9 fault test).
    if session:
        await memo.sessions.pod_changed((namespace, session), type, dict(body))


@kopf.on.event("v1", "events")
async def kubelet_event(type: str | None, body: kopf.Body, namespace: str, memo: kopf.Memo, **_) -> None:
    if type not in (None, "ADDED") or body.get("reason") not in LIFECYCLE_EVENT_REASONS:
        return
    pod = body.get("involvedObject", {}).get("name", "")
    match = POD_NAME.match(pod)
    if match:
        await memo.sessions.kubelet_event((namespace, match["session"]), pod, body["reason"])
