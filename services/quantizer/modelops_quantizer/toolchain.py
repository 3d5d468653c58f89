"""llama.cpp's own tools, at the version of the installed `llama-cpp-python`: its converters (Hugging Face model or
PEFT adapter → GGUF) run as scripts, and its quantizer called through the binding.

The converters are Python scripts in llama.cpp's source tree, not in any wheel. `install_converters` takes them from
the `llama-cpp-python` sdist of the installed version (pip's cache holds it after the first download), so converter
and library always come from the same llama.cpp commit."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

from modelops_contracts import QuantizationFormat

DISTRIBUTION = "llama-cpp-python"
# What the converters need from the source tree: the two scripts, their model classes, and gguf-py at the same commit.
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion", "gguf-py")
CONVERT_TIMEOUT_S = 3600
PIP_DOWNLOAD = (sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet")
# llama.cpp's file types (llama_ftype) for the formats made by llama_model_quantize from an F16 GGUF.
QUANTIZED_FTYPES = {
    QuantizationFormat.Q8_0: "LLAMA_FTYPE_MOSTLY_Q8_0",
    QuantizationFormat.Q5_K_M: "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    QuantizationFormat.Q4_K_M: "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    QuantizationFormat.Q4_0: "LLAMA_FTYPE_MOSTLY_Q4_0",
}


class ToolchainError(RuntimeError):
    """A llama.cpp tool failed; the message holds the end of its output."""


def llama_cpp_version() -> str:
    return version(DISTRIBUTION)


def converters_dir() -> Path:
    """Where `install_converters` puts the converters of the installed version (inside the environment)."""
    return Path(sys.prefix) / "share" / "llama.cpp" / llama_cpp_version()


def install_converters() -> Path:
    """Unpack the converters of the installed llama-cpp-python from its sdist, once per version."""
    target = converters_dir()
    if (target / CONVERTER_PARTS[0]).is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="llama-cpp-sdist-") as scratch:
        subprocess.run(
            [*PIP_DOWNLOAD, "--dest", scratch, f"{DISTRIBUTION}=={llama_cpp_version()}"],
            check=True,
        )
        (sdist,) = Path(scratch).glob("*.tar.gz")
        staging = Path(scratch) / "converters"
        with tarfile.open(sdist) as archive:
            root = archive.getnames()[0].split("/")[0] + "/vendor/llama.cpp/"
            members = [m for m in archive.getmembers() if m.name.startswith(root) and _wanted(m.name[len(root) :])]
            for member in members:
                member.name = member.name[len(root) :]
            archive.extractall(staging, members=members, filter="data")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(staging, target)
    return target


def _wanted(path: str) -> bool:
    return any(path == part or path.startswith(part + "/") for part in CONVERTER_PARTS)


def convert_model(model_dir: Path, output: Path) -> None:
    """A Hugging Face model directory → an F16 GGUF, by llama.cpp's convert_hf_to_gguf.py."""
    _run_converter("convert_hf_to_gguf.py", str(model_dir), "--outtype", "f16", "--outfile", str(output))


def convert_lora(adapter_dir: Path, base_dir: Path, output: Path) -> None:
    """A PEFT LoRA adapter → a GGUF LoRA (F16) for that base, by llama.cpp's convert_lora_to_gguf.py."""
    _run_converter(
        "convert_lora_to_gguf.py",
        str(adapter_dir),
        "--base",
        str(base_dir),
        "--outtype",
        "f16",
        "--outfile",
        str(output),
    )


def _run_converter(script: str, *args: str) -> None:
    path = converters_dir() / script
    if not path.is_file():
        raise ToolchainError(f"llama.cpp's {script} is not installed: run `python -m modelops_quantizer install-tools`")
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("NO_LOCAL_GGUF", None)  # the converter must use the gguf-py of its own commit
    done = subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=CONVERT_TIMEOUT_S,
        env=environment,
        check=False,
    )
    if done.returncode != 0:
        raise ToolchainError(f"{script} failed ({done.returncode}): {done.stderr[-2000:]}")


def quantize(source: Path, output: Path, fmt: QuantizationFormat, threads: int) -> None:
    """An F16 GGUF → `fmt`, by llama.cpp's own quantizer (llama_model_quantize), K-quants included."""
    import llama_cpp  # loads the shared library: only where quantizing happens

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTIZED_FTYPES[fmt])
    params.nthread = threads
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(output).encode(), ctypes.byref(params))
    if status != 0:
        raise ToolchainError(f"llama_model_quantize to {fmt} failed ({status})")
