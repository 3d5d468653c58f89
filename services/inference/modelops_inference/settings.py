"""Inference settings: the shared ones plus the consumer groups, device, adapter budget and back-pressure bounds."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from modelops_shared.settings import Settings
from pydantic import Field


class InferenceSettings(Settings):
    service_name: str = "inference"
    inference_schema: str = Field("inference", description="Postgres schema: deployments, consumer tracking, outbox")
    inference_group: str = Field("inference", description="Consumer group prefix of every inference replica")
    inference_replica: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="This replica's name (default: the host name, a pod's name in k8s): its own consumer groups, so"
        " that every replica obeys every deployment command and revocation, and the replica field of its answers",
    )
    inference_work_dir: Path | None = Field(None, description="Verified artifact cache; default <state_dir>/inference")
    inference_device: str = Field("auto", description="cpu, cuda, cuda:N, or auto (cuda when available)")
    inference_max_adapters: int = Field(8, ge=1, description="Adapters kept loaded per base model (LRU beyond)")
    inference_max_batch: int = Field(16, ge=1, description="Sequences decoded together per base model")
    inference_max_queue: int = Field(64, ge=1, description="Requests waiting per base model before 429s")
    inference_max_tokens: int = Field(512, ge=1, description="Largest max_tokens a request may ask for")
    inference_retry_after_s: int = Field(1, ge=1, description="Retry-After of a 429 when the queue is full")
    inference_backend: Literal["auto", "transformers", "vllm"] = Field(
        "auto",
        description="Engine per base model; auto is vllm when vllm is importable and a GPU is present. A GGUF"
        " (quantized_model) is always served by llama.cpp",
    )
    inference_gguf_context: int = Field(4096, ge=64, description="llama.cpp context length of a GGUF model, tokens")
    inference_gguf_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="llama.cpp threads per GGUF model; default every core (llama-cpp-python's own default is half)",
    )
    inference_artifact_wait_s: float = Field(
        60.0, ge=0, description="How long a Deploy waits for the registry to register (and sign) an adapter it names"
    )
    inference_revocation_check_s: float = Field(
        30.0, ge=0, description="How often served artifacts are re-checked with the registry for revocation; 0: never"
    )
    inference_idle_unload_s: float = Field(
        0.0,
        ge=0,
        description="Unload a base model no request has used for this long; its deployments stay ready and load it"
        " again on their next request (a cold start). 0: never",
    )
    inference_usage_every_s: float = Field(
        60.0, ge=0, description="How often each deployment's use is reported (usage.events.v1); 0: never"
    )
    inference_restore: bool = Field(True, description="On start, re-deploy what the registry says is still wanted")
    inference_restore_retry_s: float = Field(2.0, gt=0, description="Pause between tries to reach the registry")
    inference_vllm_python: str = Field("", description="Python that runs the vLLM server; default this interpreter")
    inference_vllm_max_lora_rank: int = Field(64, ge=1, description="vLLM --max-lora-rank: the largest adapter rank")
    inference_vllm_args: str = Field("", description="Extra vLLM server arguments (shell words)")
    inference_vllm_start_timeout_s: float = Field(900, gt=0, description="How long a vLLM server may take to start")

    def group(self, purpose: str) -> str:
        """This replica's consumer group for `purpose` (commands, artifacts)."""
        return f"{self.inference_group}-{self.inference_replica}-{purpose}"

    @property
    def work_dir(self) -> Path:
        return self.inference_work_dir or self.state_dir / "inference"
