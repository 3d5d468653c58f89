#!/usr/bin/env bash
# An interpreter for AWQ and GPTQ: llm-compressor pins transformers (<= 5.17) and torch to ranges of its own, below
# the project's, so it gets a virtual environment of its own, and the quantizer runs compress.py with it. On a GPU
# machine, install the CUDA torch build first (or let pip pick it), then this:
#   services/quantizer/scripts/compressor-env.sh [DIR]            # default .venv-compressor
#   export MODELOPS_QUANTIZER_COMPRESSOR_PYTHON=$PWD/.venv-compressor/bin/python
# The versions are the ones tested with this project's compress.py.
set -euo pipefail
cd "$(dirname "$0")/../../.."
DIR=${1:-.venv-compressor}
${PYTHON:-python3} -m venv "$DIR"
"$DIR/bin/pip" install --disable-pip-version-check -q "llmcompressor==0.14.0.1" "compressed-tensors==0.19.0" \
  "transformers==5.17.0" "torch>=2.10,<=2.14" datasets accelerate
"$DIR/bin/python" -c 'import llmcompressor, torch, transformers
print("llm-compressor", llmcompressor.__version__, "· transformers", transformers.__version__,
      "· torch", torch.__version__, "· CUDA", torch.cuda.is_available())'
echo "export MODELOPS_QUANTIZER_COMPRESSOR_PYTHON=$PWD/$DIR/bin/python"
