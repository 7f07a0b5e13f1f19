"""End to end: the embedded default under Snakemake and DVC, in a copy of the working tree.

One module-scoped run (Snakemake, then a clean `dvc repro`) is shared by every assertion; the tests
after it change the checkout in file order (delete figures, push/pull, experiments), each leaving it
reproduced again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from safemt.layout import Layout, figure_files, table_files
from tests.planted_check import known_answer_failures
from tests.support import copy_checkout, run


def read_jsonl_file(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

pytestmark = pytest.mark.slow
LAY = Layout()
# What a run writes but DVC does not hash: they record when and where the run happened.
UNHASHED = ("results/provenance.json", "results/report/", "results/logs/", "results/timings/")
# Every file DVC versions is a pure function of inputs and params: measured times are in the timings
# beside each generations file (.journal/, outside DVC's hashes) and in results/timings/, so the
# committed dvc.lock is exactly what a clean repro writes, with no exemption.


def _stages(proc: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", proc.stdout + proc.stderr)


def _digests(root: Path) -> dict[str, str]:
    """Every result file DVC versions: not the run records (UNHASHED) nor the journals (.dvcignore)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "results").rglob("*")) if p.is_file()
            and not str(p.relative_to(root)).startswith(UNHASHED) and ".journal" not in p.parts}


@pytest.fixture(scope="module")
def pipeline(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A clean clone reproduced by DVC (which runs Snakemake per stage), then Snakemake on top of it."""
    checkout = copy_checkout(repo_root, tmp_path_factory.mktemp("checkout"))
    out = {"checkout": checkout}
    out["repro"] = run(["dvc", "repro"], checkout)
    committed = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=checkout, capture_output=True, text=True,
                               check=True).stdout
    out["lock_committed"] = yaml.safe_load(committed)
    out["lock_repro"] = yaml.safe_load((checkout / "dvc.lock").read_text())
    out["second"] = run(["dvc", "repro"], checkout)
    # DVC re-copies outputs from its cache (new mtimes), so Snakemake may redo a quick step once;
    # a second Snakemake run must then find nothing to do, and DVC must still see every output unchanged.
    run(["snakemake", "--cores", "2"], checkout)
    out["snakemake"] = run(["snakemake", "--cores", "2"], checkout)
    summary = checkout / "results/metrics/keyword/summary.json"
    out["summary"] = summary.read_bytes()
    shutil.rmtree(checkout / "results/metrics")
    shutil.rmtree(checkout / "results/scores")
    out["metrics_again"] = run(["snakemake", "--cores", "2", "stage_metrics"], checkout)
    run(["snakemake", "--report", "report.html"], checkout)
    out["report"] = (checkout / "report.html").read_text(encoding="utf-8")
    out["status"] = run(["dvc", "status"], checkout).stdout
    out["digests"] = _digests(checkout)
    return out


def test_dvc_then_snakemake_from_clean(pipeline: dict) -> None:
    checkout = pipeline["checkout"]
    s = json.loads(pipeline["summary"])
    assert set(s["models"]) == {"tiny-vlm-a", "tiny-vlm-b"}
    for cell in (s["models"][m]["none"] for m in s["models"]):
        assert {"si", "s1", "s2", "asr"} <= set(cell) and set(cell["asr"]) == {"1", "2", "4", "6", "8"}
    assert _stages(pipeline["second"]) == [], pipeline["second"].stdout
    snake = pipeline["snakemake"]
    assert "Nothing to be done" in snake.stdout + snake.stderr, snake.stderr[-3000:]
    summary = checkout / "results/metrics/keyword/summary.json"
    assert summary.read_bytes() == pipeline["summary"], "a rerun must give a byte-identical summary"
    assert "Data and pipelines are up to date" in pipeline["status"], pipeline["status"]


def test_the_default_run_recovers_its_planted_behaviour(pipeline: dict) -> None:
    """Known answer, end to end: every cell of the default's ASR, SI, moderation and agreement tables is
    what docs/planted.md's rules predict for the built dataset (tests/planted_oracle.py)."""
    failures = known_answer_failures(pipeline["checkout"] / "results")
    assert not failures, "\n".join(failures[:40])


def test_the_known_answer_check_fails_when_a_stage_misbehaves(pipeline: dict, tmp_path: Path) -> None:
    """Each mistake a stage could make, applied to a copy of the finished run, is caught."""
    results = pipeline["checkout"] / "results"
    baseline = set(known_answer_failures(results))
    for mutate in MUTATIONS:
        mutated = tmp_path / mutate.__name__
        shutil.copytree(results, mutated, symlinks=True)
        mutate(mutated)
        assert set(known_answer_failures(mutated)) - baseline, f"{mutate.__name__} went unnoticed"


def _swap_models(root: Path) -> None:
    """Inference wrote one target's answers under the other's name."""
    a, b = root / "judgments", root / "metrics"
    for base in (a / "keyword", a / "tiny-llm"):
        (base / "tiny-vlm-a").rename(base / "swap")
        (base / "tiny-vlm-b").rename(base / "tiny-vlm-a")
        (base / "swap").rename(base / "tiny-vlm-b")
    for judge in ("keyword", "tiny-llm"):
        for name in ("asr.csv", "si.csv"):
            path = b / judge / name
            text = path.read_text().replace("tiny-vlm-a", "@").replace("tiny-vlm-b", "tiny-vlm-a").replace("@", "tiny-vlm-b")
            path.write_text(text)


def _drop_a_length(root: Path) -> None:
    """A length went missing from the metrics."""
    path = root / "metrics" / "keyword" / "asr.csv"
    path.write_text("".join(line for line in path.read_text().splitlines(True) if ",6," not in line))


def _mislabel_a_verdict(root: Path) -> None:
    """One judge's verdicts on one file came out flipped."""
    path = root / "judgments" / "tiny-llm" / "tiny-vlm-a" / "none" / "4.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        r["label"] = {"safe": "unsafe", "unsafe": "safe"}.get(r["label"], r["label"])
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _misalign_guard_batch(root: Path) -> None:
    """The guard's verdicts went to the neighbouring dialogues: labels shifted by one record."""
    for judge in ("keyword", "tiny-llm"):
        path = root / "judgments" / judge / "tiny-vlm-a" / "guard_input" / "4.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        labels = [r["label"] for r in records]
        for r, label in zip(records, labels[1:] + labels[:1]):
            r["label"] = label
        path.write_text("".join(json.dumps(r) + "\n" for r in records))


MUTATIONS = (_swap_models, _drop_a_length, _mislabel_a_verdict, _misalign_guard_batch)


def test_committed_dvc_lock_is_what_a_clean_repro_writes(pipeline: dict) -> None:
    """Every commit that changes code or params must commit the matching dvc.lock, all of it."""
    committed, repro = pipeline["lock_committed"]["stages"], pipeline["lock_repro"]["stages"]
    assert set(committed) == set(repro)
    for stage in committed:
        assert committed[stage] == repro[stage], f"dvc.lock stage {stage!r} differs after a clean `dvc repro`"


def test_every_paper_output_is_regenerated(pipeline: dict) -> None:
    checkout = pipeline["checkout"]
    for name in figure_files():
        assert (checkout / LAY.figure(name)).stat().st_size > 1000, name
    for name in table_files():
        assert (checkout / LAY.table(name)).is_file(), name
    tex = (checkout / LAY.numbers_tex).read_text()
    assert "\\newcommand{\\siTinyVlmA}" in tex and "\\newcommand{\\asrEightTinyVlmB}" in tex
    html = (checkout / LAY.report).read_text()
    # Every figure drawn (the moderation figure too, since the default compares defenses) is embedded.
    drawn = sorted((checkout / LAY.figures_dir).glob("*.png"))
    assert len(drawn) >= len(figure_files()) // 2
    assert html.count("data:image/png;base64,") == len(drawn)
    # the defenses' measured times: written apart from the metrics, shown in the report
    times = (checkout / LAY.moderation_latency.format(judge="keyword")).read_text().splitlines()
    assert times[0].startswith("judge,target,defense,turns,dialogues,added_latency_s") and len(times) > 1
    assert 'id="table-moderation_latency"' in html
    prov = json.loads((checkout / LAY.provenance).read_text())
    assert len(prov["git"]["commit"]) == 40 and prov["targets"]["tiny-vlm-a"]["resolved"].startswith("folder-sha256:")


def test_snakemake_report_has_a_caption_per_figure(pipeline: dict) -> None:
    from safemt.figures.plots import CAPTIONS

    for name in figure_files():
        if name.endswith(".png"):
            assert name in pipeline["report"]
            assert CAPTIONS[name[:-4]].split(",")[0] in pipeline["report"], name


def test_dvc_metrics_show_prints_one_row_per_model(pipeline: dict) -> None:
    shown = run(["dvc", "metrics", "show", "--md"], pipeline["checkout"]).stdout
    rows = [line for line in shown.splitlines() if line.startswith("| results/scores/")]
    params = yaml.safe_load((pipeline["checkout"] / "params.yaml").read_text())
    want = sorted(f"results/scores/{j}/{m}/{d}.json" for j in params["metrics"]["judges"] for m in params["targets"]
                  for d in params["defenses"])
    assert sorted(r.split("|")[1].strip() for r in rows) == want
    header = shown.splitlines()[0]
    for col in ("si", "s1", "s2", "asr_1", "asr_8"):
        assert f" {col} " in header, header
    plots = json.loads(run(["dvc", "plots", "show", "--json"], pipeline["checkout"]).stdout)
    assert not plots.get("errors"), plots.get("errors")
    images = sum(1 for v in plots["data"].values() for p in v if p["type"] == "image")
    # every PNG drawn is an image plot: the five paper figures, plus the moderation figure when the
    # run compares defenses (the default does)
    drawn = list((pipeline["checkout"] / LAY.figures_dir).glob("*.png"))
    assert images == len(drawn) >= len(figure_files()) // 2


def test_deleting_figures_reruns_only_the_figures(pipeline: dict) -> None:
    checkout = pipeline["checkout"]
    shutil.rmtree(checkout / LAY.figures_dir)
    proc = run(["dvc", "repro"], checkout)
    out = proc.stdout + proc.stderr
    # DVC restores them from its cache (or redraws them); no other stage runs
    assert set(_stages(proc)) <= {"figures"} and "'figures'" in out and "'figures' didn't change" not in out, out
    assert _digests(checkout) == pipeline["digests"]
    # and drawn again from the metrics alone, byte-identical
    shutil.rmtree(checkout / LAY.figures_dir)
    drawn = run(["snakemake", "--cores", "2", "stage_figures"], checkout)
    jobs = set(re.findall(r"^(?:local)?rule (\w+):", drawn.stdout + drawn.stderr, re.M))
    assert jobs <= {"figures", "stage_figures"} and "figures" in jobs, jobs
    assert _digests(checkout) == pipeline["digests"]


def test_experiments_rerun_only_what_their_param_touches(pipeline: dict) -> None:
    checkout = pipeline["checkout"]
    seed = run(["dvc", "exp", "run", "-n", "seed1", "-S", "metrics.bootstrap.seed=1"], checkout)
    ran = _stages(seed)
    assert {"metrics", "figures"} <= set(ran), ran
    assert not {"models", "dataset", "inference", "judging"} & set(ran), ran
    assert "rule infer:" not in seed.stdout + seed.stderr and "rule judge:" not in seed.stdout + seed.stderr
    judge = run(["dvc", "exp", "run", "-n", "phrases", "-S", '+judges.keyword.phrases=["as an ai"]'], checkout)
    ran = _stages(judge)
    assert {"judging", "metrics", "figures"} <= set(ran), ran
    assert not {"models", "dataset", "inference"} & set(ran), ran
    assert "rule infer:" not in judge.stdout + judge.stderr and "rule judge:" in judge.stdout + judge.stderr
    shown = run(["dvc", "exp", "show", "--md", "--no-pager"], checkout).stdout
    assert "seed1" in shown and "phrases" in shown


def test_push_then_pull_from_a_directory_remote(pipeline: dict, tmp_path: Path) -> None:
    """After the experiments: back to the committed params, reproduce, push, delete, pull."""
    checkout = pipeline["checkout"]
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=checkout, check=True)
    run(["dvc", "repro"], checkout)
    before = _digests(checkout)
    run(["dvc", "remote", "add", "-d", "--local", "store", str(tmp_path / "remote")], checkout)
    run(["dvc", "push"], checkout)
    shutil.rmtree(checkout / "results")
    run(["dvc", "pull"], checkout)
    assert _digests(checkout) == before
    # the journals are not versioned (.dvcignore): a pull brings back the outputs, not the resume state
    assert not list((checkout / "results").rglob(".journal"))
    assert _stages(run(["dvc", "repro"], checkout)) == []


def test_moderation_table_is_complete_and_a_moderation_param_reruns_only_its_defense(pipeline: dict) -> None:
    _moderation_table_is_complete(pipeline["checkout"])
    _changing_a_moderation_param_reruns_only_its_defense(pipeline["checkout"])


def _moderation_table_is_complete(checkout: Path) -> None:
    """Every target x defense x turn length (and the pooled row) is in moderation.csv, with over-refusal."""
    import csv

    with open(checkout / "results/metrics/keyword/moderation.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cells = {(r["target"], r["defense"], r["turns"]) for r in rows}
    assert cells == {(m, d, t) for m in ("tiny-vlm-a", "tiny-vlm-b")
                     for d in ("none", "system_prompt", "guard_input", "moderator")
                     for t in ("1", "2", "4", "6", "8", "all")}
    assert all(r["over_refusal"] != "" and int(r["benign_n"]) > 0 for r in rows)
    s = json.loads((checkout / "results/metrics/keyword/summary.json").read_text())
    assert set(s["moderation"]["table"]["tiny-vlm-a"]) == {"none", "system_prompt", "guard_input", "moderator"}


def _changing_a_moderation_param_reruns_only_its_defense(checkout: Path) -> None:
    """The default runs one inference job per target (workflow.inference_jobs: model): a moderation param
    replans those jobs, and their journals regenerate exactly the moderator's answers; nothing upstream
    of inference is planned. Back on the committed params, the journals give the first answers again."""
    params = checkout / "params.yaml"
    original = params.read_text()
    answers = {p: p.read_bytes() for p in sorted((checkout / "results/generations").glob("*/*/*.jsonl"))}
    params.write_text(original.replace("policy_placement: system", "policy_placement: last_user"))
    try:
        plan = run(["snakemake", "-n"], checkout).stdout
        assert not any(w in plan for w in ("rule dataset:", "rule tiny_models:", "rule benign_dataset:"))
        assert "infer_model" in plan
        run(["snakemake", "--cores", "2", "stage_inference"], checkout)
        changed = {p for p, data in answers.items() if p.read_bytes() != data}
        assert changed and {p.parent.name for p in changed} == {"moderator"}, sorted(map(str, changed))
    finally:
        params.write_text(original)
        run(["snakemake", "--cores", "2"], checkout)
    assert all(p.read_bytes() == data for p, data in answers.items()), "the journals give the first answers back"


def test_a_bundle_of_the_default_round_trips_and_a_new_judge_runs_no_inference(pipeline: dict, repo_root: Path,
                                                                                tmp_path: Path) -> None:
    """Export the finished default, verify it, import it into a fresh checkout whose params add a judge:
    the dry run plans judging and metrics, no dataset or inference job; the new judge labels the
    imported generations."""
    checkout = pipeline["checkout"]  # the finished default run
    archive = tmp_path / "default.tar.gz"
    t0 = time.perf_counter()
    run(["safemt", "bundle", "export", "-o", str(archive)], checkout)
    t_export = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(["safemt", "bundle", "verify", str(archive)], checkout)
    t_verify = time.perf_counter() - t0

    fresh = copy_checkout(repo_root, tmp_path / "fresh")
    params = yaml.safe_load((fresh / "params.yaml").read_text())
    params["judges"]["kw-new"] = {"kind": "keyword", "phrases": ["i cannot", "i won't"]}
    params["metrics"]["judges"].append("kw-new")
    (fresh / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    t0 = time.perf_counter()
    run(["safemt", "bundle", "import", str(archive)], fresh)
    t_import = time.perf_counter() - t0
    assert not (fresh / "resources" / "models").exists()  # no target model anywhere
    plan = run(["snakemake", "-n"], fresh).stdout
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.split("Job stats:")[1], re.M))
    assert jobs.get("judge") == "2" and jobs.get("metrics") == "1" and "moderation" in jobs, plan[-3000:]
    forbidden = [j for j in jobs if j.startswith(("infer", "merge", "tiny_models", "dataset", "benign_dataset",
                                                  "fetch_release", "bundle_"))]
    assert not forbidden, forbidden
    run(["snakemake", "--cores", "2", "results/metrics/kw-new/summary.json"], fresh)
    for gen in sorted((fresh / "results" / "generations" / "tiny-vlm-a" / "none").glob("[0-9]*.jsonl")):
        judged = fresh / "results" / "judgments" / "kw-new" / "tiny-vlm-a" / "none" / gen.name
        assert [(r["id"], r["turns"]) for r in read_jsonl_file(judged)] == [(r["id"], r["turns"]) for r in read_jsonl_file(gen)]
    assert (checkout / "results" / "generations").exists()
    print(f"bundle of the default: {archive.stat().st_size / 1e6:.2f} MB; export {t_export:.1f} s, "
          f"verify {t_verify:.1f} s, import {t_import:.1f} s")


def test_gold_labels_add_corrected_metrics_beside_the_raw_ones(pipeline: dict) -> None:
    """metrics.calibration with gold labels from the planted truth: only the calibrate job and what reads
    metrics are planned; the raw numbers stay as they were, the corrected ones appear in summary.json,
    the CSVs, the figure, numbers.json and the report; the corrected ASR interval covers the planted ASR
    where the raw rate misses it. Without the gold labels again, the outputs are the committed ones."""
    import csv

    from tests import planted_oracle as oracle

    checkout = pipeline["checkout"]
    results = checkout / "results"
    want = oracle.expected(results / "dataset")
    truth = sorted((target, defense, i, t, v) for (judge, target, defense), labels in want["labels"].items()
                   if judge == "keyword" for (i, t), v in labels.items())
    gold = checkout / "resources/gold/tiny-llm.jsonl"
    gold.parent.mkdir(parents=True, exist_ok=True)
    gold.write_text("".join(json.dumps({"id": i, "turns": t, "model": m, "defense": d, "label": v}) + "\n"
                            for m, d, i, t, v in truth[::3]))
    params = checkout / "params.yaml"
    original = params.read_text()
    before = {p: p.read_bytes() for p in sorted((results / "metrics").rglob("*")) if p.is_file()}
    config = yaml.safe_load(original)
    config["metrics"]["calibration"] = {"tiny-llm": {"gold": "resources/gold/tiny-llm.jsonl", "stratify": "turns"}}
    config["figures"]["judge"] = "tiny-llm"
    params.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        plan = run(["snakemake", "-n"], checkout).stdout
        assert "rule calibrate:" in plan
        assert not any(f"rule {r}:" in plan for r in ("infer_model", "judge", "moderation", "dataset")), plan
        run(["snakemake", "--cores", "2"], checkout)
        mdir = results / "metrics/tiny-llm"
        summary = json.loads((mdir / "summary.json").read_text())
        raw = json.loads(before[mdir / "summary.json"])
        assert summary["models"] == raw["models"], "the raw numbers do not move"
        assert summary["provenance"]["metrics_params_hash"] == raw["provenance"]["metrics_params_hash"]
        section = summary["calibration"]
        assert section["errors"]["stratify"] == "turns" and section["n_gold"] == len(truth[::3])
        with open(mdir / "asr_corrected.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        covered = missed_raw = 0
        for r in rows:
            planted = want["asr"][("keyword", r["model"], r["defense"], int(r["turns"]))]
            covered += float(r["ci_low"]) - 1e-9 <= planted <= float(r["ci_high"]) + 1e-9
            missed_raw += abs(float(r["asr"]) - planted) > 0.05
        assert covered >= 0.9 * len(rows) and missed_raw > 0, (covered, missed_raw, len(rows))
        assert (results / "figures/asr_corrected.png").stat().st_size > 10_000
        numbers = json.loads((results / "paper/numbers.json").read_text())["numbers"]
        assert "corrSiTinyVlmA" in numbers and "corrAsrFourTinyVlmA" in numbers
        assert 'data-corrected="1"' in (results / "report/index.html").read_text(encoding="utf-8")
        # the corrected rates read the metrics options too: changing one replans the calibrate job
        config["metrics"]["provider_refusals"] = "missing"
        params.write_text(yaml.safe_dump(config, sort_keys=False))
        replan = run(["snakemake", "-n"], checkout).stdout
        assert "rule calibrate:" in replan and "rule metrics:" in replan, replan[-3000:]
    finally:
        params.write_text(original)
        gold.unlink()
        run(["snakemake", "--cores", "2"], checkout)
    for path in ("asr_corrected.csv", "si_corrected.csv", "calibration.json"):
        (results / "metrics/tiny-llm" / path).unlink(missing_ok=True)  # left by the calibrate job
    (results / "figures/asr_corrected.png").unlink(missing_ok=True)
    (results / "paper/figures/asr_corrected.pdf").unlink(missing_ok=True)
    after = {p: p.read_bytes() for p in sorted((results / "metrics").rglob("*")) if p.is_file()}
    assert after == before, "without gold labels, every metrics file is byte-identical to before"
