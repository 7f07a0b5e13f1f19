#!/usr/bin/env bash
# Create .venv (Python 3.10+) with the CPU build of torch and install safemt (idempotent).
# Usage: scripts/setup_env.sh [EXTRAS]   e.g. scripts/setup_env.sh test
#        scripts/setup_env.sh vllm       the separate vLLM (CPU build) environment .venv-vllm
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = vllm ]; then
    exec bash scripts/setup_vllm_env.sh
fi
PY=${PYTHON:-python3}
extras=${1:-}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.safemt-installed${extras:+-$extras}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # torch first, pinned: an unpinned torch pulls a multi-GB CUDA build on CPU machines.
    .venv/bin/python -m pip install -q "torch==${SAFEMT_TORCH_VERSION:-2.13.0}"
    .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
    touch "$stamp"
fi
