#!/usr/bin/env bash
# GPU check of the hf backend (see gpu_check.py). On a device machine with torch + transformers:
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python3 benchmarks/gpu_check.py
