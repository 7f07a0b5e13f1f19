"""A results tree from synthetic judgments, written by the real `safemt metrics` and `agreement`:
three targets, 17 scenarios, four methods, five lengths, two judges, and a synthetic moderation.csv
in the column contract of the shared decisions (issue 10 writes the real one)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import yaml

from safemt.cli import main
from safemt.scenarios import SCENARIOS
from safemt.files import write_jsonl

K = [1, 2, 4, 6, 8]
METHODS = ["escalation", "roleplay", "in_context", "image_anchor"]
TARGETS = {"vlm-safe": 0.05, "vlm-mid": 0.2, "vlm-weak": 0.4}
MODERATION_COLUMNS = ["judge", "target", "defense", "turns", "n", "asr", "asr_lo", "asr_hi", "asr_reduction",
                      "benign_n", "over_refusal", "over_refusal_lo", "over_refusal_hi", "flag_rate",
                      "sensitive_rate", "parse_failures"]


def synthetic_judgments(judge: str, model: str, base: float, seed: int, ids_per_scenario: int = 3,
                        flip: float = 0.0) -> list[dict]:
    """ASR rising with turns; `flip` disagrees with the first judge on that share of items."""
    rng = random.Random(f"{model}-{seed}")
    flips = random.Random(f"{model}-{judge}")
    recs = []
    for s_i, scenario in enumerate(SCENARIOS):
        folder = scenario.lower().replace(" ", "_")
        for n in range(ids_per_scenario):
            id_ = f"own_{folder}_{n}"
            for k in K:
                method = None if k == 1 else METHODS[(s_i + n + k) % 4]
                p = min(0.95, base + 0.06 * k + 0.01 * (s_i % 5))
                label = "unsafe" if rng.random() < p else "safe"
                if flips.random() < flip:
                    label = "safe" if label == "unsafe" else "unsafe"
                recs.append({"id": id_, "turns": k, "model": model, "defense": "none", "judge": judge,
                             "label": label, "raw": "x", "scenario": scenario, "method": method})
    return recs


HOSTILE = '<script>document.body.setAttribute("data-pwned", "1")</script><img src=x onerror="alert(1)">'


def write_generations(res: Path, model: str, recs: list[dict]) -> None:
    """Dialogues (one carrying markup that must show as text) and responses at the layout's paths."""
    dialogues = []
    for r in recs:
        if model == next(iter(TARGETS)):
            msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} of {r['id']}"}
                    for i in range(2 * r["turns"] - 1)]
            msgs[-1]["content"] = f"final question {HOSTILE}"
            dialogues.append({"id": r["id"], "turns": r["turns"], "scenario": r["scenario"], "method": r["method"],
                              "question": f"q {HOSTILE}", "messages": msgs})
    if dialogues:
        write_jsonl(res / "dataset" / "dialogues.jsonl", dialogues)
    for k in K:
        write_jsonl(res / "generations" / model / "none" / f"{k}.jsonl",
                    [{"id": r["id"], "turns": k, "method": r["method"], "model": model, "defense": "none", "error": None,
                      "response": f"reply {HOSTILE}"} for r in recs if r["turns"] == k])


def write_moderation(path: Path, judge: str) -> None:
    rows = []
    for target, base in TARGETS.items():
        for defense, factor, over in (("none", 1.0, 0.02), ("guard_input", 0.7, 0.08), ("moderator", 0.35, 0.05)):
            asr = round(min(1.0, base + 0.3) * factor, 4)
            for turns in ["all", *K]:
                rows.append({"judge": judge, "target": target, "defense": defense, "turns": turns, "n": 85,
                             "asr": asr, "asr_lo": round(asr * 0.8, 4), "asr_hi": round(min(1, asr * 1.2), 4),
                             "asr_reduction": "" if defense == "none" else round(1 - factor, 4),
                             "benign_n": 40, "over_refusal": over, "over_refusal_lo": round(over / 2, 4),
                             "over_refusal_hi": round(over * 2, 4), "flag_rate": round(1 - factor, 4),
                             "sensitive_rate": round(0.1 * factor, 4) if defense == "moderator" else "",
                             "parse_failures": 0})
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, MODERATION_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def build_results(root: Path, repo_root: Path, moderation: bool = True, judges=("keyword", "llm")) -> dict:
    """root/params.yaml and root/results/{judgments,metrics,scores}; returns paths."""
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["targets"] = list(TARGETS)
    params["models"].update({t: {"backend": "openai", "model_id": t, "base_url": "http://127.0.0.1:9/v1"}
                             for t in TARGETS})
    params["judges"] = {j: {"kind": "keyword"} for j in judges}
    params["metrics"]["judges"] = list(judges)
    params["figures"] = {"judge": judges[0]}
    params["results_dir"] = "results"
    cfg = root / "params.yaml"
    cfg.write_text(yaml.safe_dump(params))
    res = root / "results"
    all_files = []
    for j_i, judge in enumerate(judges):
        files = []
        for m_i, (model, base) in enumerate(TARGETS.items()):
            recs = synthetic_judgments(judge, model, base, m_i, flip=0.1 * j_i)
            for k in K:
                f = res / "judgments" / judge / model / "none" / f"{k}.jsonl"
                write_jsonl(f, [r for r in recs if r["turns"] == k])
                files.append(str(f))
            if j_i == 0:
                write_generations(res, model, recs)
        all_files += files
        assert main(["metrics", "--params", str(cfg), "-i", *files, "-o", str(res / "metrics" / judge),
                     "--scores", str(res / "scores" / judge)]) == 0
    if len(judges) > 1:
        assert main(["agreement", "--params", str(cfg), "-i", *all_files,
                     "-o", str(res / "metrics" / "judge_agreement.csv")]) == 0
    if moderation:
        write_moderation(res / "metrics" / judges[0] / "moderation.csv", judges[0])
    return {"params": cfg, "results": res, "metrics": res / "metrics" / judges[0]}
