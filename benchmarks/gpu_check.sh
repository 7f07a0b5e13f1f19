#!/usr/bin/env bash
# GPU checks, for a machine with a CUDA device, torch + transformers and this project installed
# (snakemake on PATH). Each part prints one JSON object.
#   1. gpu_check.py:        the hf backend on CUDA with the tiny models (CPU/CUDA agreement, batching).
#   2. gpu_paper_check.py:  config/paper.yaml's smallest open model (by the size in its hub id, or
#                           SAFEMT_GPU_CHECK_MODEL=<name>) end to end through Snakemake on 20 dialogues
#                           on one GPU, under results-gpu-check/. Its weights must already be in the
#                           local Hugging Face cache (`hf download <hub id> --revision <revision>`);
#                           otherwise it stops with one line saying what to download.
#   3. tests/vllm:          where vllm imports, the real-engine tests (tiny models, float32, the slow
#                           Snakemake comparison left out) on the GPU build.
# Usage: bash benchmarks/gpu_check.sh [tiny|paper|vllm]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
part=${1:-all}
status=0
if [ "$part" = all ] || [ "$part" = tiny ]; then
    python3 benchmarks/gpu_check.py || status=$?
fi
if [ "$part" = all ] || [ "$part" = paper ]; then
    python3 benchmarks/gpu_paper_check.py || status=$?
fi
if [ "$part" = all ] || [ "$part" = vllm ]; then
    if python3 -c "import vllm" >/dev/null 2>&1; then
        python3 -m pytest -q -p no:cacheprovider -m "not slow" tests/vllm || status=$?
    else
        echo "gpu_check: vllm is not installed here; the real-engine tests (tests/vllm) are left out" >&2
    fi
fi
exit "$status"
