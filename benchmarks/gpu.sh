#!/usr/bin/env bash
# The generative engine on a CUDA machine, in one go (about 3-6 minutes on one H100/H200-class
# GPU; needs ~40 GiB of GPU memory): random-initialised LLaVA-1.5-7B and Qwen2-VL-7B shapes in
# bfloat16, mmia's pipeline vs the full-logits pipeline vs a raw batched forward vs a per-sample
# loop; tokens/s, peak GPU memory and their ratios (benchmarks/gpu_engine.py). Nothing downloads.
#
#   benchmarks/gpu.sh                      # both shapes, defaults
#   benchmarks/gpu.sh --max-batch-tokens 32768 --rows 256
#   PYTHON=/path/to/python benchmarks/gpu.sh
#
# The figures also go to gpu_engine.log (GPU_LOG=... to choose). Without a GPU, the CPU smoke
# run proves the script: .venv/bin/python benchmarks/gpu_engine.py --small
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
"$PY" - <<'PYEOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"no CUDA device for torch {torch.__version__}: run benchmarks/gpu_engine.py --small on CPU instead")
PYEOF
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
"$PY" benchmarks/gpu_engine.py --device cuda "$@" 2>&1 | tee "${GPU_LOG:-gpu_engine.log}"
