"""KernelSession -> the JSON the REST API answers with (pure)."""

from __future__ import annotations

import json
from datetime import datetime

from kubernel.images import ServicePort, registry_of
from kubernel.jsondict import JsonDict
from kubernel.lifecycle import API_STATUS, Phase
from kubernel.model import KernelSession, KernelSessionStatus
from kubernel.quantity import memory_kib, parse_quantity


def parse_session(body: JsonDict) -> KernelSession:
    return KernelSession.model_validate({k: body[k] for k in ("spec", "status") if k in body})


def _status(session: KernelSession) -> KernelSessionStatus:
    return session.status or KernelSessionStatus()


def is_terminated(body: JsonDict) -> bool:
    return (body.get("status") or {}).get("phase") == Phase.TERMINATED


def is_settled(body: JsonDict) -> bool:
    """Started or ended: what POST /kernel waits for."""
    return (body.get("status") or {}).get("phase") in (Phase.RUNNING, Phase.TERMINATED)


def is_restarted(body: JsonDict, restart: int) -> bool:
    """Restart number ``restart`` has happened: its kernel runs, or the session ended."""
    status = body.get("status") or {}
    return status.get("phase") == Phase.TERMINATED or (
        status.get("observedRestart", 0) >= restart and status.get("phase") == Phase.RUNNING
    )


def _created(body: JsonDict, status: KernelSessionStatus) -> datetime:
    return status.created_at or datetime.fromisoformat(body["metadata"]["creationTimestamp"])


def cpu_credit_ms(status: KernelSessionStatus, now: datetime) -> int:
    running = (now - status.running_since).total_seconds() * 1000 if status.running_since else 0
    return status.cpu_credit_ms + max(0, int(running))


def kernel_info(
    body: JsonDict, now: datetime, measured: JsonDict | None = None, offered: list[ServicePort] | None = None
) -> JsonDict:
    """GET /kernel/:id; ``measured``: the runner's stats, whose CPU time is the credit
    while the kernel runs code (else the time it has been running)."""
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
        "cpuCreditUsed": _cpu_used(measured)
        if _cpu_used(measured) is not None
        else cpu_credit_ms(status, now),
        "creationTime": created.isoformat(),
        "terminationTime": status.terminated_at.isoformat() if status.terminated_at else None,
        "tag": spec.tag,
        "clusterSize": spec.cluster_size,
        "domain": spec.owner.domain,
        "group": spec.owner.group,
        "ownerAccessKey": spec.owner.access_key,
        "servicePorts": service_ports(body, offered or []),
        # 19.09's manager's own keys (its client does not read them; scripts may).
        "domainName": spec.owner.domain,
        "groupId": spec.owner.group,
        "registry": registry_of(spec.resolved_image or spec.image),
        "containerId": status.pods[0] if status.pods else None,
        "occupiedSlots": json.dumps(occupied_slots(session)),
        "lastStat": measured or None,
    }


def occupied_slots(session: KernelSession) -> dict[str, str]:
    """Backend.AI's slot names and values (strings, as its manager stores them)."""
    res = session.spec.resources
    slots = {"cpu": str(parse_quantity(res.cpu).normalize()), "mem": str(int(parse_quantity(res.memory)))}
    if res.gpu:
        slots["cuda.device"] = str(res.gpu)
    return slots


def _cpu_used(measured: JsonDict | None) -> int | None:
    value = (measured or {}).get("cpu_used")
    return (
        int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None
    )


def service_ports(body: JsonDict, offered: list[ServicePort]) -> list[JsonDict]:
    """The app services of a running session, as 19.09's create answer lists them."""
    if (body.get("status") or {}).get("phase") != Phase.RUNNING:
        return []
    return [{"name": p.name, "protocol": p.protocol, "ports": list(p.ports)} for p in offered]


def create_response(
    body: JsonDict, *, created: bool, timed_out: bool, offered: list[ServicePort]
) -> JsonDict:
    """POST /kernel (a reused session's answer has the same keys: 19.09 spelled its
    ports ``service_ports`` there, which its own client does not read)."""
    session = parse_session(body)
    return {
        "kernelId": session.spec.session_id,
        "created": created,
        "status": "TIMEOUT" if timed_out else API_STATUS[Phase(_status(session).phase)],
        "servicePorts": [] if timed_out else service_ports(body, offered),
    }


KERNEL_STATS = (
    "cpu_used",
    "mem_max_bytes",
    "mem_cur_bytes",
    "io_read_bytes",
    "io_write_bytes",
    "net_rx_bytes",
    "net_tx_bytes",
)


def final_stats(body: JsonDict, now: datetime, measured: JsonDict | None = None) -> JsonDict:
    """DELETE /kernel/:id: 19.09's version-1 stats (numbers, and the status): the
    runner's figures for the container (``measured``, read just before it ended),
    else the CPU credit we count. ``status`` is 19.09's word: ``terminated``, or
    ``cancelled`` for a session that never started. How it ended is in GET's statusInfo."""
    status = _status(parse_session(body))
    stats: dict[str, int | str] = dict.fromkeys(KERNEL_STATS, 0)
    stats["cpu_used"] = cpu_credit_ms(status, status.terminated_at or now)
    for key in KERNEL_STATS:
        value = (measured or {}).get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            stats[key] = int(value)
    stats["status"] = "cancelled" if status.started_at is None else "terminated"
    return stats


def compute_session(body: JsonDict, now: datetime) -> JsonDict:
    """A session as the 19.09 GraphQL ``ComputeSession`` (snake_case; live counters we
    do not collect are 0, the runner's figures replace them for a single session)."""
    session = parse_session(body)
    spec, status = session.spec, _status(session)
    changed = max((e.time for e in status.lifecycle), default=None) or _created(body, status)
    return {
        "id": body["metadata"].get("uid"),
        "sess_id": spec.session_id,
        "sess_type": spec.type.upper(),
        "role": "master",
        "image": spec.resolved_image or spec.image,
        "lang": spec.image,
        "registry": registry_of(spec.resolved_image or spec.image),
        "tag": spec.tag,
        "domain_name": spec.owner.domain,
        "group_name": spec.owner.group,
        "group_id": spec.owner.group,
        "access_key": spec.owner.access_key,
        "status": API_STATUS[Phase(status.phase)],
        "status_info": status.reason or None,
        "status_changed": changed.isoformat(),
        "created_at": _created(body, status).isoformat(),
        "terminated_at": status.terminated_at.isoformat() if status.terminated_at else None,
        "result": status.result,
        "agent": None,
        "container_id": None,
        "occupied_slots": json.dumps(occupied_slots(session)),
        "service_ports": "[]",
        "mounts": [m.name for m in spec.mounts],
        "num_queries": status.access_count,
        "cpu_used": cpu_credit_ms(status, now),
        "mem_max_bytes": 0,
        "mem_cur_bytes": 0,
        "net_rx_bytes": 0,
        "net_tx_bytes": 0,
        "io_read_bytes": 0,
        "io_write_bytes": 0,
        "io_max_scratch_size": 0,
        "io_cur_scratch_size": 0,
        "cpu_using": 0.0,
    }
