"""Whether a listing works on *your* base model, checked on the verified files of both, not on names in a card:
the adapter's LoRA tensors against the base's weights (every target module present, in and out features equal —
which is where a different hidden size or layer count shows), the architecture, the tokenizer by the digest of its
vocabulary, the PEFT version, and what kind of model the base is. A live canary optionally runs the prompt through the
base with and without the adapter: the outputs must change, and stay finite."""

from __future__ import annotations

import hashlib
import json
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from modelops_contracts.marketplace import Check
from modelops_shared.artifacts import VerifiedArtifact
from packaging.version import InvalidVersion, Version
from peft import PeftModel
from safetensors import SafetensorError, safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from .cards import read_json

ADAPTER_PREFIX = "base_model.model."
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt")
UNQUANTIZED = ("base_model", "merged_model")


def checks(listed: VerifiedArtifact, base: VerifiedArtifact, trained_on: VerifiedArtifact | None) -> list[Check]:
    """Every check of `listed` on `base`; `trained_on` is the base the adapter was made from (None when unknown)."""
    if listed.kind == "quantized_model":
        return _quantized(listed, base)
    found = [
        Check(
            name="kind",
            ok=base.kind in UNQUANTIZED,
            detail=f"the base is a {base.kind}"
            + ("" if base.kind in UNQUANTIZED else ": an adapter applies to an unquantized model (base or merged)"),
        )
    ]
    base_config = read_json(base.path / "config.json")
    if trained_on is not None:
        found.append(_architecture(read_json(trained_on.path / "config.json"), base_config))
    found.append(_shapes(listed.path, base.path))
    expected = _vocabulary_digest(listed) or (_vocabulary_digest(trained_on) if trained_on is not None else None)
    found.append(_tokenizer(expected, base))
    found.append(_peft(read_json(listed.path / "adapter_config.json")))
    return found


def canary(listed: VerifiedArtifact, base: VerifiedArtifact, prompt: str) -> dict[str, Any]:
    """The prompt's next-token logits on the base, then with the adapter loaded: changed, and finite."""
    began = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        before = model(**inputs).logits[0, -1]
        adapted = PeftModel.from_pretrained(model, listed.path)
        after = adapted(**inputs).logits[0, -1]
    change = float((after - before).abs().max())
    return {
        "prompt": prompt,
        "max_logit_change": change,
        "changed": change > 1e-6,
        "finite": bool(torch.isfinite(after).all()),
        "seconds": round(time.monotonic() - began, 2),
    }


def canary_check(result: dict[str, Any]) -> Check:
    ok = result["changed"] and result["finite"]
    detail = f"largest logit change {result['max_logit_change']:.4g}" + ("" if result["finite"] else "; NaN or inf")
    return Check(name="canary", ok=ok, detail=detail + ("" if result["changed"] else "; the adapter changes nothing"))


def _quantized(listed: VerifiedArtifact, base: VerifiedArtifact) -> list[Check]:
    metadata = listed.record.get("metadata") or {}
    if metadata.get("role") == "lora":
        made_for = metadata.get("base_model")
        return [
            Check(
                name="base",
                ok=made_for == base.id,
                detail=f"a GGUF LoRA applies to the model it was exported against ({made_for}), not {base.id}",
            )
        ]
    return [Check(name="standalone", ok=True, detail=f"a {metadata.get('format', 'GGUF')} model is served on its own")]


def _architecture(trained: dict[str, Any] | None, base: dict[str, Any] | None) -> Check:
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    if trained is None or base is None:
        return Check(name="architecture", ok=False, detail="a config.json is missing")
    differ = [f"{key} {trained.get(key)} ≠ {base.get(key)}" for key in keys if trained.get(key) != base.get(key)]
    return Check(
        name="architecture",
        ok=not differ,
        detail="; ".join(differ)
        or f"{base.get('model_type')}, hidden {base.get('hidden_size')}, {base.get('num_hidden_layers')} layers",
    )


def _shapes(adapter: Path, base: Path) -> Check:
    """Each LoRA A (r × in) and B (out × r) against the base weight (out × in) of the module it adapts."""
    try:
        return _compared(adapter, base)
    except (OSError, SafetensorError) as error:
        return Check(name="modules_and_shapes", ok=False, detail=f"the weights could not be read: {error}")


def _compared(adapter: Path, base: Path) -> Check:
    weights = {}
    for file in sorted(base.glob("*.safetensors")):
        with safe_open(str(file), framework="numpy") as opened:
            weights.update({key: tuple(opened.get_slice(key).get_shape()) for key in opened.keys()})  # noqa: SIM118
    if not weights:
        return Check(name="modules_and_shapes", ok=False, detail="the base has no safetensors weights to compare")
    missing, mismatched, modules = set(), [], set()
    with safe_open(str(adapter / "adapter_model.safetensors"), framework="numpy") as opened:
        for key in opened.keys():  # noqa: SIM118 - a safe_open handle is not a mapping
            if ".lora_" not in key:
                continue
            module, _, which = key.removeprefix(ADAPTER_PREFIX).partition(".lora_")
            modules.add(module)
            target = weights.get(f"{module}.weight")
            shape = tuple(opened.get_slice(key).get_shape())
            if target is None:
                missing.add(module)
            elif which.startswith("A") and shape[1] != target[1]:
                mismatched.append(f"{module}: in {shape[1]} ≠ {target[1]}")
            elif which.startswith("B") and shape[0] != target[0]:
                mismatched.append(f"{module}: out {shape[0]} ≠ {target[0]}")
    problems = [f"{len(missing)} target modules missing, e.g. {sorted(missing)[0]}"] if missing else []
    problems += [f"{len(mismatched)} shapes differ, e.g. {mismatched[0]}"] if mismatched else []
    detail = "; ".join(problems) or f"all {len(modules)} adapted modules present with matching shapes"
    return Check(name="modules_and_shapes", ok=not problems, detail=detail)


def _vocabulary_digest(artifact: VerifiedArtifact) -> str | None:
    """sha256 of the vocabulary: tokenizer.json's model (vocab, merges) and added tokens in canonical JSON, so that
    a tokenizer saved again (other whitespace, other key order) still matches; else of the signed tokenizer files."""
    tokenizer = read_json(artifact.path / "tokenizer.json")
    if tokenizer is not None:
        vocabulary = {"model": tokenizer.get("model"), "added_tokens": tokenizer.get("added_tokens")}
        return hashlib.sha256(json.dumps(vocabulary, sort_keys=True).encode()).hexdigest()
    signed = {r["name"]: r["digest"] for r in artifact.statement["predicate"]["resources"]}
    parts = [f"{name}:{signed[name]}" for name in TOKENIZER_FILES if name in signed]
    return hashlib.sha256(";".join(parts).encode()).hexdigest() if parts else None


def _tokenizer(expected: str | None, base: VerifiedArtifact) -> Check:
    found = _vocabulary_digest(base)
    if expected is None:
        return Check(name="tokenizer", ok=True, detail="the adapter names no tokenizer; the base's is used")
    same = expected == found
    detail = f"the same vocabulary (sha256 {found[:12]}…)" if same and found else "the vocabularies differ"
    return Check(name="tokenizer", ok=same, detail=detail)


def _peft(config: dict[str, Any] | None) -> Check:
    if config is None:
        return Check(name="peft", ok=False, detail="no adapter_config.json")
    installed = version("peft")
    wanted = config.get("peft_version")
    try:
        newer = wanted is not None and Version(str(wanted).split("@")[0]) > Version(installed)
    except InvalidVersion:
        newer = False
    if config.get("peft_type") != "LORA":
        return Check(name="peft", ok=False, detail=f"{config.get('peft_type')} adapters are not served, LoRA is")
    detail = f"LoRA, written by PEFT {wanted or 'unknown'}, loadable by PEFT {installed}"
    return Check(
        name="peft", ok=not newer, detail=detail if not newer else f"written by PEFT {wanted}, newer than ours"
    )
