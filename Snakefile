# safemt: the SafeMT benchmark, end to end. Rules are thin: each calls the `safemt` CLI.
#   snakemake --cores all                               # embedded default (params.yaml)
#   snakemake --cores all --configfile config/paper.yaml --profile workflow/profiles/slurm
# A --configfile replaces params.yaml as a whole (it is not merged), and the `safemt` commands
# read the same file, so what Snakemake plans and what the commands do cannot drift apart.

import sys

from snakemake.utils import min_version, validate

from safemt import config as safemt_config
from safemt.errors import ConfigError

min_version("8.20")

if not workflow.overwrite_configfiles:
    configfile: "params.yaml"

PARAMS = str(workflow.overwrite_configfiles[-1]) if workflow.overwrite_configfiles else "params.yaml"

try:
    safemt_config.validate(config, PARAMS)  # one line naming the key
except ConfigError as exc:
    sys.exit(f"safemt: config error: {exc.line()}")
validate(config, "workflow/schemas/params.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/judging.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        expand("results/metrics/{judge}/summary.json", judge=METRIC_JUDGES),
        FIGURES,
        DATASET_CARD,
        DATASET_FIGURE,
        ["results/metrics/judge_agreement.csv"] if len(METRIC_JUDGES) > 1 else [],
