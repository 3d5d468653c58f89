"""An adapter merged into its base (PEFT's merge_and_unload), written as a Hugging Face directory that llama.cpp's
converter reads: safetensors weights, config, tokenizer and chat template."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from peft import PeftModel
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer


def merge_adapter(base_dir: Path, adapter_dir: Path, output: Path) -> Path:
    """`base + adapter` with the LoRA deltas folded into the weights, in fp32 (a QLoRA adapter is merged into the
    unquantized base, as PEFT recommends)."""
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    merged.save_pretrained(output, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(output)
    return output


def parameter_count(model_dir: Path) -> int:
    """Parameters of a Hugging Face model directory, from its safetensors headers (no weights loaded)."""
    total = 0
    for shard in model_dir.glob("*.safetensors"):
        with safe_open(str(shard), framework="pt") as weights:
            total += sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())  # noqa: SIM118
    return total
