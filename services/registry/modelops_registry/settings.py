"""Registry settings: the shared ones plus where keys and the governance policy live."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

from modelops_shared.settings import Settings
from pydantic import Field

DEFAULT_POLICY = Path(str(files("modelops_registry") / "policy.yaml"))


class RegistrySettings(Settings):
    service_name: str = "registry"
    registry_schema: str = Field("registry", description="Postgres schema; also the consumer group's name")
    registry_checkpoint_every_s: float = Field(
        60.0, ge=0, description="How often the event log's signed head is written to the object store; 0: never"
    )
    registry_keys_dir: Path | None = Field(None, description="Signing keys (0700); default <state_dir>/registry/keys")
    registry_signing_algorithm: Literal["ed25519", "ecdsa-p256"] = "ed25519"
    registry_policy_file: Path = DEFAULT_POLICY

    @property
    def keys_dir(self) -> Path:
        return self.registry_keys_dir or self.state_dir / "registry" / "keys"
