# Run bundles (docs/bundles.md). A results root restored by `safemt bundle import` holds the dataset and
# every answer of the run it came from, and no rule may write them again: here the rules below claim
# every file under its dataset/, generations/ and live/generations/ folders, ahead of any rule that
# would write one (rule order, pair by pair), so the dataset and inference stages get no job and
# `snakemake` runs new judges, metrics and reports only. A file the bundle lacks stops the plan (the
# dataset, a planned generations file) or its job (anything else) with one line. Included last.

from safemt.report.bundle import BUNDLED_FOLDERS, imported, missing_from_import

BUNDLE = imported(RESULTS)
if BUNDLE is not None:
    _missing = missing_from_import(RESULTS, [DATASET, *run_generations(), *benign_generations()])
    if _missing:
        sys.exit(f"safemt: {_missing}")

    rule bundle_dataset:
        output:
            f"{RESULTS}/{BUNDLED_FOLDERS['bundle_dataset']}/{{bundled}}",
        localrule: True
        shell:
            "echo 'safemt: {output}: not in the bundle imported into this results root; the dataset is never"
            " rebuilt there' >&2; exit 2"

    rule bundle_generations:
        output:
            f"{RESULTS}/{BUNDLED_FOLDERS['bundle_generations']}/{{bundled}}",
        localrule: True
        shell:
            "echo 'safemt: {output}: not in the bundle imported into this results root; inference never runs"
            " there' >&2; exit 2"

    rule bundle_live_generations:
        output:
            f"{RESULTS}/{BUNDLED_FOLDERS['bundle_live_generations']}/{{bundled}}",
        localrule: True
        shell:
            "echo 'safemt: {output}: not in the bundle imported into this results root; inference never runs"
            " there' >&2; exit 2"

    for _claim in BUNDLED_FOLDERS:
        for _other in [r.name for r in workflow.rules if r.name not in BUNDLED_FOLDERS]:
            workflow.ruleorder(_claim, _other)
