#!/usr/bin/env bash
# DeepSpeed ZeRO-2 and ZeRO-3 on a GPU machine: LoRA on SmolLM2 under plain DDP, ZeRO-2 and ZeRO-3 with every GPU
# (at most 2) as a rank, loss curves compared and the adapters loaded (tests/integration/trainer/test_gpu_distributed.py;
# it prints the figures). Needs a CUDA device and the project's .venv with a CUDA build of torch; installs deepspeed
# (modelops-trainer[deepspeed]) when missing. Usage, from anywhere: services/trainer/scripts/gpu_distributed.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-.venv/bin/python}
if ! "$PY" -c "import deepspeed" 2>/dev/null; then
  "$PY" -m pip install --quiet "deepspeed>=0.16"
fi
exec "$PY" -m pytest tests/integration/trainer/test_gpu_distributed.py -q -x -rs -s "$@"
