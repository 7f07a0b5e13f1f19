"""The one registry idiom: decorator registration, lazy module:object entries, package discovery, one error."""

from __future__ import annotations

import sys

import pytest

from safemt.errors import ConfigError
from safemt.judges import JUDGES
from safemt.models.base import BACKENDS, Backend
from safemt.moderation.defenses import DEFENSES
from safemt.moderation.guards import GUARD_ADAPTERS
from safemt.registry import Registry


def test_unknown_name_is_one_line_listing_what_is_defined() -> None:
    reg: Registry[type] = Registry("widget")
    reg.register("b")(type("B", (), {}))
    reg.register("a")(type("A", (), {}))
    with pytest.raises(ConfigError) as err:
        reg.get("c", key="widgets.x.kind")
    assert err.value.line() == "key widgets.x.kind: unknown widget 'c' (defined: a, b)"


def test_lazy_entry_is_imported_only_when_named() -> None:
    sys.modules.pop("safemt.metrics.bootstrap", None)
    reg: Registry = Registry("thing", lazy={"ci": "safemt.metrics.bootstrap:proportion_ci"})
    assert "ci" in reg.names() and "safemt.metrics.bootstrap" not in sys.modules
    assert reg.get("ci").__name__ == "proportion_ci"


def test_a_name_registered_twice_is_refused() -> None:
    reg: Registry = Registry("thing")
    reg.register("x")(int)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("x")(str)


def test_the_built_in_names() -> None:
    # docs/models-and-judges.md, docs/moderation.md: backends hf, vllm, openai; judges keyword, llm, guard,
    # refusal; defenses none, system_prompt
    assert BACKENDS.names() == ["hf", "openai", "vllm"]
    assert {"keyword", "llm", "guard", "refusal"} <= set(JUDGES.names())
    assert {"none", "system_prompt"} <= set(DEFENSES.names())
    assert {"llama_guard_3_vision", "llama_guard_4", "shieldgemma_2", "llavaguard", "qwen3guard",
            "wildguard", "llavashield"} <= set(GUARD_ADAPTERS.names())
    assert BACKENDS.get("hf").name == "hf"  # the decorator names the class


def test_base_classes_are_abstract() -> None:
    class Half(Backend):
        pass

    with pytest.raises(TypeError, match="generate"):
        Half({})
