"""What this machine offers the trainer, detected rather than configured: device, bf16 and the attention kernel."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Capabilities:
    device: str
    gpus: int
    bf16: bool
    attention: str

    def describe(self) -> dict[str, str | int | bool]:
        return {"device": self.device, "gpus": self.gpus, "bf16": self.bf16, "attention": self.attention}


def detect() -> Capabilities:
    """SDPA everywhere (PyTorch's fused kernels, flash ones included on GPU); flash-attention 2 when its package is
    installed and the GPU does bf16, which it requires."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    bf16 = gpus > 0 and torch.cuda.is_bf16_supported()
    flash = bf16 and importlib.util.find_spec("flash_attn") is not None
    return Capabilities(
        device="cuda" if gpus else "cpu", gpus=gpus, bf16=bf16, attention="flash_attention_2" if flash else "sdpa"
    )
