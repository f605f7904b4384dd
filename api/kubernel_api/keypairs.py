"""Keypairs: the model and its Secret form (pure).

A keypair is a Secret of type ``kubernel.io/keypair`` in the keypair
namespace, labelled so the API can watch just those (part-of=kubernel,
component=keypair), named after the access key by the admin command (other
names, such as the Helm chart's bootstrap keypair, work too).
``kubectl get secrets -l app.kubernetes.io/component=keypair
-L kubernel.io/role,kubernel.io/active`` lists them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import string
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from kubernel import resource as r
from kubernel.jsondict import JsonDict

from .limits import Limits

SECRET_TYPE = "kubernel.io/keypair"
COMPONENT = "keypair"
LABEL_KEYPAIR_ROLE = f"{r.GROUP}/role"
LABEL_ACTIVE = f"{r.GROUP}/active"
LABEL_BOOTSTRAP = f"{r.GROUP}/bootstrap"
# part-of, not managed-by: Helm sets managed-by=Helm on the chart's bootstrap keypair.
SELECTOR = f"{r.LABEL_PART_OF}={r.MANAGED_BY},{r.LABEL_COMPONENT}={COMPONENT}"
ACCESS_KEY_PATTERN = r"^[A-Za-z0-9_.-]{4,128}$"


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"  # domain admin
    SUPERADMIN = "superadmin"


class Keypair(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    access_key: str = Field(pattern=ACCESS_KEY_PATTERN)
    secret_key: str = Field(min_length=16, repr=False)
    role: Role = Role.USER
    domain: str = Field("default", min_length=1, max_length=64)
    groups: tuple[str, ...] = ("default",)
    limits: Limits = Field(default_factory=Limits)
    active: bool = True
    created_at: datetime | None = None

    @property
    def default_group(self) -> str:
        return self.groups[0] if self.groups else "default"


def revokes(before: Keypair, after: Keypair | None) -> bool:
    """Whether a change ends what ``before`` was granted (its open streams): deleted,
    deactivated, another role, domain or groups, or a new secret key."""
    return (
        after is None
        or not after.active
        or (before.role, before.domain, before.groups, before.secret_key)
        != (after.role, after.domain, after.groups, after.secret_key)
    )


def generate(role: Role, domain: str, groups: tuple[str, ...], limits: Limits, now: datetime) -> Keypair:
    """A new keypair in Backend.AI's shapes: AKIA + 16 characters, a 40-character secret."""
    alphabet = string.ascii_uppercase + string.digits
    access_key = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    return Keypair(
        access_key=access_key,
        secret_key=new_secret_key(),
        role=role,
        domain=domain,
        groups=groups,
        limits=limits,
        created_at=now,
    )


def new_secret_key() -> str:
    """40 random URL-safe characters, as Backend.AI's secret keys."""
    return secrets.token_urlsafe(30)[:40]


def secret_name(access_key: str) -> str:
    """A DNS name per access key; the hash keeps keys differing only in case apart."""
    digest = hashlib.sha256(access_key.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9-]+", "-", access_key.lower()).strip("-")[:40]
    return f"kubernel-keypair-{slug}-{digest}"


def to_secret(keypair: Keypair, *, bootstrap: bool = False) -> JsonDict:
    labels = {
        r.LABEL_MANAGED_BY: r.MANAGED_BY,
        r.LABEL_PART_OF: r.MANAGED_BY,
        r.LABEL_COMPONENT: COMPONENT,
        r.LABEL_ACCESS_KEY: r.label_value(keypair.access_key),
        LABEL_KEYPAIR_ROLE: keypair.role.value,
        LABEL_ACTIVE: str(keypair.active).lower(),
    }
    if bootstrap:
        labels[LABEL_BOOTSTRAP] = "true"
    data = {
        "access-key": keypair.access_key,
        "secret-key": keypair.secret_key,
        "role": keypair.role.value,
        "domain": keypair.domain,
        "groups": ",".join(keypair.groups),
        "active": str(keypair.active).lower(),
        "limits": keypair.limits.model_dump_json(by_alias=True, exclude_none=True),
        "created-at": keypair.created_at.isoformat() if keypair.created_at else "",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {"name": secret_name(keypair.access_key), "labels": labels},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def from_secret(secret: JsonDict) -> Keypair:
    """Raises ValueError (pydantic's ValidationError included) on a malformed Secret."""
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return Keypair(
        access_key=data["access-key"],
        secret_key=data["secret-key"],
        role=Role(data.get("role", "user")),
        domain=data.get("domain") or "default",
        groups=tuple(g for g in data.get("groups", "default").split(",") if g),
        limits=Limits.model_validate(json.loads(data.get("limits") or "{}")),
        active=data.get("active", "true") == "true",
        created_at=datetime.fromisoformat(data["created-at"]) if data.get("created-at") else None,
    )


def find_secret(secrets: list[JsonDict], access_key: str) -> JsonDict | None:
    """The Secret holding ``access_key``, whatever its name; malformed Secrets are skipped."""
    for secret in secrets:
        try:
            if from_secret(secret).access_key == access_key:
                return secret
        except (ValueError, KeyError):
            continue
    return None


def activation_patch(active: bool) -> JsonDict:
    return {
        "metadata": {"labels": {LABEL_ACTIVE: str(active).lower()}},
        "data": {"active": base64.b64encode(str(active).lower().encode()).decode()},
    }


def rotation_patch(secret_key: str) -> JsonDict:
    """A keypair Secret's patch to a new secret key: the old one is refused from then on, and
    the streams it opened close (``revokes``)."""
    return {"data": {"secret-key": base64.b64encode(secret_key.encode()).decode()}}
