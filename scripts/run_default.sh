#!/usr/bin/env bash
# Set up the environment, then run the whole pipeline on the embedded default (offline, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/snakemake --cores all "$@"
