"""Gateway settings: the shared ones (`registry_url` among them) plus its schema, rate limits, upload limits,
dataset limits, job streams and the inference service."""

from __future__ import annotations

from pathlib import Path

from limits import parse
from modelops_shared.settings import Settings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


def checked_rate_limit(value: str) -> str:
    """`value` if the `limits` library reads it as one rate of at least one request ("5/minute", "100 per hour");
    ValueError otherwise."""
    if parse(value).amount < 1:
        raise ValueError(f"rate limit {value!r} allows no request at all")
    return value


class Prices(BaseModel):
    """What a unit of each resource costs (`MODELOPS_GATEWAY_PRICES`, JSON): usage is priced when it is recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    cpu_second: float = Field(0.00002, ge=0, description="One core busy for a second (≈ 0.07 an hour)")
    gpu_second: float = Field(0.0008, ge=0, description="One GPU held for a second (≈ 2.88 an hour)")
    memory_gib_hour: float = Field(0.005, ge=0, description="A GiB of peak resident memory held for an hour")
    million_tokens: float = Field(0.0, ge=0, description="Per million tokens processed, on top of the time")


class GatewaySettings(Settings):
    service_name: str = "gateway"
    gateway_schema: str = Field("gateway", description="Postgres schema of API keys and idempotency records")
    registry_timeout_s: float = Field(30.0, gt=0, description="Per-request timeout of calls to the registry")
    gateway_default_rate_limit: str = Field("120/minute", description="Requests per API key without its own limit")
    gateway_max_upload_bytes: int = Field(5 * 1024**3, gt=0, description="Largest artifact upload (the whole body)")
    gateway_max_upload_files: int = Field(1000, gt=0, description="Most files in one artifact upload")
    gateway_idempotency_ttl_s: int = Field(24 * 3600, gt=0, description="How long an Idempotency-Key is remembered")
    # Valid rows are held in memory as Arrow until their Delta commit, so datasets get a tighter limit than artifacts.
    gateway_max_dataset_bytes: int = Field(512 * 1024**2, gt=0, description="Largest dataset or file upload")
    gateway_max_training_steps: int = Field(100_000, gt=0, description="Most max_steps a training job may ask for")
    gateway_max_training_epochs: float = Field(100.0, gt=0, description="Most epochs a training job may ask for")
    gateway_prices: Prices = Prices()
    gateway_default_cost_per_million_training_tokens: float = Field(
        0.02,
        ge=0,
        description="What a budget check assumes a training token costs until training jobs have been measured",
    )
    gateway_max_training_ranks: int = Field(
        8, gt=0, description="Most processes (workers × devices_per_worker) a training job may train with"
    )
    gateway_query_concurrency: int = Field(2, gt=0, description="Dataset queries run at once; the others wait")
    gateway_query_max_bytes: int = Field(16 * 1024**2, gt=0, description="Largest dataset query result (Arrow bytes)")
    gateway_query_max_rows: int = Field(1000, gt=0, description="Most rows a dataset query returns")
    gateway_query_timeout_s: float = Field(10.0, gt=0, description="Longest a dataset query may run")
    gateway_dataset_reconcile_interval_s: float = Field(
        60.0, gt=0, description="How often dataset versions that were committed but never announced are looked for"
    )
    gateway_stream_ping_s: float = Field(15.0, gt=0, description="Keep-alive comment interval of job event streams")
    gateway_stream_recheck_s: float = Field(
        5.0, gt=0, description="How often a job stream re-reads its job without a commit notification (a safety net)"
    )
    gateway_registry_cache_s: float = Field(
        2.0, ge=0, description="How long a job submission may reuse the registry's listing of a base model or dataset"
    )
    gateway_registry_wait_s: float = Field(
        10.0,
        ge=0,
        description="How long a job submission waits for the registry to record a dataset version just announced",
    )
    gateway_deploy_fine_tuned: bool = Field(
        True,
        description="Deploy the adapter of each job created through the OpenAI fine-tuning API once it succeeds,"
        " so that its ft: model answers (a job created while this is on)",
    )

    inference_url: str = Field("http://127.0.0.1:8004", description="The inference service's HTTP API")
    inference_timeout_s: float = Field(
        300.0, gt=0, description="Longest wait for a byte of an inference answer (a completion's next token)"
    )

    rag_url: str = Field("http://127.0.0.1:8005", description="The rag service's HTTP API")
    rag_timeout_s: float = Field(
        300.0, gt=0, description="Longest wait for the rag service (an answer waits for its deployment)"
    )
    marketplace_url: str = Field("http://127.0.0.1:8006", description="The marketplace's HTTP API")
    marketplace_timeout_s: float = Field(
        300.0, gt=0, description="Longest wait for the marketplace (a live compatibility canary loads a model)"
    )
    gateway_max_document_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="Largest document uploaded to a RAG collection"
    )
    console_kafka_username: str | None = Field(
        None,
        description="The console's own Kafka user (reads every topic, replays dead letters); the gateway's when unset",
    )
    console_kafka_password: SecretStr | None = Field(None, description="That user's password")
    console_message_retention_s: int = Field(
        7 * 24 * 3600, gt=0, description="How long the console's index of message headers keeps a message"
    )
    console_jaeger_url: str | None = Field(
        None, description="Jaeger's UI (e.g. http://127.0.0.1:16686): the console links each trace id to it"
    )

    @field_validator("gateway_default_rate_limit")
    @classmethod
    def _known_rate(cls, value: str) -> str:
        return checked_rate_limit(value)

    def as_console(self) -> Settings:
        """These settings with the console's Kafka user (when one is set): how the console reads topics and
        replays dead letters."""
        if self.console_kafka_username is None:
            return self
        return self.model_copy(
            update={
                "kafka_sasl_username": self.console_kafka_username,
                "kafka_sasl_password": self.console_kafka_password,
            }
        )

    @property
    def admin_key_file(self) -> Path:
        """Where the first admin key is written (0600); `make up` shows it once (modelops_shared.devstack.admin)."""
        return self.state_dir / "admin.key"
