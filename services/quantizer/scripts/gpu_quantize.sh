#!/usr/bin/env bash
# AWQ and GPTQ on a GPU machine: a quantization job on SmolLM2 (with a LoRA merged) makes both through llm-compressor
# in its own interpreter, measures and signs them, and vLLM serves each and answers
# (tests/integration/quantizer/test_gpu_quantize.py; it prints the figures). Needs a CUDA device; vllm importable by
# $MODELOPS_INFERENCE_VLLM_PYTHON (default the project's .venv python). Makes the compressor environment when
# $MODELOPS_QUANTIZER_COMPRESSOR_PYTHON is unset. Usage, from anywhere: services/quantizer/scripts/gpu_quantize.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-.venv/bin/python}
if [ -z "${MODELOPS_QUANTIZER_COMPRESSOR_PYTHON:-}" ]; then
  services/quantizer/scripts/compressor-env.sh .venv-compressor
  export MODELOPS_QUANTIZER_COMPRESSOR_PYTHON=$PWD/.venv-compressor/bin/python
fi
export MODELOPS_INFERENCE_VLLM_PYTHON=${MODELOPS_INFERENCE_VLLM_PYTHON:-$PY}
exec "$PY" -m pytest tests/integration/quantizer/test_gpu_quantize.py -q -x -rs -s "$@"
