#!/usr/bin/env bash
# Set up the environment with the test extras, then run the test suite (slow end-to-end tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh test
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"
