#!/usr/bin/env bash
# The vLLM backend on a GPU machine: starts a real vLLM OpenAI server (--enable-lora, runtime LoRA updating) on the
# tiny base model, loads an adapter at runtime and compares greedy output with PEFT's, streaming included.
# Needs a CUDA device and vllm importable by $MODELOPS_INFERENCE_VLLM_PYTHON (default: the project's .venv python);
# vllm may live in a venv of its own. Usage, from anywhere: services/inference/scripts/gpu_vllm.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-.venv/bin/python}
export MODELOPS_INFERENCE_VLLM_PYTHON=${MODELOPS_INFERENCE_VLLM_PYTHON:-$PY}
"$MODELOPS_INFERENCE_VLLM_PYTHON" -c 'import torch, vllm
assert torch.cuda.is_available(), "no CUDA device"
print("vllm", vllm.__version__, "on", torch.cuda.get_device_name())'
exec "$PY" -m pytest tests/integration/inference/test_vllm_gpu.py -q -x -rs "$@"
