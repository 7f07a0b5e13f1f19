# Names and paths shared by the rules; no logic beyond wiring config to file names. The configuration is
# loaded here, once, by the loader every `safemt` command calls (as rna-seq-star-deseq2's common.smk
# validates once): schema defaults filled, names and each kind's section checked, revisions locked.
# The planner sees exactly what the jobs see.

import json
import os
import re
import sys

from safemt import judges as safemt_judges
from safemt.data.fetch import fetched_by_workflow
from safemt.config import figures_judge, graded_judges, live_defenses, live_models, live_turns, metrics_judges, optional_metrics
from safemt.errors import ConfigError
from safemt.layout import (CALIBRATION_FILES, FIGURE_FORMATS, GRADED_AGREEMENT_FILE, GRADED_FILE, LIVE_FILES, METRICS_FILES,
                           MODERATION_FILE, MODERATION_FILES, Layout, live_dialogues_file, live_turns_file)
from safemt.models.lock import hub_models
from safemt.moderation.defenses import parse_defense
from safemt.moderation.runner import defense_models, defense_reads
from safemt.stages import params as safemt_params

try:
    LOADED = safemt_params.prepare(config, PARAMS)
except ConfigError as exc:
    sys.exit(f"safemt: config error: {exc.line()}")
config.clear()
config.update(LOADED)
if os.environ.get("SAFEMT_PLANNED_CONFIG"):  # tests/test_config_loader.py: what the planner sees
    with open(os.environ["SAFEMT_PLANNED_CONFIG"], "w", encoding="utf-8") as fh:
        json.dump(config, fh, sort_keys=True)

# `config` is what safemt.stages.params loaded: defaults filled, hub revisions resolved
# to commit SHAs by `safemt models lock` (model_params below carries them, so a new lock reruns the jobs
# of the models whose weights changed).
MODELS = config["models"]
UNPINNED = sorted(n for n in hub_models(MODELS) if not MODELS[n].get("resolved_revision") and not MODELS[n].get("unpinned"))
if UNPINNED:  # planning goes on (a dry run must work offline); the jobs of these models will refuse to start
    print(f"safemt: {len(UNPINNED)} hub model(s) not pinned to a commit ({', '.join(UNPINNED)}): run "
          f"`safemt models lock --params {PARAMS}` before running them", file=sys.stderr)
TARGETS = config["targets"]
TURNS = config["turns"]
DEFENSES = config.get("defenses", ["none"])
JUDGES = config["judges"]
METRIC_JUDGES = metrics_judges(config)
FIGURE_JUDGE = figures_judge(config)
MODERATION = safemt_params.moderation(config)
BENIGN_SEEDS = MODERATION.benign_seeds
REFUSAL_JUDGE = MODERATION.refusal_judge
RUNS = [(m, d) for m in TARGETS for d in DEFENSES]  # every target runs under every defense
# `model`: one inference job per target (all defenses and lengths, one model load); `file`: one per
# generations file and shard, then merged (the cluster profile's granularity). Outputs are the same.
INFERENCE_JOBS = config["workflow"]["inference_jobs"]

ENV = "../envs/safemt.yaml"
# Every output path comes from safemt.layout under this profile's results root (`results_dir`).
LAYOUT = Layout.of(config)
RESULTS = LAYOUT.root
DATASET = LAYOUT.dataset
TINY_MODELS = "resources/models"
# The optional metrics files of the figures' judge (safemt.config.optional_metrics, which the stages that
# read them use too): moderation when a defense other than `none` ran, agreement with two or more judges,
# the live cell's files beside the replay grid (workflow/rules/live.smk), ...
SHOWN = optional_metrics(config, FIGURE_JUDGE)
COMPARES_DEFENSES = SHOWN.moderation
AGREEMENT = SHOWN.agreement
LIVE_CELL = SHOWN.live
# judges with gold labels (metrics.calibration): their metrics gain the corrected ASR and SI beside the raw
CALIBRATED = [j for j in METRIC_JUDGES if optional_metrics(config, j).calibrated]
# graded judges (judges.<name>.kind: graded): their metrics gain asr_graded.csv (hard and soft ASR), and the
# agreement step writes graded_agreement.csv beside judge_agreement.csv when a binary judge ran too
GRADED = graded_judges(config)
GRADED_AGREEMENT = SHOWN.graded_agreement
# the metrics options every metrics-reading rule depends on: gold labels change only the calibrate jobs
# si_labels at its default (soft) is left out, as MetricsOptions.as_config leaves it: a run without a graded
# judge plans and hashes what it did before the option existed.
METRICS_CONFIG = {k: v for k, v in config.get("metrics", {}).items()
                  if k != "calibration" and not (k == "si_labels" and v == "soft")}
FIGURES = [LAYOUT.figure(name) for name in SHOWN.figure_files()]
TABLES = [LAYOUT.table(name) for name in SHOWN.table_files()]
PAPER = [LAYOUT.numbers_tex, LAYOUT.numbers_json]


wildcard_constraints:
    model="[^/]+",
    defense="[^/]+",
    judge="[^/]+",
    turns=r"\d+",
    shard=r"\d+",
    n=r"\d+",


def model_files(name):
    """Local tiny models are built by the `tiny_models` rule; hub models need no input file."""
    path = MODELS[name].get("path", "")
    return [TINY_MODELS] if path.startswith(f"{TINY_MODELS}/") else []


def model_params(name):
    """Serialised model config: a change reruns that model's jobs (Snakemake params trigger)."""
    return json.dumps(MODELS[name], sort_keys=True)


def judge_params(name):
    """Serialised judge config, its model's config and its verdict spec (rendered prompts, retry
    reminder, dialogue renderer, parser): a change to any of them reruns the judge's jobs."""
    judge = JUDGES[name]
    return json.dumps({"judge": judge, "model": MODELS.get(judge.get("model")),
                       "verdict": safemt_judges.verdict_spec(judge)}, sort_keys=True)


# Shell prefix of the long jobs (a model drafting, answering or judging): the run's own output names
# the log that shows the job's progress bar, rate and ETA, so a user knows which file to `tail -f`.
FOLLOW = "echo 'safemt: progress, rate and ETA of this job: tail -f' {log:q} >&2; "

# Cluster resources of a job that runs a model: from the model's config (`gpus`, `gpu_model`, `runtime`
# in minutes, `mem_mb`; their defaults are in the schema). A job without a model is light: these.
# Partitions come from the profile (workflow/profiles/).
LIGHT_JOB = {"gpus": 0, "runtime": 30, "mem_mb": 4000}


def model_resource(name, key):
    """One resource of a job running model `name` (None: no model, or no `gpu_model`: left unset)."""
    if name is None or name not in MODELS:
        return LIGHT_JOB.get(key)
    return MODELS[name].get(key)


def model_resources(model_of):
    """Snakemake `resources:` for a rule whose wildcards pick a model through `model_of(wildcards)`.
    The slurm executor reads gpu, gpu_model, runtime and mem_mb; the kubernetes one gpu (and
    gpu_manufacturer from the profile)."""
    return {
        "gpu": lambda wc: model_resource(model_of(wc), "gpus"),
        "gpu_model": lambda wc: model_resource(model_of(wc), "gpu_model"),
        "runtime": lambda wc: model_resource(model_of(wc), "runtime"),
        "mem_mb": lambda wc: model_resource(model_of(wc), "mem_mb"),
    }


def generations(model, defense):
    return expand(LAYOUT.generations, model=model, defense=defense, turns=TURNS)


def judgments(judge, model, defense):
    return expand(LAYOUT.judgments, judge=judge, model=model, defense=defense, turns=TURNS)


def figure_metrics(judge):
    """The CSVs `safemt figures` (and tables, numbers) read from one judge's metrics folder."""
    made = optional_metrics(config, judge)
    names = [METRICS_FILES[k] for k in ("asr", "si", "si_ci", "by_scenario", "by_method", "composition")]
    names += [MODERATION_FILE] if made.moderation else []
    names += [LIVE_FILES["asr"]] if made.live else []
    names += [CALIBRATION_FILES["asr"], CALIBRATION_FILES["si"]] if made.calibrated else []
    names += [GRADED_FILE] if made.graded else []
    files = [LAYOUT.metrics_file(n).format(judge=judge) for n in names]
    return files + ([LAYOUT.judge_agreement] if AGREEMENT else []) + agreement_extras()


def agreement_extras():
    """What the agreement step writes beside judge_agreement.csv: graded_agreement.csv with a graded and a binary judge."""
    return [LAYOUT.graded_agreement] if GRADED_AGREEMENT else []


def calibration_section(judge):
    """The corrected metrics `safemt metrics` adds to JUDGE's summary.json (none without gold labels)."""
    return [LAYOUT.metrics_file(CALIBRATION_FILES["section"]).format(judge=judge)] if judge in CALIBRATED else []


def calibration_gold(judge):
    """JUDGE's gold-label file (metrics.calibration.<judge>.gold)."""
    return config["metrics"]["calibration"][judge]["gold"]


def metrics_summaries():
    return expand(LAYOUT.metrics_file(METRICS_FILES["summary"]), judge=METRIC_JUDGES)


def shard_files(model, defense, turns):
    """`models.<name>.shards` splits each turn file into that many jobs (deterministic by id)."""
    n = int(MODELS[model].get("shards", 1))
    return expand(LAYOUT.generation_shard, model=model, defense=defense, turns=turns, shard=range(n), n=n)


def _component_models(defense):
    return defense_models(parse_defense(defense, MODERATION), MODERATION, MODELS)


def defense_params(defense):
    """What a defense reads, serialised (safemt.moderation.runner.defense_reads, the definition the
    runtime's config hash uses too) with its models' entries: a change reruns only that defense's jobs."""
    reads = defense_reads(parse_defense(defense, MODERATION), MODERATION)
    models = {name: MODELS[name] for name in _component_models(defense)}
    return json.dumps({**reads, "models": models}, sort_keys=True)


def defense_model_files(defense):
    """Local model folders the defense's guard, moderator or captioner needs."""
    return sorted({f for name in _component_models(defense) for f in model_files(name)})


def moderation_files():
    """The moderation table and its summary section, per metrics judge."""
    return expand(LAYOUT.metrics_file(MODERATION_FILES["table"]), judge=METRIC_JUDGES)


def run_generations():
    """Every (target, defense) run's generation files, all turn lengths."""
    return [f for m, d in RUNS for f in generations(m, d)]


def run_judgments(judge):
    return [f for m, d in RUNS for f in judgments(judge, m, d)]


def benign_generations():
    return [LAYOUT.benign_generations.format(model=m, defense=d) for m, d in RUNS] if BENIGN_SEEDS else []


def benign_judgments():
    return ([LAYOUT.benign_judgments.format(judge=REFUSAL_JUDGE, model=m, defense=d) for m, d in RUNS]
            if BENIGN_SEEDS else [])
