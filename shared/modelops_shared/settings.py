"""Runtime settings from `MODELOPS_*` environment variables: the same names embedded, in compose and in k8s."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("gateway", "registry", "trainer", "quantizer", "inference", "rag", "marketplace", "evaluator")


def _default_state_dir() -> Path:
    return Path.cwd() / ".modelops"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELOPS_", extra="ignore")

    service_name: str = Field("modelops", description="Name in logs, traces, metrics and `ce_source`")
    state_dir: Path = Field(default_factory=_default_state_dir, description="Embedded stack state (git-ignored)")
    log_level: str = "INFO"

    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT only on loopback (the embedded stack); SASL_SSL in production"
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = Field(None, description="CA bundle for the brokers' certificates; default: system")
    kafka_fetch_max_wait_ms: int = Field(
        50,
        ge=1,
        le=500,
        description="How long the broker may hold a consumer's fetch that found nothing. Tansu holds it that long"
        " even when a record arrives meanwhile (Apache Kafka answers at once): on the embedded stack, up to this much"
        " latency per hop",
    )
    kafka_session_timeout_ms: int = Field(6000, description="Short sessions make group joins fast on tansu")
    consumer_max_retries: int = Field(3, ge=0, description="Attempts after the first before a message is dead-lettered")
    consumer_batch_max: int = Field(
        200, ge=1, le=10_000, description="Most records of one poll handled in one transaction and one offset commit"
    )
    consumer_idle_poll_ms: int = Field(
        25, ge=1, le=1000, description="How long a consumer whose poll found nothing waits before polling again"
    )
    consumer_retry_backoff_s: float = Field(0.2, gt=0, description="First retry delay; doubles each attempt")
    consumer_outage_max_s: float = Field(
        900.0, gt=0, description="How long a message is delivered again through an outage before it is dead-lettered"
    )

    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5433/postgres")
    database_pool_max: int = 10
    database_connect_timeout_s: float = Field(10.0, gt=0, description="Opening one connection")
    database_acquire_timeout_s: float = Field(
        30.0, gt=0, description="Waiting for a free pooled connection: a drained pool fails its callers, not hangs them"
    )
    database_command_timeout_s: float = Field(
        60.0, gt=0, description="One SQL statement: a stuck query or lock fails instead of holding its caller forever"
    )

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6380/0")

    object_store_url: str = Field("", description="file:///abs/path or s3://bucket/prefix; default <state_dir>/objects")
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: SecretStr = SecretStr("minioadmin")
    s3_secret_key: SecretStr = SecretStr("minioadmin")
    s3_region: str = "us-east-1"
    s3_secure: bool = False

    registry_url: str = Field("http://127.0.0.1:8001", description="The registry's HTTP API (artifact lookups)")
    registry_trusted_keys_file: Path | None = Field(
        None,
        description="PEM file of the registry public keys that artifact signatures must verify with; unset = the keys"
        " the registry serves (then a compromised registry could serve its own)",
    )

    service_keys_dir: Path | None = Field(
        None,
        description="Public keys (<service>.pub.pem) of the services allowed to call this one; default"
        " <state_dir>/service-keys, where the embedded stack keeps every service's key pair",
    )
    service_key_file: Path | None = Field(
        None, description="This service's Ed25519 private key (PEM); default <service_keys_dir>/<service>.key.pem"
    )

    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces endpoint (logs go to …/v1/logs beside it); unset = no export"
    )
    trace_sample_ratio: float | None = Field(
        None, ge=0, le=1, description="Share of new traces recorded; default 1 with an OTLP endpoint, else 0"
    )

    gateway_port: int = 8000
    registry_port: int = 8001
    trainer_port: int = 8002
    quantizer_port: int = 8003
    inference_port: int = 8004
    rag_port: int = 8005
    marketplace_port: int = 8006
    evaluator_port: int = 8007
    http_host: str = "127.0.0.1"

    def port_of(self, service: str) -> int:
        port: int = getattr(self, f"{service}_port")
        return port

    @property
    def service_peers_path(self) -> Path:
        return self.service_keys_dir or self.state_dir / "service-keys"

    @property
    def service_key_path(self) -> Path:
        return self.service_key_file or self.service_peers_path / f"{self.service_name}.key.pem"

    @property
    def store_url(self) -> str:
        return self.object_store_url or (self.state_dir / "objects").resolve().as_uri()


@lru_cache
def get_settings() -> Settings:
    return Settings()
