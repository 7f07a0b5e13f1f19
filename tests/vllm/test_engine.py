"""Engine arguments from the model's config reach the live engine (read back from its vllm_config),
and the CPU engine variables are the backend's own choice only where the user set none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from safemt.models import get_backend
from safemt.models.vllm_backend import CPU_BIND_VAR, CPU_KVCACHE_VAR, cpu_bind_list
from tests.vllm.conftest import MAX_MODEL_LEN, USER_ENV, engine_cfg, on_gpu


def _config(backend):
    return backend.llm.llm_engine.vllm_config


def test_engine_arguments_reach_the_live_engine(vllm_backend) -> None:
    backend = vllm_backend("tiny-vlm-a")
    config = _config(backend)
    assert config.model_config.max_model_len == MAX_MODEL_LEN
    assert str(config.model_config.dtype) == "torch.float32"
    assert config.parallel_config.tensor_parallel_size == 1
    assert config.parallel_config.distributed_executor_backend == "uni"  # engine_in_process
    assert config.cache_config.enable_prefix_caching is True  # the default for backend vllm
    assert config.cache_config.gpu_memory_utilization == backend.cfg["gpu_memory_utilization"]
    if not on_gpu():
        assert backend.cfg["gpu_memory_utilization"] == 0.9  # the schema's default, not vLLM's 0.92
    assert config.model_config.seed == 0
    assert config.structured_outputs_config.disable_any_whitespace is True
    assert config.load_config.load_format == "safetensors"


def test_changed_settings_reach_a_second_engine(tiny_models: Path) -> None:
    backend = get_backend(engine_cfg(tiny_models, "tiny-judge", enable_prefix_caching=False, max_model_len=512,
                                     gpu_memory_utilization=0.5, max_num_seqs=4, dtype="auto"))
    config = _config(backend)
    assert config.cache_config.enable_prefix_caching is False
    assert config.model_config.max_model_len == 512
    assert config.cache_config.gpu_memory_utilization == 0.5
    assert config.scheduler_config.max_num_seqs == 4
    assert str(config.model_config.dtype) == "torch.float32"  # auto on CPU: float32, as the hf backend
    assert backend.generate([]) == []


@pytest.mark.skipif(on_gpu(), reason="the CPU engine variables are set on CPU only")
def test_the_cpu_variables_are_set_when_unset(vllm_backend) -> None:
    config = _config(vllm_backend("tiny-vlm-a"))
    expected = {CPU_KVCACHE_VAR: USER_ENV[CPU_KVCACHE_VAR] or "1", CPU_BIND_VAR: USER_ENV[CPU_BIND_VAR] or cpu_bind_list()}
    assert {var: os.environ[var] for var in expected} == expected
    assert config.cache_config.kv_cache_memory_bytes == int(expected[CPU_KVCACHE_VAR]) << 30
