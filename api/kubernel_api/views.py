"""KernelSession -> the JSON the REST API answers with (pure)."""

from __future__ import annotations

from datetime import datetime

from kubernel.lifecycle import API_STATUS, Phase
from kubernel.model import KernelSession, KernelSessionStatus
from kubernel.quantity import memory_kib


def parse_session(body: dict) -> KernelSession:
    return KernelSession.model_validate({k: body[k] for k in ("spec", "status") if k in body})


def _status(session: KernelSession) -> KernelSessionStatus:
    return session.status or KernelSessionStatus()


def is_terminated(body: dict) -> bool:
    return (body.get("status") or {}).get("phase") == Phase.TERMINATED


def is_settled(body: dict) -> bool:
    """Started or ended: what POST /kernel waits for."""
    return (body.get("status") or {}).get("phase") in (Phase.RUNNING, Phase.TERMINATED)


def _created(body: dict, status: KernelSessionStatus) -> datetime:
    return status.created_at or datetime.fromisoformat(body["metadata"]["creationTimestamp"])


def cpu_credit_ms(status: KernelSessionStatus, now: datetime) -> int:
    running = (now - status.running_since).total_seconds() * 1000 if status.running_since else 0
    return status.cpu_credit_ms + max(0, int(running))


def kernel_info(body: dict, now: datetime) -> dict:
    """GET /kernel/:id."""
    session = parse_session(body)
    spec, status = session.spec, _status(session)
    created = _created(body, status)
    age_end = status.terminated_at or now
    return {
        "lang": spec.image,
        "image": spec.resolved_image or spec.image,
        "type": spec.type,
        "status": API_STATUS[Phase(status.phase)],
        "statusInfo": status.reason or None,
        "result": status.result,
        "age": max(0, int((age_end - created).total_seconds() * 1000)),
        "memoryLimit": status.memory_limit_kib or memory_kib(spec.resources.memory),
        "numQueriesExecuted": status.access_count,
        "cpuCreditUsed": cpu_credit_ms(status, now),
        "creationTime": created.isoformat(),
        "terminationTime": status.terminated_at.isoformat() if status.terminated_at else None,
        "tag": spec.tag,
        "clusterSize": spec.cluster_size,
        "domain": spec.owner.domain,
        "group": spec.owner.group,
        "ownerAccessKey": spec.owner.access_key,
        "servicePorts": [],
    }


def create_response(body: dict, *, created: bool, timed_out: bool) -> dict:
    """POST /kernel."""
    session = parse_session(body)
    return {
        "kernelId": session.spec.session_id,
        "created": created,
        "status": "TIMEOUT" if timed_out else API_STATUS[Phase(_status(session).phase)],
        "servicePorts": [],
    }


def final_stats(body: dict, now: datetime) -> dict:
    """DELETE /kernel/:id: the container stats we know (no metrics pipeline: CPU time and exit code)."""
    status = _status(parse_session(body))
    return {"cpu_used": cpu_credit_ms(status, status.terminated_at or now), "exit_code": status.exit_code,
            "status": API_STATUS[Phase(status.phase)], "reason": status.reason or None}
