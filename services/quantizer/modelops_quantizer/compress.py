"""AWQ and GPTQ (4-bit weights, 16-bit activations) through llm-compressor, run as a script by the compressor's own
interpreter (`MODELOPS_QUANTIZER_COMPRESSOR_PYTHON`), never imported: llm-compressor pins transformers and torch to
ranges of its own, so it lives in an environment of its own, and this file imports nothing of ModelOps.

    python compress.py MODEL_DIR OUTPUT_DIR --method gptq|awq --calibration FILE --heldout FILE [--device cuda]

Writes the compressed checkpoint (compressed-tensors safetensors with its tokenizer: what vLLM and transformers load)
to OUTPUT_DIR, then prints one JSON line of what it measured: perplexity on the held-out text of the model before and
after (transformers, the same windows as llama-perplexity: each scores its second half), sizes, and greedy tokens/s.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from datasets import Dataset
from llmcompressor import oneshot
from llmcompressor.modifiers.gptq import GPTQModifier
from llmcompressor.modifiers.quantization import QuantizationModifier
from llmcompressor.modifiers.transform.awq import AWQModifier
from transformers import AutoModelForCausalLM, AutoTokenizer

METHODS = ("awq", "gptq")
WINDOW = 256
SPEED_TOKENS = 64


def group_size(model: Any) -> int:
    """The largest of 128, 64, 32, 16 that divides every quantized layer's input width (SmolLM2-135M's is 576, which 128
    does not divide: compressed-tensors cannot pack a partial group)."""
    widths = {
        m.in_features for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and name != "lm_head"
    }
    return next(size for size in (128, 64, 32, 16) if all(width % size == 0 for width in widths))


def recipe(method: str, group: int) -> list[object]:
    """GPTQ: second-order weight rounding, symmetric. AWQ: activation-aware channel scales, then the same 4-bit
    quantization, asymmetric (llm-compressor's AWQ is a transform followed by a quantization modifier). Groups of
    `group` input columns share a scale; lm_head stays 16-bit."""
    weights = QuantizationArgs(num_bits=4, type="int", symmetric=method == "gptq", strategy="group", group_size=group)
    quantize = {
        "config_groups": {"group_0": QuantizationScheme(targets=["Linear"], weights=weights)},
        "ignore": ["lm_head"],
    }
    if method == "gptq":
        return [GPTQModifier(**quantize)]
    return [AWQModifier(duo_scaling="both"), QuantizationModifier(**quantize)]


def calibration(tokenizer: Any, text: str, samples: int, length: int) -> Dataset:
    """Windows of the calibration text, as token ids: llm-compressor's oneshot takes a tokenized dataset."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    step = max((len(ids) - length) // max(samples - 1, 1), 1)
    windows = [ids[start : start + length] for start in range(0, max(len(ids) - length, 1), step)][:samples]
    return Dataset.from_dict({"input_ids": windows, "attention_mask": [[1] * len(w) for w in windows]})


def perplexity(model: Any, tokenizer: Any, text: str, device: str) -> tuple[float, int]:
    """llama-perplexity's method: windows of WINDOW tokens starting with BOS, each scoring its second half."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = getattr(tokenizer, "bos_token_id", None)
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids) - WINDOW + 1, WINDOW):
            window = ids[start : start + WINDOW]
            if bos is not None:
                window = [bos, *window[1:]]
            logits = model(torch.tensor([window], device=device)).logits[0].float()
            logprobs = torch.log_softmax(logits[:-1], dim=-1)
            targets = torch.tensor(window[1:], device=device)
            scored = logprobs.gather(1, targets.unsqueeze(1)).squeeze(1)[WINDOW // 2 - 1 :]
            total -= float(scored.sum())
            count += scored.numel()
    return math.exp(total / count), count


def tokens_per_second(model: Any, tokenizer: Any, device: str) -> float:
    prompt = tokenizer("The history of the printing press begins", return_tensors="pt").to(device)
    with torch.inference_mode():
        model.generate(**prompt, max_new_tokens=4, do_sample=False)  # warm up
        started = time.perf_counter()
        out = model.generate(**prompt, max_new_tokens=SPEED_TOKENS, min_new_tokens=SPEED_TOKENS, do_sample=False)
    return float(out.shape[1] - prompt["input_ids"].shape[1]) / (time.perf_counter() - started)


def size_of(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--length", type=int, default=256)
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    heldout = args.heldout.read_text()

    original = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(args.device).eval()
    parameters = sum(p.numel() for p in original.parameters())
    group = group_size(original)
    reference, scored_tokens = perplexity(original, tokenizer, heldout, args.device)
    reference_speed = tokens_per_second(original, tokenizer, args.device)
    oneshot(
        model=original,
        tokenizer=tokenizer,
        dataset=calibration(tokenizer, args.calibration.read_text(), args.samples, args.length),
        recipe=recipe(args.method, group),
        max_seq_length=args.length,
        num_calibration_samples=args.samples,
    )
    original.save_pretrained(args.output, save_compressed=True)
    tokenizer.save_pretrained(args.output)
    del original

    compressed = AutoModelForCausalLM.from_pretrained(args.output, dtype=dtype).to(args.device).eval()
    quantized, _ = perplexity(compressed, tokenizer, heldout, args.device)
    print(
        json.dumps(
            {
                "perplexity": quantized,
                "perplexity_reference": reference,
                "perplexity_change": quantized / reference - 1.0,
                "perplexity_tokens": float(scored_tokens),
                "size_bytes": float(size_of(args.output)),
                "size_ratio_f16": size_of(args.output) / (2 * parameters),
                "parameters": float(parameters),
                "tokens_per_second": tokens_per_second(compressed, tokenizer, args.device),
                "tokens_per_second_f16": reference_speed,
                "group_size": float(group),
            }
        )
    )


if __name__ == "__main__":
    main()
