"""Gateway settings: the shared ones (`registry_url` among them) plus its schema, rate limits and upload limits."""

from __future__ import annotations

from pathlib import Path

from limits import parse
from modelops_shared.settings import Settings
from pydantic import Field, field_validator


def checked_rate_limit(value: str) -> str:
    """`value` if the `limits` library reads it as one rate of at least one request ("5/minute", "100 per hour");
    ValueError otherwise."""
    if parse(value).amount < 1:
        raise ValueError(f"rate limit {value!r} allows no request at all")
    return value


class GatewaySettings(Settings):
    service_name: str = "gateway"
    gateway_schema: str = Field("gateway", description="Postgres schema of API keys and idempotency records")
    registry_timeout_s: float = Field(30.0, gt=0, description="Per-request timeout of calls to the registry")
    gateway_default_rate_limit: str = Field("120/minute", description="Requests per API key without its own limit")
    gateway_max_upload_bytes: int = Field(5 * 1024**3, gt=0, description="Largest artifact upload (the whole body)")
    gateway_max_upload_files: int = Field(1000, gt=0, description="Most files in one artifact upload")
    gateway_idempotency_ttl_s: int = Field(24 * 3600, gt=0, description="How long an Idempotency-Key is remembered")

    @field_validator("gateway_default_rate_limit")
    @classmethod
    def _known_rate(cls, value: str) -> str:
        return checked_rate_limit(value)

    @property
    def admin_key_file(self) -> Path:
        """Where the first admin key is written (0600); `make up` shows it once (modelops_shared.devstack.admin)."""
        return self.state_dir / "admin.key"
