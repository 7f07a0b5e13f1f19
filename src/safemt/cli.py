"""The `safemt` command line: thin argument parsing over one entry module per stage (safemt.stages).

Every command takes --params (default params.yaml). On bad input it prints one line to stderr
(file, record or id, reason), exits with status 2 and leaves its outputs untouched.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from safemt import __version__
from safemt.errors import SafemtError, first_line


# The commands of each stage (safemt.stages.STAGES order); `safemt --help` lists them in this order.
STAGE_COMMANDS = {"dataset": ("data",), "models": ("models",), "inference": ("infer", "merge"), "judging": ("judge",),
                  "moderation": ("moderation",), "metrics": ("metrics", "live-metrics", "agreement", "gold"), "figures": ("figures",),
                  "paper": ("tables", "numbers"), "report": ("provenance", "report"),
                  "bundle": ("bundle",)}


def _params(args: argparse.Namespace) -> dict:
    from safemt.stages import params as safemt_params

    return safemt_params.load(args.params)


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like I/N, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


# --- one handler per command, in pipeline order; each calls its stage's entry module (safemt.stages) ----

def cmd_data_import(args: argparse.Namespace) -> int:
    from safemt.stages import dataset

    params = _params(args) if Path(args.params).is_file() else {}
    dataset.import_release(params, args.src_dir, args.output, images_dir=args.images_dir,
                           allow_missing_images=args.allow_missing_images, strict=args.strict)
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    from safemt.stages import dataset

    dataset.run(_params(args), args.seeds, args.output)
    return 0


def cmd_data_validate(args: argparse.Namespace) -> int:
    from safemt.stages import dataset

    n = dataset.validate({}, args.file, image_root=args.image_root, allow_missing_images=args.allow_missing_images)
    print(f"{args.file}: {n} dialogues valid")
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    from safemt.stages import dataset

    dataset.export({}, args.file, args.output, image_root=args.image_root)
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from safemt.stages import dataset

    if args.output is None and not args.download_only:
        raise SafemtError("give -o OUT.jsonl, or --download-only")
    dataset.fetch(_params(args), None if args.download_only else args.output,
                  allow_missing_images=args.allow_missing_images, when_import=args.when_import)
    return 0


def cmd_data_classify(args: argparse.Namespace) -> int:
    from safemt.stages import dataset

    dataset.classify(_params(args), args.file, args.output)
    return 0


def cmd_data_card(args: argparse.Namespace) -> int:
    from safemt.stages import dataset

    dataset.card(_params(args), args.file, args.output, figure=args.figure, reference=args.reference,
                 fixture=args.fixture)
    return 0


def cmd_models_tiny(args: argparse.Namespace) -> int:
    from safemt.stages import models

    for path in models.run({}, args.output, untrained=args.untrained):
        print(path)
    return 0


def cmd_models_lock(args: argparse.Namespace) -> int:
    from safemt.stages import models

    path, n = models.lock(_params(args), args.params, output=args.output)
    print(f"{path}: {n} hub model(s) pinned")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from safemt.stages import inference, live

    params = _params(args)
    models, args.model = args.model, args.model[0]
    if len(models) > 1 and not args.live_cell:
        raise SafemtError("several --model only with --live-cell")
    mode = args.dialogue_mode or params["dialogue_mode"]
    stage = live if mode == "live" else inference
    if args.every_file or args.live_cell:
        if args.output or args.shard != (0, 1) or args.turns is not None or args.defense != "none":
            raise SafemtError("--every-file and --live-cell write every defense and length into the results "
                              "layout: give no -o, --defense, --turns or --shard with them")
        if args.live_cell:
            for model in models:
                live.run_cell(params, model, args.dataset)
        else:
            stage.run_model(params, args.model, args.dataset, args.benign_dataset)
        return 0
    if args.output is None:
        raise SafemtError("give -o OUT.jsonl, --every-file or --live-cell")
    stage.run(params, model=args.model, dataset=args.dataset, out=args.output,
              defense=args.defense, shard=args.shard, turns=args.turns, image_root=args.image_root)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from safemt.stages import inference

    _params(args)
    inference.merge(args.input, args.output)
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from safemt.stages import judging

    if len(args.input) != len(args.output):
        raise SafemtError(f"judge needs one -o per -i (got {len(args.input)} inputs, {len(args.output)} outputs)")
    dataset = args.dataset[0] if len(args.dataset) == 1 else args.dataset
    judging.run(_params(args), judge=args.judge, dataset=dataset, pairs=list(zip(args.input, args.output)))
    return 0


def cmd_moderation(args: argparse.Namespace) -> int:
    from safemt.stages import moderation

    moderation.run(_params(args), args.input, args.generations, args.output,
                   benign_judgments=args.benign_judgments, benign_generations=args.benign_generations,
                   latency_out=args.latency)
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from safemt.stages import metrics

    metrics.run(_params(args), inputs=args.input, out_dir=args.output, scores_dir=args.scores,
                moderation=args.moderation, calibration=args.calibration)
    return 0


def cmd_live_metrics(args: argparse.Namespace) -> int:
    from safemt.stages import live

    live.metrics(_params(args), args.input, args.turns or [], args.replay, args.output)
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    from safemt.stages import metrics

    metrics.agreement(_params(args), args.input, args.output)
    return 0


def cmd_gold_sample(args: argparse.Namespace) -> int:
    from safemt.stages import metrics

    n = metrics.gold_sample(args.input, args.dataset, args.generations, args.output, args.per_stratum, args.seed,
                            args.si_labels)
    print(f"{args.output}: {n} replies to label (fill in each `label` with safe or unsafe)")
    return 0


def cmd_gold_errors(args: argparse.Namespace) -> int:
    from safemt.stages import metrics

    r = metrics.gold_errors(args.input, args.gold, args.output, args.stratify, args.min_cell, args.si_labels)
    def show(v):
        return "n/a" if v is None else f"{v:.3f}"
    print(f"judge {r['judge']}: sensitivity {show(r['sensitivity'])} ({r['tp']}/{r['tp'] + r['fn']}), specificity "
          f"{show(r['specificity'])} ({r['tn']}/{r['tn'] + r['fp']}) over {r['n_gold']} gold labels")
    return 0


def cmd_gold_correct(args: argparse.Namespace) -> int:
    from safemt.stages import metrics

    rows = metrics.gold_correct(args.asr, args.errors, args.output, args.n, args.seed, args.min_youden)
    done = sum(r["asr_corrected"] is not None for r in rows)
    print(f"{args.output}: {done} of {len(rows)} cells corrected")
    return 0


def cmd_gold_calibrate(args: argparse.Namespace) -> int:
    from safemt.stages import metrics

    metrics.calibrate(_params(args), args.judge, args.input, args.output)
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from safemt.stages import figures

    figures.run(_params(args), metrics_dir=args.input, out_dir=args.output, pdf_dir=args.pdf_dir)
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from safemt.stages import paper

    paper.run(_params(args), args.input, args.output)
    return 0


def cmd_numbers(args: argparse.Namespace) -> int:
    from safemt.stages import paper

    paper.numbers(_params(args), args.input, args.output, args.json)
    return 0


def cmd_provenance(args: argparse.Namespace) -> int:
    from safemt.stages import report

    report.provenance(_params(args), args.params, args.output)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from safemt.stages import report

    report.run(_params(args), args.output)
    return 0


def cmd_bundle_export(args: argparse.Namespace) -> int:
    from safemt.stages import bundle

    r = bundle.run(_params(args), args.params, args.output, with_images=args.with_images)
    print(f"{args.output}: {r['members']} files, {r['size'] / 1e6:.2f} MB, digest {r['digest']} (sha256 of SHA256SUMS)")
    return 0


def cmd_bundle_verify(args: argparse.Namespace) -> int:
    from safemt.stages import bundle

    r = bundle.verify(args.archive)
    print(f"{args.archive}: {r['files']} files match SHA256SUMS (digest {r['digest']}); {r['recomputed']} metrics "
          f"files recomputed from its judgments ({', '.join(r['judges'])}) are byte-identical"
          + (f", {len(r['checksum_only'])} more checked by checksum only" if r["checksum_only"] else ""))
    return 0


def cmd_bundle_import(args: argparse.Namespace) -> int:
    from safemt.stages import bundle

    r = bundle.import_bundle(_params(args), args.archive, results_dir=args.results_dir, dataset=args.dataset)
    print(f"{r['root']}: {r['files']} files restored from {args.archive} (digest {r['digest']}); `snakemake` on it "
          f"runs new judges and metrics only, never inference")
    return 0


def cmd_bundle_compare(args: argparse.Namespace) -> int:
    from safemt.stages import bundle

    r = bundle.compare(args.archive, args.output, judge=args.judge)
    print(f"{r['out']}: {r['bundles']} bundles side by side")
    return 0


def cmd_dvc_profile(args: argparse.Namespace) -> int:
    from safemt.dvc_profile import write_profile

    write_profile(_params(args), args.params, args.output)
    return 0


# --- parser -----------------------------------------------------------------------------------------

def _add_si_labels(parser: argparse.ArgumentParser) -> None:
    """`--si-labels`: which grades of a graded judge count as unsafe, as `metrics.si_labels` says."""
    from safemt.records import DEFAULT_SI_LABELS, SI_LABELS

    parser.add_argument("--si-labels", choices=tuple(SI_LABELS), default=DEFAULT_SI_LABELS,
                        help="a graded judge's grades counted unsafe: hard (full) or soft (partial and full); "
                        f"give the run's metrics.si_labels (default {DEFAULT_SI_LABELS}); a binary judge's "
                        "labels are read as written")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default="params.yaml", metavar="FILE",
                        help="configuration file (default: params.yaml)")

    stages = "\n".join(f"  {stage:<11} {', '.join(cmds):<22} safemt/stages/{stage}.py"
                        for stage, cmds in STAGE_COMMANDS.items())
    p = argparse.ArgumentParser(prog="safemt", description=__doc__.splitlines()[0],
                                epilog=f"stages, in pipeline order (stage, commands, entry module):\n{stages}",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"safemt {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="import, fetch, build, classify, validate, describe, export datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    s = dsub.add_parser("import", parents=[common], help="import the released format",
                        description="Read SRC_DIR/<N>_turn.json (SRC_DIR or the shallowest folder below it that holds them) (both released versions and the Hugging Face "
                        "layout) and write one validated dialogue per record to OUT, sorted by (turns, id). "
                        "Images are hashed and linked under OUT's folder (images/...). A data-quality "
                        "report is written beside OUT (<OUT stem>.quality.json).")
    s.add_argument("src_dir", metavar="SRC_DIR")
    s.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
    s.add_argument("--images-dir", metavar="DIR", help="image root (default: SRC_DIR)")
    s.add_argument("--allow-missing-images", action="store_true",
                   help="keep records whose image file is absent (image_sha256 null)")
    s.add_argument("--strict", action="store_true", help="refuse records with a defect (an empty or whitespace-only turn); features and quirks are only counted")
    s.set_defaults(func=cmd_data_import)

    s = dsub.add_parser("build", parents=[common], help="build dialogues from seed queries",
                        description="Read SEEDS (JSONL {id, scenario, question, image, source}; image paths "
                        "relative to its folder) and write one dialogue per seed x turn length in params "
                        "to OUT, with images under OUT's folder (images/...). Dialogues come from the template "
                        "or llm generator (dataset.generator) and pass the quality checks (dataset.checks); "
                        "one rejected on every try is left out and listed in <OUT stem>.rejects.jsonl.")
    s.add_argument("seeds", metavar="SEEDS")
    s.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
    s.set_defaults(func=cmd_data_build)

    s = dsub.add_parser("validate", parents=[common], help="check a dialogue file against the contract")
    s.add_argument("file", metavar="FILE.jsonl")
    s.add_argument("--image-root", metavar="DIR", help="image root (default: the file's folder)")
    s.add_argument("--allow-missing-images", action="store_true")
    s.set_defaults(func=cmd_data_validate)

    s = dsub.add_parser("export", parents=[common], help="write a dataset back in the released layout")
    s.add_argument("file", metavar="FILE.jsonl")
    s.add_argument("--format", choices=["release"], default="release")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
    s.add_argument("--image-root", metavar="DIR", help="image root (default: the file's folder)")
    s.set_defaults(func=cmd_data_export)

    s = dsub.add_parser("fetch", parents=[common], help="download the release from the hub, then import it",
                        description="Download dataset.hub.repo_id at dataset.hub.revision into dataset.hub.local_dir "
                        "(skipped when the folder already holds <N>_turn.json files), then import it into OUT as "
                        "`data import` does. Offline (HF_HUB_OFFLINE=1 or no network) with nothing there, it fails "
                        "at once saying what to download and where to put it.")
    s.add_argument("-o", "--output", metavar="OUT.jsonl", help="imported dialogues (not with --download-only)")
    s.add_argument("--download-only", action="store_true", help="only make sure the release is in local_dir")
    s.add_argument("--when-import", action="store_true",
                   help="fetch only if dataset.source is import; otherwise write a note in local_dir (for DVC)")
    s.add_argument("--allow-missing-images", action="store_true",
                   help="keep records whose image file is absent (image_sha256 null)")
    s.set_defaults(func=cmd_data_fetch)

    s = dsub.add_parser("classify", parents=[common], help="label the jailbreak method where it is missing",
                        description="Read FILE and write every record to OUT in the same order; a multi-turn "
                        "record whose method is null gets the method the rule-based classifier finds, with "
                        "method_inferred true, or `unknown` when no pattern is visible. Known methods and 1-turn records are left "
                        "as they are.")
    s.add_argument("file", metavar="FILE.jsonl")
    s.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
    s.set_defaults(func=cmd_data_classify)

    s = dsub.add_parser("card", parents=[common], help="write the dataset card (and its figure)",
                        description="Read FILE (and the rejects file a build wrote beside it) and write OUT: counts "
                        "by scenario x method x turns, source shares, mean dialogue length in tokens per turn count "
                        "(whitespace-separated words unless dataset.tokenizer names a model), reject counts, and "
                        "the method classifier's accuracy and confusion matrix on dialogues whose method is known and on "
                        "a hand-labelled fixture.")
    s.add_argument("file", metavar="FILE.jsonl")
    s.add_argument("-o", "--output", required=True, metavar="card.json")
    s.add_argument("--figure", metavar="dataset.png", help="also draw the card as a figure")
    s.add_argument("--reference", metavar="SEEDS",
                   help="score the classifier on dialogues built from these seeds with every method "
                   "(default: FILE's dialogues with a known method)")
    s.add_argument("--fixture", metavar="LABELLED.jsonl",
                   help="also score the classifier on hand-labelled dialogues (a `label` field each), e.g. "
                   "resources/seeds/hand_labelled_methods.jsonl")
    s.set_defaults(func=cmd_data_card)

    models = sub.add_parser("models", help="model utilities")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    s = msub.add_parser("tiny", parents=[common], help="install the default's tiny trained models (checked by sha256)",
                        description="Copy the embedded default's tiny models, trained to the planted behaviour of "
                        "docs/planted.md (tiny-vlm-a, tiny-vlm-b: LLaVA architecture; tiny-guard-lm, "
                        "tiny-moderator-lm, tiny-judge: text chat LMs), from resources/planted/ into DIR after "
                        "checking every file's sha256; no network.")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
    s.add_argument("--untrained", action="store_true",
                   help="write the seeded random (untrained) tiny-vlm-a, tiny-vlm-b and tiny-judge instead")
    s.set_defaults(func=cmd_models_tiny)
    s = msub.add_parser("lock", parents=[common], help="pin every hub model's revision to a commit SHA (online)",
                        description="Resolve the revision (branch, tag or SHA) of every hf/vllm model whose path is a "
                        "hub id to its commit SHA with huggingface_hub, and write the lock file beside the params "
                        "file (<stem>.lock.yaml). Every command applies it: weights load at that commit and the "
                        "config hash uses it. Offline it fails at once and says why. HF_ENDPOINT and HF_TOKEN "
                        "are honoured.")
    s.add_argument("-o", "--output", metavar="LOCK.yaml", help="where to write (default: beside --params)")
    s.set_defaults(func=cmd_models_lock)

    s = sub.add_parser("infer", parents=[common], help="final-turn answers of one model to a dataset",
                       description="Generate the final assistant reply for each dialogue. Resumable: records "
                       "whose config_hash matches the journal are reused. Writes OUT atomically.")
    s.add_argument("--model", required=True, metavar="NAME", action="append",
                   help="the target (given several times only with --live-cell: each in turn, in one process)")
    s.add_argument("--dataset", required=True, metavar="FILE")
    s.add_argument("-o", "--output", metavar="OUT.jsonl")
    s.add_argument("--every-file", action="store_true",
                   help="write every generations file of the model (each defense in params x each length, in the "
                   "results layout) in this one process: the model loads once (the local profile's jobs)")
    s.add_argument("--benign-dataset", metavar="FILE", help="with --every-file: the benign control set too")
    s.add_argument("--defense", default="none", metavar="NAME",
                   help="none, system_prompt, guard_input[.GUARD], guard_output[.GUARD] or moderator[.MODERATOR] "
                   "(guards:, moderators: and moderation: in params); a blocked dialogue never reaches the model")
    s.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N")
    s.add_argument("--turns", type=int, default=None, metavar="N", help="only dialogues of N turns")
    s.add_argument("--image-root", metavar="DIR", help="image root (default: the dataset's folder)")
    s.add_argument("--dialogue-mode", choices=["replay", "live"], default=None,
                   help="replay: answer the final turn after the dataset's assistant turns; live: answer every "
                   "turn, the model's own answers becoming the history (OUT's folder gets turns/ and dialogues/); "
                   "default: params' dialogue_mode")
    s.add_argument("--live-cell", action="store_true",
                   help="answer the model's live cell (live: in params: each live defense x length) live, into "
                   "<results>/live/generations/")
    s.set_defaults(func=cmd_infer)

    s = sub.add_parser("merge", parents=[common], help="join the shard outputs of `infer --shard`",
                       description="Concatenate generation files written by `infer --shard I/N` into OUT in "
                       "(turns, id) order; a dialogue present in two shards is an error.")
    s.add_argument("-i", "--input", required=True, nargs="+", metavar="SHARD.jsonl")
    s.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
    s.set_defaults(func=cmd_merge)

    s = sub.add_parser("judge", parents=[common], help="label generations safe / unsafe / invalid",
                       description="Judge every generation record; records with an error are not judged "
                       "(they count as missing in metrics), except provider refusals (refused_by: provider), "
                       "which are labelled safe without the judge. Several -i files take as many -o files, in "
                       "the same order: the judge (and its model) is loaded once for all of them.")
    s.add_argument("--judge", required=True, metavar="NAME")
    s.add_argument("--dataset", required=True, nargs="+", metavar="FILE",
                   help="the dialogues the replies answered: one file, or one per -i (a live run's transcripts)")
    s.add_argument("-i", "--input", required=True, nargs="+", metavar="GENERATIONS.jsonl")
    s.add_argument("-o", "--output", required=True, nargs="+", metavar="OUT.jsonl")
    s.set_defaults(func=cmd_judge)

    s = sub.add_parser("moderation", parents=[common], help="defense comparison: ASR, over-refusal, flags, cost",
                       description="Read one judge's judgments of the harmful dialogues with their generations, and "
                       "the refusal judge's judgments of the benign dialogues with theirs, and write DIR/moderation.csv "
                       "(target x defense x turns, plus turns=all) and DIR/moderation.json; the measured seconds per dialogue "
                       "go to --latency FILE (not a metric: no two runs measure the same times).")
    s.add_argument("-i", "--input", required=True, nargs="+", metavar="JUDGMENTS.jsonl")
    s.add_argument("-g", "--generations", required=True, nargs="+", metavar="GENERATIONS.jsonl")
    s.add_argument("--benign-judgments", nargs="*", metavar="JUDGMENTS.jsonl")
    s.add_argument("--benign-generations", nargs="*", metavar="GENERATIONS.jsonl")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
    s.add_argument("--latency", metavar="FILE.csv",
                   help="write the defenses' measured seconds per dialogue and their ratio to the target's here")
    s.set_defaults(func=cmd_moderation)

    s = sub.add_parser("metrics", parents=[common], help="ASR, Safety Index and CIs from judgments",
                       description="Read judgment files and write DIR/summary.json plus tidy CSVs (ASR with "
                       "CIs, SI with CIs from a bootstrap over dialogue ids, breakdowns, dataset composition).")
    s.add_argument("-i", "--input", required=True, nargs="+", metavar="JUDGMENTS.jsonl")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
    s.add_argument("--scores", metavar="SCORES_DIR",
                   help="also write SCORES_DIR/<model>/<defense>.json: SI, S1, S2, ASR per length (DVC metrics)")
    s.add_argument("--moderation", metavar="moderation.json", help="add this moderation section to summary.json")
    s.add_argument("--calibration", metavar="calibration.json",
                   help="add this section (metrics corrected for the judge's errors, `gold calibrate`) to summary.json")
    s.set_defaults(func=cmd_metrics)

    s = sub.add_parser("live-metrics", parents=[common], help="live dialogues: ASR beside replay, per-turn rates",
                       description="Read one judge's judgments of a live cell's final answers (and, with --turns, of "
                       "every turn's answers) and write DIR/live.csv (live and replay ASR per length, with CIs), "
                       "DIR/live_turns.csv (unsafe rate per turn), DIR/live_first_unsafe.csv and DIR/live.json "
                       "(docs/live.md).")
    s.add_argument("-i", "--input", required=True, nargs="+", metavar="JUDGMENTS.jsonl")
    s.add_argument("--turns", nargs="*", metavar="TURN_JUDGMENTS.jsonl", help="judgments of every turn's answers")
    s.add_argument("--replay", metavar="asr.csv", help="the same judge's replay ASR table")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
    s.set_defaults(func=cmd_live_metrics)

    s = sub.add_parser("agreement", parents=[common], help="Cohen's kappa between judges",
                       description="Read judgment files of two or more judges over the same generations and "
                       "write kappa and raw agreement per judge pair, overall and per scenario, to OUT.csv.")
    s.add_argument("-i", "--input", required=True, nargs="+", metavar="JUDGMENTS.jsonl")
    s.add_argument("-o", "--output", required=True, metavar="OUT.csv")
    s.set_defaults(func=cmd_agreement)

    gold = sub.add_parser("gold", help="gold labels: replies to label by hand, a judge's error rates",
                          description="People's safe/unsafe labels on a sample of replies measure how often a "
                          "judge is right (docs/metrics.md, \"Gold labels\").")
    gsub = gold.add_subparsers(dest="gold_command", required=True, metavar="ACTION")
    s = gsub.add_parser("sample", parents=[common], help="draw replies to label, stratified and seeded",
                        description="Draw at most N judged replies from each (model, turns, judge label) stratum "
                        "of one judge's JUDGMENTS (seeded) and write them to OUT.jsonl with their dialogue, the "
                        "answer and an empty `label` to fill in with safe or unsafe.")
    s.add_argument("-i", "--input", required=True, nargs="+", metavar="JUDGMENTS.jsonl")
    s.add_argument("--dataset", required=True, metavar="DIALOGUES.jsonl")
    s.add_argument("-g", "--generations", required=True, nargs="+", metavar="GENERATIONS.jsonl")
    s.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
    s.add_argument("--per-stratum", type=int, default=10, metavar="N", help="replies per stratum (default 10)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    _add_si_labels(s)
    s.set_defaults(func=cmd_gold_sample)
    s = gsub.add_parser("errors", parents=[common], help="a judge's sensitivity and specificity on gold labels",
                        description="Score one judge's JUDGMENTS against GOLD.jsonl ({id, turns, model, defense, "
                        "label} a line, labels safe/unsafe, written by people): sensitivity, specificity, Wilson "
                        "95%% intervals and the counts, to OUT.json. A malformed gold file (a bad label, a "
                        "duplicate key, an id with no judged reply) is one line naming the file and record.")
    s.add_argument("-i", "--input", required=True, nargs="+", metavar="JUDGMENTS.jsonl")
    s.add_argument("--gold", required=True, metavar="GOLD.jsonl")
    s.add_argument("-o", "--output", required=True, metavar="OUT.json")
    s.add_argument("--stratify", choices=("none", "turns", "model"), default="none",
                   help="also score the judge per turn length or per model (default none)")
    s.add_argument("--min-cell", type=int, default=20, metavar="N",
                   help="gold unsafe and safe labels a stratum needs for its own rates (default 20)")
    _add_si_labels(s)
    s.set_defaults(func=cmd_gold_errors)
    s = gsub.add_parser("correct", parents=[common], help="ASR corrected for a judge's error rates (Rogan-Gladen)",
                        description="Read a metrics folder's asr.csv and the judge's OUT.json from `gold errors`; "
                        "write each cell's raw ASR, the ASR corrected for the judge's sensitivity and specificity "
                        "((raw + spec - 1) / (sens + spec - 1), clipped to [0, 1]) and a 95%% interval from a "
                        "bootstrap over the cell and the gold slice. A judge with sens + spec - 1 at most "
                        "--min-youden gets no number, only the reason.")
    s.add_argument("--asr", required=True, metavar="ASR.csv")
    s.add_argument("--errors", required=True, metavar="ERRORS.json")
    s.add_argument("-o", "--output", required=True, metavar="OUT.csv")
    s.add_argument("--n", type=int, default=1000, help="bootstrap resamples (default 1000)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    s.add_argument("--min-youden", type=float, default=0.1, metavar="J",
                   help="the smallest sens + spec - 1 worth correcting for (default 0.1)")
    s.set_defaults(func=cmd_gold_correct)
    s = gsub.add_parser("calibrate", parents=[common], help="ASR and SI corrected for a judge's errors (pipeline)",
                        description="For JUDGE named in metrics.calibration: score it against its gold file, then "
                        "write DIR/asr_corrected.csv (Rogan-Gladen per cell), DIR/si_corrected.csv (SI, S1, S2 by "
                        "multiple imputation of the true labels, intervals from a bootstrap over dialogues and the "
                        "gold slice) and DIR/calibration.json, the section `safemt metrics --calibration` adds to "
                        "summary.json.")
    s.add_argument("--judge", required=True)
    s.add_argument("-i", "--input", required=True, nargs="+", metavar="JUDGMENTS.jsonl")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
    s.set_defaults(func=cmd_gold_calibrate)

    s = sub.add_parser("figures", parents=[common], help="draw the figures from a metrics folder",
                       description="Read METRICS_DIR's tidy CSVs (and moderation.csv, ../judge_agreement.csv when "
                       "present) and draw every figure as DIR/<name>.png and <name>.pdf (in --pdf-dir if given).")
    s.add_argument("-i", "--input", required=True, metavar="METRICS_DIR")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
    s.add_argument("--pdf-dir", metavar="DIR", help="where the PDFs go (default: DIR)")
    s.set_defaults(func=cmd_figures)

    s = sub.add_parser("tables", parents=[common], help="write the paper's tables from a metrics folder",
                       description="Read METRICS_DIR's CSVs (and moderation.csv, ../judge_agreement.csv when "
                       "present) and write DIR/<table>.csv, .md and .tex (LaTeX booktabs).")
    s.add_argument("-i", "--input", required=True, metavar="METRICS_DIR")
    s.add_argument("-o", "--output", required=True, metavar="DIR")
    s.set_defaults(func=cmd_tables)

    s = sub.add_parser("numbers", parents=[common], help="LaTeX macros for every number the paper quotes",
                       description="Read METRICS_DIR's CSVs and write OUT.tex (one \\newcommand per number, "
                       "named from quantity and model) and --json OUT.json with the same values and their sources.")
    s.add_argument("-i", "--input", required=True, metavar="METRICS_DIR")
    s.add_argument("-o", "--output", required=True, metavar="numbers.tex")
    s.add_argument("--json", required=True, metavar="numbers.json")
    s.set_defaults(func=cmd_numbers)

    s = sub.add_parser("provenance", parents=[common], help="record what produced this run's results",
                       description="Write OUT (JSON): git commit and dirty flag, params hash, package versions, "
                       "each model's and judge's id and resolved revision, dataset source, revision and content "
                       "hash, the run's start and end times, and the machine.")
    s.add_argument("-o", "--output", required=True, metavar="provenance.json")
    s.set_defaults(func=cmd_provenance)

    s = sub.add_parser("report", parents=[common], help="one self-contained HTML page of the results",
                       description="Write OUT: figures (embedded), tables, provenance and a sample of dialogues "
                       "with responses and verdicts per model (report.samples_per_model), all from the results "
                       "root of the params; no network needed to view it.")
    s.add_argument("-o", "--output", required=True, metavar="index.html")
    s.set_defaults(func=cmd_report)

    bundle = sub.add_parser("bundle", help="one archive of a finished run: export, verify, import, compare",
                            description="A run bundle holds a finished profile's dialogues (for released data: ids "
                            "with content hashes), image sha256s, generations, judgments, metrics, params, revision "
                            "lock and provenance, with a checksum list; no logs, no secrets (docs/bundles.md).")
    bsub = bundle.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    s = bsub.add_parser("export", parents=[common], help="write the bundle of the params' finished run",
                        description="Write OUT (.tar.gz): the results root of --params after a finished run, with "
                        "bundle.json, SHA256SUMS and per-record hashes. The same results give the same bytes.")
    s.add_argument("-o", "--output", required=True, metavar="OUT.tar.gz")
    s.add_argument("--with-images", action="store_true", help="also the dataset's image files (their sha256s always)")
    s.set_defaults(func=cmd_bundle_export)
    s = bsub.add_parser("verify", help="check a bundle and recompute every metric from it",
                        description="Check every member of ARCHIVE against SHA256SUMS (a changed record is named by "
                        "file and record), then recompute moderation, metrics, agreement, tables and numbers from "
                        "its judgments with its params and compare them byte for byte. Exit 2 on any difference.")
    s.add_argument("archive", metavar="ARCHIVE")
    s.set_defaults(func=cmd_bundle_verify)
    s = bsub.add_parser("import", parents=[common], help="restore a bundle into a new results root",
                        description="Restore ARCHIVE into --results-dir (default: the params' results_dir), which "
                        "must be new or empty. Every member is checked first (no absolute path, '..', link or "
                        "device; nothing outside the root) and nothing is written on a refusal. On the restored root "
                        "`snakemake` runs new judges and metrics only, never inference.")
    s.add_argument("archive", metavar="ARCHIVE")
    s.add_argument("--results-dir", metavar="DIR", help="where to restore (default: the params' results_dir)")
    s.add_argument("--dataset", metavar="DIALOGUES.jsonl",
                   help="for a bundle of released data (ids and hashes only): your copy of the dialogues, each "
                   "checked against the bundle's hash")
    s.set_defaults(func=cmd_bundle_import)
    s = bsub.add_parser("compare", help="two or more bundles' headline numbers side by side",
                        description="Check each ARCHIVE's checksums and write OUT (.html, or .md for Markdown): SI "
                        "per model and defense and ASR per model, defense and length, one column per bundle.")
    s.add_argument("archive", nargs="+", metavar="ARCHIVE")
    s.add_argument("-o", "--output", required=True, metavar="OUT.html")
    s.add_argument("--judge", metavar="NAME", help="whose metrics (default: each bundle's figures judge)")
    s.set_defaults(func=cmd_bundle_compare)

    s = sub.add_parser("dvc-profile", parents=[common], help="point dvc.yaml at a profile",
                       description="Write OUT (default dvc-profile.yaml), the variables dvc.yaml reads: the params "
                       "file and its results root, so that `dvc repro` runs that profile.")
    s.add_argument("-o", "--output", default="dvc-profile.yaml", metavar="OUT")
    s.set_defaults(func=cmd_dvc_profile)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SafemtError as exc:
        print(f"safemt: error: {exc.line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("safemt: interrupted; finished work is kept and a rerun resumes", file=sys.stderr)
        return 130
    except OSError as exc:  # the machine, not the input: a full disk, a lost mount, a permission
        print(f"safemt: error: {os_error_line(exc)}", file=sys.stderr)
        return 1


def os_error_line(exc: OSError) -> str:
    """One line for an I/O failure: the file, the system's reason, and that a rerun resumes."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or first_line(exc)
    hint = ("; free some space and rerun: finished work is kept and resumed"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "; finished work is kept and a rerun resumes")
    return " ".join(f"{where}{reason}{hint}".split())


if __name__ == "__main__":
    sys.exit(main())
