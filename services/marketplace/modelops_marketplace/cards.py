"""A listing's facts and card, read from its verified files and registry records: for an adapter, its LoRA config
and the card the trainer wrote (YAML header dropped, signed facts added); for a quantized model, its signed quality
figures."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from modelops_shared.artifacts import VerifiedArtifact

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def facts(artifact: VerifiedArtifact, base: dict[str, Any] | None) -> dict[str, Any]:
    """The listing's columns that come from the artifact itself."""
    metadata = artifact.record.get("metadata") or {}
    config = read_json(artifact.path / "adapter_config.json")
    return {
        "base_model": base["id"] if base else metadata.get("base_model"),
        "base_model_name": base["name"] if base else None,
        "base_digest": base["digest"] if base else None,
        "architecture": (base or {}).get("metadata", {}).get("architecture"),
        "rank": config["r"] if config and isinstance(config.get("r"), int) else None,
        "quantization": str(metadata["format"])
        if artifact.kind == "quantized_model" and metadata.get("format")
        else None,
        "metrics": artifact.record.get("metrics") or {},
        "card": card(artifact, base),
    }


def card(artifact: VerifiedArtifact, base: dict[str, Any] | None) -> str:
    """Markdown: the artifact's own card (README.md) when it has one, then what its signature vouches for."""
    readme = artifact.path / "README.md"
    body = _FRONT_MATTER.sub("", readme.read_text(errors="replace")).strip() if readme.is_file() else ""
    if not body:
        body = f"# {artifact.name}\n\nA {artifact.kind.replace('_', ' ')}" + (f" of `{base['name']}`." if base else ".")
    metrics = artifact.record.get("metrics") or {}
    rows = "\n".join(f"| {key} | {value:.6g} |" for key, value in sorted(metrics.items()) if _number(value))
    signed = (
        f"\n\n## Signed facts\n\n- artifact `{artifact.id}` ({artifact.kind}, version {artifact.version})\n"
        f"- statement digest `{artifact.digest}`, signed by key `{artifact.record.get('key_id')}`\n"
        + (f"- base model `{base['name']}` (`{base['id']}`)\n" if base else "")
    )
    table = f"\n## Metrics\n\n| metric | value |\n|---|---|\n{rows}\n" if rows else ""
    return body + signed + table


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when there is none (or it is not one)."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
