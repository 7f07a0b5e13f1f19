"""Dataset stage: seeds (built) or the released benchmark (imported) -> validated dialogues, and their card.

Inputs: `dataset.seeds` (JSONL seeds with images) or the release folder (`dataset.hub`, `release_dir`).
Outputs: `<results>/dataset/dialogues.jsonl` with `images/`, `card.json`, `card.png` (Dialogue contract,
`safemt.records.DIALOGUE`). Helpers: `safemt.data`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safemt.stages.params import as_params


def build_options(params: dict[str, Any]) -> Any:
    """The build's typed options (safemt.data.build.Options) from `dataset:`, `turns` and `models`."""
    from safemt.data.build import options

    params = as_params(params)
    return options(params.get("dataset") or {}, params.get("turns") or [], params.get("models") or {})


def run(params: dict[str, Any], seeds: str | Path, output: str | Path) -> dict[str, Any]:
    """Build one dialogue per seed x turn length (the default source)."""
    from safemt.data.build import build_dataset

    return build_dataset(seeds, output, build_options(params))


def import_release(params: dict[str, Any], src_dir: str | Path, output: str | Path, **options: Any) -> Any:
    """Import the released format (`data import`); `options` as `safemt.data.importer.import_release`."""
    from safemt.data.fetch import hub_config
    from safemt.data.importer import import_release as do_import

    dataset = params.get("dataset") or {}
    hub = hub_config(dataset) if dataset.get("hub") else None
    return do_import(src_dir, output, hub=hub, **options)


def fetch(params: dict[str, Any], output: str | Path | None, allow_missing_images: bool = False,
          when_import: bool = False) -> Path | None:
    """Download (or reuse) the pinned release, then import it into OUTPUT unless OUTPUT is None
    (`data fetch`). Returns the release folder, or None when `when_import` skipped a build profile."""
    from safemt.data.fetch import fetch as download
    from safemt.data.importer import import_release as do_import

    folder = download(params.get("dataset") or {}, when_import=when_import)
    if folder is not None and output is not None:
        do_import(folder, output, allow_missing_images=allow_missing_images)
    return folder


def classify(params: dict[str, Any], path: str | Path, output: str | Path) -> dict[str, int]:
    """Label the jailbreak method where a record lacks it (`data classify`)."""
    from safemt.data.classify import classify_file

    return classify_file(path, output)


def validate(params: dict[str, Any], path: str | Path, **options: Any) -> int:
    """Check a dialogue file against the contract; the number of dialogues (`data validate`)."""
    from safemt.data.validate import validate_file

    return validate_file(path, **options)


def export(params: dict[str, Any], path: str | Path, output: str | Path, **options: Any) -> dict[int, int]:
    """Write a dataset back in the released layout (`data export`)."""
    from safemt.data.export import export_release

    return export_release(path, output, **options)


def card(params: dict[str, Any], path: str | Path, output: str | Path, **options: Any) -> Any:
    """The dataset card and its figure (`data card`)."""
    from safemt.data.card import make_card, tokenizer

    params = as_params(params)
    tokens = tokenizer((params.get("dataset") or {}).get("tokenizer"), params.get("models") or {})
    return make_card(path, output, build_options(params), tokens, **options)
