"""Identity of the KernelSession resource: API group, names, labels."""

from __future__ import annotations

import hashlib
import re

from .jsondict import JsonDict

GROUP = "kubernel.io"
VERSION = "v1alpha1"
KIND = "KernelSession"
PLURAL = "kernelsessions"
SINGULAR = "kernelsession"
SHORT_NAMES = ["ks"]
API_VERSION = f"{GROUP}/{VERSION}"

# Labels on everything the operator creates (Kubernetes recommended labels).
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_INSTANCE = "app.kubernetes.io/instance"
MANAGED_BY = "kubernel"
# Our own labels: selectable facts about the session.
LABEL_SESSION = f"{GROUP}/session"  # the KernelSession's name
LABEL_ACCESS_KEY = f"{GROUP}/access-key"
LABEL_DOMAIN = f"{GROUP}/domain"
LABEL_GROUP = f"{GROUP}/group"
LABEL_ROLE = f"{GROUP}/kernel-role"  # main | sub
LABEL_INDEX = f"{GROUP}/kernel-index"  # 0 = main
LABEL_RESTART = f"{GROUP}/restart"  # the restart generation a Pod belongs to
QUOTA_EXCEEDED = "exceeded quota"
"""The API server's words when a namespace's ResourceQuota refuses a create."""
QUOTA_NOT_READY = "status unknown for quota"
"""Its words while a new ResourceQuota's controller has not counted yet: every create in the
namespace is refused until it has, usually within seconds (retried, not an end)."""
LABEL_KERNELS_ISOLATED = f"{GROUP}/kernels-isolated"
"""On a NetworkPolicy that isolates the namespace's kernels (the chart's): the operator then
gives each multi-kernel session a policy that lets its own kernels reach each other."""

KERNEL_CONTAINER = "kernel"  # the container of each kernel Pod

FINALIZER = f"{GROUP}/cleanup"
# Set by whoever deletes a KernelSession to say why (user-requested when absent).
ANNOTATION_TERMINATION_REASON = f"{GROUP}/termination-reason"

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


# Hex digits of the (owner, token) digest in a session's name: 96 bits, so finding a
# token whose name collides with someone else's is out of reach. Names are still
# never trusted alone: every lookup compares the stored owner and token (owns).
DIGEST_HEX = 24
SLUG_LENGTH = 20


def session_name(access_key: str, token: str) -> str:
    """The KernelSession's name for (owner access key, client session token).

    Deterministic, so two concurrent creates of one token collide at the API
    server and exactly one wins. The readable prefix is the lower-cased token;
    the digest of the exact pair keeps ``Abc`` and ``abc`` (or two owners) apart.
    The result is a DNS-1123 label of at most 45 characters, leaving room for
    Pod suffixes.
    """
    digest = hashlib.sha256(f"{access_key}\0{token}".encode()).hexdigest()[:DIGEST_HEX]
    slug = _NOT_DNS.sub("-", token.lower()).strip("-")[:SLUG_LENGTH].strip("-")
    return "-".join(part for part in (slug or "ks", digest) if part)


def owns(body: JsonDict, access_key: str, token: str) -> bool:
    """Whether the KernelSession ``body`` is (owner ``access_key``, token ``token``)'s:
    a name stands for an owner only once this says so."""
    spec = body.get("spec") or {}
    return (spec.get("owner") or {}).get("accessKey") == access_key and spec.get("sessionId") == token


def owner_uid(obj: JsonDict) -> str | None:
    """The uid of the KernelSession that owns ``obj`` (a Pod, Service or Secret), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(GROUP + "/"):
            uid: str | None = ref.get("uid")
            return uid
    return None


def label_value(value: str) -> str:
    """A label-safe rendering of a free-form value (access keys, group names)."""
    cleaned = _LABEL_VALUE_UNSAFE.sub("_", value)[:63].strip("_.-")
    return cleaned or "_"


# The KernelPool resource: warm kernels of one image and size (docs/pools.md).
POOL_KIND = "KernelPool"
POOL_PLURAL = "kernelpools"
POOL_SINGULAR = "kernelpool"
POOL_SHORT_NAMES = ["kp"]
LABEL_POOL = f"{GROUP}/pool"  # on a pool's unclaimed Pods: the pool's name
LABEL_POOL_TEMPLATE = f"{GROUP}/pool-template"  # the hash of the template a pool Pod was made from
LABEL_CLAIMED_FROM = f"{GROUP}/claimed-from"  # on a claimed Pod: the pool it came from
