"""AWQ and GPTQ by llm-compressor: `compress.py` run by the compressor's own interpreter (llm-compressor pins
transformers and torch to ranges of its own), on a CUDA GPU, and its measurements read back."""

from __future__ import annotations

import json
import subprocess
from importlib.resources import as_file, files
from pathlib import Path

import torch
from modelops_contracts import QuantizationFormat

from .domain import ConversionFailed, NeedsGpu
from .settings import QuantizerSettings

METHODS = {QuantizationFormat.AWQ_W4A16: "awq", QuantizationFormat.GPTQ_W4A16: "gptq"}
OUTPUT_TAIL = 4000
PERPLEXITY_WINDOW = 256  # compress.py's WINDOW


def check_available(settings: QuantizerSettings, formats: list[QuantizationFormat]) -> None:
    """NeedsGpu, before anything is fetched, when this worker cannot make `formats`: no CUDA GPU, or no compressor
    interpreter."""
    named = ", ".join(formats)
    if not torch.cuda.is_available():
        raise NeedsGpu(
            f"{named} needs a CUDA GPU, and this quantizer worker has none: run a GPU quantizer worker for them"
            " (services/quantizer/README.md, 'AWQ and GPTQ'); GGUF formats run on any worker"
        )
    if settings.quantizer_compressor_python is None:
        raise NeedsGpu(
            f"{named} needs llm-compressor: set MODELOPS_QUANTIZER_COMPRESSOR_PYTHON to an interpreter that has it"
            " (services/quantizer/scripts/compressor-env.sh makes one)"
        )


def compress(
    settings: QuantizerSettings, model_dir: Path, output: Path, fmt: QuantizationFormat, heldout: Path
) -> dict[str, float]:
    """Write `fmt` of the model at `model_dir` to `output` and return what the script measured (worker thread)."""
    assert settings.quantizer_compressor_python is not None  # check_available ran first
    package = files("modelops_quantizer")
    with as_file(package / "compress.py") as script, as_file(package / "calibration.txt") as calibration:
        command = [
            str(settings.quantizer_compressor_python),
            str(script),
            *(str(model_dir), str(output), "--method", METHODS[fmt]),
            *("--calibration", str(calibration), "--heldout", str(heldout), "--device", "cuda"),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConversionFailed(f"llm-compressor could not make {fmt}: {(done.stdout + done.stderr)[-OUTPUT_TAIL:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: float(value) for name, value in measured.items() if isinstance(value, int | float)}
