"""The files that describe an adapter (or a router) beside its weights: the training arguments, the metrics, and a
model card whose YAML header carries the Hugging Face metadata (base model, `base_model_relation: adapter`,
datasets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from modelops_contracts import StartTraining

from .capabilities import Capabilities


def write_card(
    directory: Path,
    *,
    name: str,
    spec: StartTraining,
    base: dict[str, Any],
    dataset: dict[str, Any],
    metrics: dict[str, float],
    capabilities: Capabilities,
) -> None:
    arguments = {
        "job_id": spec.job_id,
        "method": spec.method,
        "quantization": spec.quantization,
        "adapter": spec.adapter.model_dump(mode="json"),
        "hyperparameters": spec.hyperparameters.model_dump(mode="json"),
        "eval_split": spec.eval_split,
        "plugins": spec.plugins.model_dump(mode="json") if spec.plugins else None,
        "base_model": {"id": base["id"], "name": base["name"], "version": base["version"], "digest": base["digest"]},
        "dataset": {"id": dataset["id"], "name": dataset["name"], "version": dataset["version"]},
        "hardware": capabilities.describe(),
    }
    _write_facts(directory, arguments, metrics)
    header = {
        "base_model": base["name"],
        "base_model_relation": "adapter",
        "library_name": "peft",
        "datasets": [dataset["name"]],
        "tags": ["modelops", "lora", *(["qlora"] if spec.quantization == "nf4" else []), spec.method],
    }
    rows = "\n".join(f"| {key} | {value:.6g} |" for key, value in sorted(metrics.items()))
    (directory / "README.md").write_text(
        f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n\n"
        f"# {name}\n\n"
        f"A LoRA adapter ({spec.method}{', QLoRA nf4' if spec.quantization == 'nf4' else ''}) of base model "
        f"`{base['name']}` version {base['version']} (`{base['id']}`), trained on dataset `{dataset['name']}` "
        f"version {dataset['version']} by ModelOps job `{spec.job_id}` for {spec.submitted_by}.\n\n"
        "Load it with `PeftModel.from_pretrained(base_model, this_directory)`; the tokenizer files are included.\n\n"
        f"## Evaluation (held-out split)\n\n| metric | value |\n|---|---|\n{rows}\n"
    )


def write_router_card(
    directory: Path,
    *,
    name: str,
    spec: StartTraining,
    embedder: dict[str, Any],
    dataset: dict[str, Any],
    metrics: dict[str, float],
) -> None:
    arguments = {
        "job_id": spec.job_id,
        "method": spec.method,
        "router": (spec.router.model_dump(mode="json") if spec.router else None),
        "hyperparameters": spec.hyperparameters.model_dump(mode="json"),
        "eval_split": spec.eval_split,
        "embedding_model": {"id": embedder["id"], "name": embedder["name"], "digest": embedder["digest"]},
        "dataset": {"id": dataset["id"], "name": dataset["name"], "version": dataset["version"]},
    }
    _write_facts(directory, arguments, metrics)
    header = {"library_name": "snntorch", "datasets": [dataset["name"]], "tags": ["modelops", "router", "snn"]}
    rows = "\n".join(f"| {key} | {value:.6g} |" for key, value in sorted(metrics.items()))
    (directory / "README.md").write_text(
        f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n\n"
        f"# {name}\n\n"
        "A spiking router (snnTorch leaky integrate-and-fire neurons) that picks which target answers a prompt, over "
        f"the sentence embeddings of `{embedder['name']}` (`{embedder['id']}`); trained on dataset "
        f"`{dataset['name']}` version {dataset['version']} by ModelOps job `{spec.job_id}` for {spec.submitted_by}.\n\n"
        "`router.json` holds its configuration and targets, `router.safetensors` its weights: load both with "
        "`modelops_shared.snn_router.load(this_directory)`.\n\n"
        f"## Evaluation (held-out split)\n\n| metric | value |\n|---|---|\n{rows}\n"
    )


def _write_facts(directory: Path, arguments: dict[str, Any], metrics: dict[str, float]) -> None:
    (directory / "training_args.json").write_text(json.dumps(arguments, indent=2, sort_keys=True) + "\n")
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
