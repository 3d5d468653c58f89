"""API keys as the gateway's rules see them: roles in increasing power, a key's record, how a secret is made and
found again (by its digest), the refusals of key management, and who may change what someone owns."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from modelops_shared.errors import Conflict, DomainError, NotFound

SECRET_PREFIX = "mok_"  # lets secret scanners and people recognise a leaked ModelOps key


class Role(StrEnum):
    """Roles in increasing power; each includes every role before it."""

    VIEWER = "viewer"
    DEVELOPER = "developer"
    APPROVER = "approver"
    ADMIN = "admin"

    def includes(self, required: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(required)


class KeyNotFound(NotFound):
    slug = "api-key-not-found"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key {key_id}")


class NameTaken(Conflict):
    """Another live key already has this name."""

    slug = "api-key-name-taken"

    def __init__(self, name: str) -> None:
        super().__init__(f"a live key is already named {name}")


class LastAdminKey(Conflict):
    """Revoking this key would leave nobody able to manage keys."""

    slug = "last-admin-key"

    def __init__(self) -> None:
        super().__init__("create another admin key before revoking this one")


class NotTheOwner(DomainError):
    status = 403
    slug = "not-the-owner"


def check_owner(name: str, role: Role, owner: str | None, thing: str) -> None:
    """A write to what someone owns (a dataset, a job, a deployment) is its owner's (by key name), or an admin's.
    Owned by nobody here (made before owners were kept, or by another way in): an admin's only."""
    if role is Role.ADMIN or (owner is not None and name == owner):
        return
    if owner is None:
        raise NotTheOwner(f"{thing} has no owner here: only an admin may change it")
    raise NotTheOwner(f"{thing} belongs to {owner}: only its owner or an admin may change it", owner=owner)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: Role
    rate_limit: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    # Plain sha256 rather than a password hash (bcrypt, argon2): the secret is 256 random bits, so a slow hash would
    # not make guessing any harder, while a deterministic digest lets each request find its key through an index.
    return hashlib.sha256(secret.encode()).hexdigest()
