"""Quantizer settings: the shared ones plus the consumer group, threads, scratch space and how quality is measured."""

from __future__ import annotations

import os
from pathlib import Path

from modelops_shared.settings import Settings
from pydantic import Field


class QuantizerSettings(Settings):
    service_name: str = "quantizer"
    quantizer_schema: str = Field("quantizer", description="Postgres schema: job outcomes and the outbox")
    quantizer_group: str = Field("quantizer", description="Consumer group every quantizer replica joins")
    quantizer_worker_id: str | None = Field(None, description="Name in QuantizationStarted; default <host>-<pid>")
    quantizer_work_dir: Path | None = Field(None, description="Scratch space; default <state_dir>/quantizer")
    quantizer_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="CPU threads for llama.cpp"
    )
    quantizer_max_job_attempts: int = Field(
        3, ge=1, description="Starts of one job (its worker died each time) before it is failed instead of retried"
    )
    quantizer_perplexity_context: int = Field(256, ge=32, description="Window of the perplexity measurement, tokens")
    quantizer_speed_tokens: int = Field(64, ge=8, description="Tokens decoded per speed measurement")
    quantizer_compressor_python: Path | None = Field(
        None,
        description="An interpreter with llm-compressor, for AWQ and GPTQ on a GPU worker (scripts/compressor-env.sh)",
    )

    @property
    def work_dir(self) -> Path:
        return self.quantizer_work_dir or self.state_dir / "quantizer"
