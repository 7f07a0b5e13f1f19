"""Real-engine tests of the `vllm` backend: they run in the vLLM environment (`scripts/setup_env.sh
vllm` makes .venv-vllm with the CPU build) and are skipped, with the reason, where vllm is not
installed (the core environment). .ci/run's vLLM step sets SAFEMT_VLLM_TESTS=required: there a
missing vllm fails the run instead of skipping it.

Each engine starts once per session (in-process, eager: about 5-10 s each on 2 cores) and is shared
by the modules that use it; every test builds its own requests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
HAVE_VLLM = importlib.util.find_spec("vllm") is not None
REQUIRED = os.environ.get("SAFEMT_VLLM_TESTS") == "required"
SKIP_REASON = ("vllm is not installed in this environment: the real-engine tests run in .venv-vllm "
               "(scripts/setup_env.sh vllm; .ci/run's vLLM step)")
MAX_MODEL_LEN = 2048
# The CPU engine variables as the user left them, before any backend sets them.
USER_ENV = {var: os.environ.get(var) for var in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND")}

if REQUIRED and not HAVE_VLLM:
    raise pytest.UsageError(f"SAFEMT_VLLM_TESTS=required, but {SKIP_REASON}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.vllm)
            if not HAVE_VLLM:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def engine_cfg(models: Path, name: str, **extra: Any) -> dict[str, Any]:
    """A `backend: vllm` entry for a tiny model as the vllm-cpu profile writes it (float32, eager,
    in-process engine). On a GPU (benchmarks/gpu_check.sh vllm) each engine takes a small share of
    its memory, since a session holds several."""
    memory = {"gpu_memory_utilization": 0.08} if on_gpu() else {}
    return {"name": name, "backend": "vllm", "path": str(models / name), "revision": "local", "max_new_tokens": 24,
            "temperature": 0.0, "batch_size": 8, "dtype": "float32", "enforce_eager": True,
            "engine_in_process": True, "max_model_len": MAX_MODEL_LEN, **memory, **extra}


def hf_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same model on the hf backend (the keys hf reads), in the same dtype."""
    keep = ("name", "path", "revision", "max_new_tokens", "temperature", "batch_size", "system_prompt", "dtype")
    return {"backend": "hf", **{k: cfg[k] for k in keep if k in cfg}}


@pytest.fixture(scope="session")
def vllm_backend(tiny_models: Path):
    """get(name, **extra): the session's vllm backend for that tiny model and settings, started once."""
    from safemt.models import get_backend

    started: dict[str, Any] = {}

    def get(name: str, **extra: Any) -> Any:
        key = f"{name} {sorted(extra.items())}"
        if key not in started:
            backend = get_backend(engine_cfg(tiny_models, name, **extra))
            backend.llm  # start it now, so that a test's timing is its own
            started[key] = backend
        return started[key]

    return get


@pytest.fixture(scope="session")
def hf_backend(tiny_models: Path):
    from safemt.models import get_backend

    started: dict[str, Any] = {}

    def get(name: str, **extra: Any) -> Any:
        key = f"{name} {sorted(extra.items())}"
        if key not in started:
            started[key] = get_backend(hf_cfg(engine_cfg(tiny_models, name, **extra)))
        return started[key]

    return get


@pytest.fixture(scope="session")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Twelve small distinct PNGs."""
    from PIL import Image, ImageDraw

    folder = tmp_path_factory.mktemp("pictures")
    colors = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
    paths = []
    for i in range(12):
        img = Image.new("RGB", (48, 40), colors[i % 8])
        ImageDraw.Draw(img).rectangle((4 + i, 4, 24 + i, 30), fill=colors[(i + 3) % 8])
        paths.append(folder / f"{i}.png")
        img.save(paths[-1])
    return paths
