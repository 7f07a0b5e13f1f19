# safemt: the SafeMT benchmark, end to end. Rules are thin: each calls the `safemt` CLI.
#   snakemake --cores all                               # embedded default (params.yaml)
#   snakemake --cores all --configfile config/paper.yaml --profile workflow/profiles/slurm
# A --configfile replaces params.yaml as a whole (it is not merged), and the `safemt` commands
# read the same file, so what Snakemake plans and what the commands do cannot drift apart.

import os

from snakemake.utils import min_version

min_version("8.20")

if not workflow.overwrite_configfiles:
    configfile: "params.yaml"

# Relative when inside the working directory: `--configfile params.yaml` (as dvc.yaml passes it) and no
# --configfile then give the same rule params, so neither makes Snakemake rerun jobs.
PARAMS = (os.path.relpath(workflow.overwrite_configfiles[-1]) if workflow.overwrite_configfiles else "params.yaml")
if PARAMS.startswith(".."):
    PARAMS = str(workflow.overwrite_configfiles[-1])

# `snakemake --report report.html`: the figures with their captions (workflow/report/*.rst).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/judging.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/moderation.smk"
include: "workflow/rules/live.smk"
include: "workflow/rules/figures.smk"


# Cheap bookkeeping steps run where Snakemake runs, not as cluster jobs.
localrules: all, metrics, moderation, judge_agreement, figures, tables, numbers, provenance, html_report,
    dataset_card, stage_models, stage_dataset, stage_inference, stage_judging, stage_metrics, stage_figures,
    stage_paper, stage_report, live_metrics, stage_live
if INFERENCE_JOBS == "file":

    localrules: merge_generations
if GRADED:

    localrules: metrics_graded


rule all:
    default_target: True
    input:
        metrics_summaries(),
        moderation_files(),
        FIGURES,
        TABLES,
        PAPER,
        LAYOUT.report,
        DATASET_CARD,
        DATASET_FIGURE,
        [LAYOUT.judge_agreement] if len(METRIC_JUDGES) > 1 else [],
        live_metrics_files(),


# One target per DVC stage (dvc.yaml): naming a rule builds its missing inputs even when files further
# down the DAG exist, which is what a DVC stage needs after DVC removed that stage's outputs.
# The DVC `models` stage declares resources/models as its output, so it builds the tiny models (0.2 s)
# for every profile, also one whose models are all on a hub or behind an API.
rule stage_models:
    input:
        TINY_MODELS,


rule stage_dataset:
    input:
        DATASET,
        [LAYOUT.benign_dataset] if BENIGN_SEEDS else [],
        DATASET_CARD,
        DATASET_FIGURE,


rule stage_inference:
    input:
        run_generations(),
        benign_generations(),


rule stage_judging:
    input:
        [run_judgments(j) for j in METRIC_JUDGES],
        benign_judgments(),


rule stage_metrics:
    input:
        metrics_summaries(),
        moderation_files(),
        live_metrics_files(),
        [LAYOUT.judge_agreement] if len(METRIC_JUDGES) > 1 else [],


rule stage_figures:
    input:
        FIGURES,


rule stage_paper:
    input:
        TABLES,
        PAPER,


# provenance.json and the report change with every run (times, commit): DVC runs this step but
# does not hash its files (see dvc.yaml).
rule stage_report:
    input:
        LAYOUT.provenance,
        LAYOUT.report,


# Last: on a results root imported from a run bundle, the bundle claims the dataset and generations.
include: "workflow/rules/bundle.smk"
