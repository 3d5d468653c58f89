"""The bodies of the API key routes; a secret appears in a creation's answer only."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from ..settings import checked_rate_limit
from .domain import ApiKey, Role

# One rate as the `limits` library writes it: a count, `/` or `per`, an optional multiple, a unit.
RATE_PATTERN = r"^[1-9][0-9]* *(/|per) *([0-9]+ *)?(second|minute|hour|day|month|year)s?$"


class ApiKeyRequest(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$",
        description="Who holds the key; the registry records it as submitter and approver",
    )
    role: Role
    rate_limit: str | None = Field(
        None,
        pattern=RATE_PATTERN,
        description="Own limit in `limits` notation, e.g. 5/minute or 100 per hour; default: the gateway's",
    )

    @field_validator("rate_limit")
    @classmethod
    def _known_rate(cls, value: str | None) -> str | None:
        return None if value is None else checked_rate_limit(value)


class ApiKeyView(BaseModel):
    id: str
    name: str
    role: Role
    rate_limit: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyView:
        return cls(**asdict(key))


class Identity(BaseModel):
    """Who a key is: what the console shows once signed in, and which of its actions the role allows."""

    key_id: str
    name: str
    role: Role


class CreatedApiKey(ApiKeyView):
    key: str | None = Field(description="The secret, shown in this response only (null in an idempotent replay)")
