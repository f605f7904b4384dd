"""Who may see and act on which session (pure). docs/api.md, "Roles".

- a user: its own sessions only; another owner's session does not exist for it (404);
- a domain admin (``admin``): every session whose owner is in its domain;
- a superadmin: every session.
Naming another owner (``owner_access_key`` / ``ownerAccessKey``) is for admins:
a user naming anyone but itself gets 403, and so does a domain admin naming a
key outside its domain or a superadmin's key (it would borrow the superadmin's
role and limits), as in Backend.AI 19.09's ``get_access_key_scopes``.
"""

from __future__ import annotations

from collections.abc import Callable

from .keypairs import Keypair, Role
from .problems import Problem, ProblemType


def can_see(caller: Keypair, owner_access_key: str, owner_domain: str) -> bool:
    if caller.role == Role.SUPERADMIN:
        return True
    if caller.role == Role.ADMIN:
        return owner_domain == caller.domain
    return owner_access_key == caller.access_key


def acting_owner(caller: Keypair, requested: str | None, lookup: Callable[[str], Keypair | None]) -> Keypair:
    """The keypair a request acts for: the caller, or the owner an admin named."""
    if not requested or requested == caller.access_key:
        return caller
    if caller.role == Role.USER:
        raise Problem(ProblemType.FORBIDDEN, "owner_access_key is for domain admins and superadmins")
    owner = lookup(requested)
    if owner is None or not can_see(caller, owner.access_key, owner.domain):
        # An admin may learn that a key is outside its reach, not whether it exists.
        raise Problem(ProblemType.FORBIDDEN, "owner_access_key names no keypair this admin manages")
    if owner.role == Role.SUPERADMIN and caller.role != Role.SUPERADMIN:
        raise Problem(ProblemType.FORBIDDEN, "domain admins cannot act on behalf of superadmins")
    return owner


def check_forced(caller: Keypair, forced: bool) -> None:
    if forced and caller.role == Role.USER:
        raise Problem(ProblemType.FORBIDDEN, "forced=true is for domain admins and superadmins")


def check_group(caller: Keypair, owner: Keypair, group: str | None) -> str:
    """The session's group: the requested one if the owner belongs to it, else the owner's first group."""
    if not group:
        return owner.default_group
    if group in owner.groups or caller.role == Role.SUPERADMIN:
        return group
    # 400, as 19.09's manager answers ("Invalid group").
    raise Problem(
        ProblemType.INVALID_PARAMETERS, f"invalid group: the owner is not a member of group {group!r}"
    )


def check_domain(caller: Keypair, owner: Keypair, domain: str | None) -> str:
    if domain and domain != owner.domain:
        raise Problem(
            ProblemType.INVALID_PARAMETERS,
            f"invalid domain: you can only set the domain to the owner's domain, not {domain!r}",
        )
    return owner.domain
