"""Where every stage writes, defined once: the Snakefile, dvc.yaml helpers and the CLI read these names.

Each profile has its own results root (`results_dir` in the config; the embedded default keeps
`results/`), so switching profiles never reuses another profile's files. Patterns keep Snakemake's
`{wildcard}` syntax so the rules use them as they are; `.format(...)` fills them for a concrete file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_RESULTS_DIR = "results"


def results_dir(params: dict[str, Any]) -> str:
    """The profile's results root, without a trailing slash."""
    return str(params.get("results_dir") or DEFAULT_RESULTS_DIR).rstrip("/")


@dataclass(frozen=True)
class Layout:
    """File names under one results root, in pipeline order."""

    root: str = DEFAULT_RESULTS_DIR

    @classmethod
    def of(cls, params: dict[str, Any]) -> "Layout":
        return cls(results_dir(params))

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    # dataset
    @property
    def dataset_dir(self) -> str:
        return self.path("dataset")

    @property
    def dataset(self) -> str:
        return self.path("dataset/dialogues.jsonl")

    @property
    def dataset_images(self) -> str:
        return self.path("dataset/images")

    @property
    def dataset_card(self) -> str:
        return self.path("dataset/card.json")

    @property
    def dataset_figure(self) -> str:
        return self.path("figures/dataset.png")

    # inference
    @property
    def generations(self) -> str:
        return self.path("generations/{model}/{defense}/{turns}.jsonl")

    @property
    def generation_shard(self) -> str:
        return self.path("generations/{model}/{defense}/shards/{turns}/{shard}-of-{n}.jsonl")

    # judging
    @property
    def judgments(self) -> str:
        return self.path("judgments/{judge}/{model}/{defense}/{turns}.jsonl")

    # metrics
    @property
    def metrics_dir(self) -> str:
        return self.path("metrics/{judge}")

    def metrics_file(self, name: str) -> str:
        """One of METRICS_FILES inside a judge's metrics folder."""
        return f"{self.metrics_dir}/{name}"

    @property
    def judge_agreement(self) -> str:
        return self.path("metrics/judge_agreement.csv")

    # figures
    @property
    def figures_dir(self) -> str:
        return self.path("figures")

    def figure(self, name: str) -> str:
        return f"{self.figures_dir}/{name}"

    # logs
    def log(self, rel: str) -> str:
        return self.path(f"logs/{rel}")


# Files `safemt metrics` writes into a judge's metrics folder (rule output key -> file name).
METRICS_FILES = {
    "summary": "summary.json",
    "asr": "asr.csv",
    "si": "si.csv",
    "by_scenario": "asr_by_scenario.csv",
    "by_method": "asr_by_method.csv",
}

# Figures `safemt figures` draws from a judge's metrics folder.
FIGURE_FILES = ["asr_vs_turns.png", "si_per_model.png"]
