"""Where every stage writes, defined once: the Snakefile, dvc.yaml helpers and the CLI read these names.

Each profile has its own results root (`results_dir` in the config; the embedded default keeps
`results/`), so switching profiles never reuses another profile's files. Patterns keep Snakemake's
`{wildcard}` syntax so the rules use them as they are; `.format(...)` fills them for a concrete file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

DEFAULT_RESULTS_DIR = "results"


def results_dir(config: Mapping[str, Any]) -> str:
    """The profile's results root (its `results_dir`), without a trailing slash."""
    return str(config.get("results_dir") or DEFAULT_RESULTS_DIR).rstrip("/")


@dataclass(frozen=True)
class Layout:
    """File names under one results root, in pipeline order."""

    root: str = DEFAULT_RESULTS_DIR

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> "Layout":
        """The layout of a configuration: only its `results_dir` is read."""
        return cls(results_dir(config))

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
        # Inside the dataset folder, so that deleting figures/ reruns only the figures stage.
        return self.path("dataset/card.png")

    # inference
    @property
    def generations(self) -> str:
        return self.path("generations/{model}/{defense}/{turns}.jsonl")

    @property
    def generation_shard(self) -> str:
        return self.path("generations/{model}/{defense}/shards/{turns}/{shard}-of-{n}.jsonl")

    # live dialogues (docs/live.md): the live cell's files, beside the replay grid's
    @property
    def live_generations(self) -> str:
        return self.path("live/generations/{model}/{defense}/{turns}.jsonl")

    @property
    def live_judgments(self) -> str:
        return self.path("live/judgments/{judge}/{model}/{defense}/{turns}.jsonl")

    # judging
    @property
    def judgments(self) -> str:
        return self.path("judgments/{judge}/{model}/{defense}/{turns}.jsonl")

    # benign control set (over-refusal): one file per model x defense, every turn length in it
    @property
    def benign_dataset(self) -> str:
        return self.path("dataset/benign/dialogues.jsonl")

    @property
    def benign_images(self) -> str:
        return self.path("dataset/benign/images")

    @property
    def benign_generations(self) -> str:
        return self.path("generations/{model}/{defense}/benign.jsonl")

    @property
    def benign_judgments(self) -> str:
        return self.path("judgments/{judge}/{model}/{defense}/benign.jsonl")

    # metrics
    @property
    def metrics_dir(self) -> str:
        return self.path("metrics/{judge}")

    def metrics_file(self, name: str) -> str:
        """One of METRICS_FILES inside a judge's metrics folder."""
        return f"{self.metrics_dir}/{name}"

    @property
    def timings_dir(self) -> str:
        """Measured times (not hashed by DVC, like provenance.json and the logs)."""
        return self.path("timings/{judge}")

    @property
    def moderation_latency(self) -> str:
        return f"{self.timings_dir}/{MODERATION_LATENCY_FILE}"

    @property
    def judge_agreement(self) -> str:
        return self.path(f"metrics/{AGREEMENT_FILE}")

    @property
    def graded_agreement(self) -> str:
        """Beside judge_agreement: a binary judge's labels against a graded judge's grades."""
        return self.path(f"metrics/{GRADED_AGREEMENT_FILE}")

    @property
    def scores_dir(self) -> str:
        """Flat per model x defense scores of one judge, declared as DVC metrics (one row per file)."""
        return self.path("scores/{judge}")

    @property
    def score_file(self) -> str:
        return f"{self.scores_dir}/{{model}}/{{defense}}.json"

    # figures
    @property
    def figures_dir(self) -> str:
        return self.path("figures")

    def figure(self, name: str) -> str:
        """A figure file: PNGs in figures/ (viewed, DVC plots), PDFs in paper/figures/ (for LaTeX)."""
        return f"{self.figure_pdf_dir}/{name}" if name.endswith(".pdf") else f"{self.figures_dir}/{name}"

    @property
    def figure_pdf_dir(self) -> str:
        return self.path("paper/figures")

    # tables, paper numbers, report, provenance
    @property
    def tables_dir(self) -> str:
        return self.path("tables")

    def table(self, name: str) -> str:
        return f"{self.tables_dir}/{name}"

    @property
    def paper_dir(self) -> str:
        return self.path("paper")

    @property
    def numbers_tex(self) -> str:
        return self.path("paper/numbers.tex")

    @property
    def numbers_json(self) -> str:
        return self.path("paper/numbers.json")

    @property
    def report(self) -> str:
        return self.path("report/index.html")

    @property
    def provenance(self) -> str:
        return self.path("provenance.json")

    # logs
    def log(self, rel: str) -> str:
        return self.path(f"logs/{rel}")


def _beside(path: str, sub: str) -> str:
    """`<folder>/<sub>/<name>` for `<folder>/<name>`."""
    folder, _, name = str(path).rpartition("/")
    return f"{folder}/{sub}/{name}" if folder else f"{sub}/{name}"


def live_turns_file(generations: str) -> str:
    """A live generations file's every-turn answers: `<folder>/turns/<name>`."""
    return _beside(generations, "turns")


def live_dialogues_file(generations: str) -> str:
    """A live generations file's transcripts (the dialogues as they happened): `<folder>/dialogues/<name>`."""
    return _beside(generations, "dialogues")


# Files `safemt metrics` writes into a judge's metrics folder (rule output key -> file name).
METRICS_FILES = {
    "summary": "summary.json",
    "asr": "asr.csv",
    "si": "si.csv",
    "by_scenario": "asr_by_scenario.csv",
    "by_method": "asr_by_method.csv",
    "si_ci": "si_ci.csv",
    "composition": "composition.csv",
}
# Written into a judge's metrics folder by `safemt gold calibrate` when metrics.calibration names the
# judge; `safemt metrics` copies the section into summary.json.
CALIBRATION_FILES = {"asr": "asr_corrected.csv", "si": "si_corrected.csv", "section": "calibration.json"}
# Beside the judge folders when two or more judges ran (`safemt agreement`).
AGREEMENT_FILE = "judge_agreement.csv"
# Written by `safemt metrics` only for a graded judge (judges.<name>.kind: graded): hard and soft ASR.
GRADED_FILE = "asr_graded.csv"
# Beside AGREEMENT_FILE when a binary and a graded judge ran: the binary label against the grade.
GRADED_AGREEMENT_FILE = "graded_agreement.csv"
# Written into a judge's metrics folder by the moderation stage (issue 10), when it ran.
MODERATION_FILE = "moderation.csv"

# Files `safemt live-metrics` writes into a judge's metrics folder when a live cell ran (docs/live.md).
LIVE_FILES = {"asr": "live.csv", "turns": "live_turns.csv", "first_unsafe": "live_first_unsafe.csv",
              "summary": "live.json"}

# Figures `safemt figures` draws from a judge's metrics folder, each as PNG and PDF.
FIGURE_NAMES = ["asr_vs_turns", "si_per_model", "asr_by_scenario", "asr_by_method", "dataset_composition"]
# Drawn only when the run makes their data (OptionalMetrics): moderation.csv, judge_agreement.csv (two or
# more judges), live.csv, asr_corrected.csv.
OPTIONAL_FIGURES = ["moderation", "judge_agreement", "replay_vs_live", "asr_corrected"]
FIGURE_FORMATS = ("png", "pdf")
FIGURE_FILES = [f"{n}.{ext}" for n in FIGURE_NAMES for ext in FIGURE_FORMATS]

# Tables `safemt tables` writes, each as CSV, Markdown and LaTeX (booktabs).
TABLE_NAMES = ["si_asr", "dataset"]
OPTIONAL_TABLES = ["moderation", "judge_agreement", "asr_graded", "graded_agreement"]
TABLE_FORMATS = ("csv", "md", "tex")


def figure_files(moderation: bool = False, agreement: bool = False, live: bool = False,
                 calibrated: bool = False) -> list[str]:
    """Every figure file a run draws, given whether moderation, several judges and a live cell ran, and
    whether the figures' judge has gold labels (metrics.calibration)."""
    names = FIGURE_NAMES + (["moderation"] if moderation else []) + (["judge_agreement"] if agreement else [])
    names += ["replay_vs_live"] if live else []
    names += ["asr_corrected"] if calibrated else []
    return [f"{n}.{ext}" for n in names for ext in FIGURE_FORMATS]


def table_files(moderation: bool = False, agreement: bool = False, graded: bool = False,
                graded_agreement: bool = False) -> list[str]:
    """Every table file a run writes, given whether moderation and several judges ran, whether the
    tables' judge is graded, and whether a graded and a binary judge ran."""
    names = TABLE_NAMES + (["moderation"] if moderation else []) + (["judge_agreement"] if agreement else [])
    names += (["asr_graded"] if graded else []) + (["graded_agreement"] if graded_agreement else [])
    return [f"{n}.{ext}" for n in names for ext in TABLE_FORMATS]


@dataclass(frozen=True)
class OptionalMetrics:
    """Which optional metrics files of one judge the run makes, so that what reads them (tables,
    numbers, figures, the report) reads those and nothing an earlier configuration left behind;
    `safemt.config.optional_metrics` derives it from the params, as the workflow declares the files."""

    moderation: bool = False        # MODERATION_FILE: a defense other than `none` ran
    agreement: bool = False         # AGREEMENT_FILE: two or more metrics judges
    live: bool = False              # LIVE_FILES: a live cell ran
    calibrated: bool = False        # CALIBRATION_FILES: the judge has gold labels (metrics.calibration)
    graded: bool = False            # GRADED_FILE: the judge is graded
    graded_agreement: bool = False  # GRADED_AGREEMENT_FILE: a graded and a binary judge ran

    @classmethod
    def found(cls, metrics_dir: str | PurePath) -> "OptionalMetrics":
        """What is on disk in a judge's metrics folder and beside it: for a folder read without its
        params (a bundle, a test)."""
        own, shared = Path(metrics_dir), Path(metrics_dir).parent
        return cls(moderation=(own / MODERATION_FILE).is_file(), agreement=(shared / AGREEMENT_FILE).is_file(),
                   live=(own / LIVE_FILES["asr"]).is_file(), calibrated=(own / CALIBRATION_FILES["si"]).is_file(),
                   graded=(own / GRADED_FILE).is_file(), graded_agreement=(shared / GRADED_AGREEMENT_FILE).is_file())

    def figure_files(self) -> list[str]:
        return figure_files(self.moderation, self.agreement, self.live, self.calibrated)

    def table_files(self) -> list[str]:
        return table_files(self.moderation, self.agreement, self.graded, self.graded_agreement)

# Files `safemt moderation` writes into a judge's metrics folder (moderation.json becomes summary.json's
# `moderation` section).
MODERATION_FILES = {
    "table": MODERATION_FILE,
    "section": "moderation.json",
}
# Measured times of the defenses (seconds per dialogue): under <results>/timings/, not in the metrics,
# because two clean runs never measure the same times and metrics must be byte-identical.
MODERATION_LATENCY_FILE = "moderation_latency.csv"
