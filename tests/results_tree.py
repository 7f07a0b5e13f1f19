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


# ASR factor of each defense in the synthetic judgments (build_results(defenses=...)).
DEFENSE_FACTOR = {"none": 1.0, "guard_input": 0.7, "moderator": 0.35}


def synthetic_judgments(judge: str, model: str, base: float, seed: int, ids_per_scenario: int = 3,
                        flip: float = 0.0, defense: str = "none") -> list[dict]:
    """ASR rising with turns; `flip` disagrees with the first judge on that share of items."""
    suffix = "" if defense == "none" else f"-{defense}"
    rng = random.Random(f"{model}-{seed}{suffix}")
    flips = random.Random(f"{model}-{judge}{suffix}")
    base *= DEFENSE_FACTOR.get(defense, 1.0)
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
                recs.append({"id": id_, "turns": k, "model": model, "defense": defense, "judge": judge,
                             "label": label, "raw": "x" if defense == "none" else f"{label} {HOSTILE}",
                             "scenario": scenario, "method": method})
    return recs


HOSTILE = '<script>document.body.setAttribute("data-pwned", "1")</script><img src=x onerror="alert(1)">'


def write_image(path: Path, seed: str) -> str:
    """A 1200x900 picture (a gradient with noise, so that it compresses like a photo), as PNG."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(int.from_bytes(seed.encode()[:8].ljust(8, b"\0"), "little"))
    y, x = np.mgrid[0:900, 0:1200]
    base = np.stack([x * 255 // 1200, y * 255 // 900, (x + y) * 255 // 2100], axis=-1)
    pixels = np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return f"images/{path.name}"


def write_generations(res: Path, model: str, recs: list[dict], defense: str = "none", images: bool = False) -> None:
    """Dialogues (one carrying markup that must show as text) and responses at the layout's paths; with
    IMAGES, each seed's picture under dataset/images/ (named in the dialogues)."""
    dialogues = []
    pictures: dict[str, str] = {}
    for r in recs:
        if model == next(iter(TARGETS)) and defense == "none":
            msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} of {r['id']}"}
                    for i in range(2 * r["turns"] - 1)]
            msgs[-1]["content"] = f"final question {HOSTILE}"
            dialogue = {"id": r["id"], "turns": r["turns"], "scenario": r["scenario"], "method": r["method"],
                        "question": f"q {HOSTILE}", "messages": msgs}
            if images:
                if r["id"] not in pictures:
                    pictures[r["id"]] = write_image(res / "dataset" / "images" / f"{r['id']}.png", r["id"])
                dialogue["image"] = pictures[r["id"]]
            dialogues.append(dialogue)
    if dialogues:
        write_jsonl(res / "dataset" / "dialogues.jsonl", dialogues)

    def verdict(r: dict) -> dict | None:
        flag = r["label"] == "unsafe"
        if defense == "guard_input":
            return {"unsafe": flag, "categories": ["S2"] if flag else [], "raw": f"{'unsafe' if flag else 'safe'} "
                    f"{HOSTILE}", "parse": "ok"}
        if defense == "moderator":
            return {"verdict": "malicious" if flag else "benign", "scenario": r["scenario"],
                    "rationale": f"because {HOSTILE}", "raw": "{}", "parse": "fallback"}
        return None
    for k in K:
        write_jsonl(res / "generations" / model / defense / f"{k}.jsonl",
                    [{"id": r["id"], "turns": k, "method": r["method"], "model": model, "defense": defense, "error": None,
                      "response": f"reply {HOSTILE}", **({} if defense == "none" else {"defense_verdict": verdict(r)})}
                     for r in recs if r["turns"] == k])


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


def build_results(root: Path, repo_root: Path, moderation: bool = True, judges=("keyword", "llm"),
                  defenses=("none",), images: bool = False) -> dict:
    """root/params.yaml and root/results/{judgments,metrics,scores}; returns paths. DEFENSES other than
    none add judgments and generations (with the guard's or moderator's verdict) per target; IMAGES
    gives each dialogue a picture."""
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["targets"] = list(TARGETS)
    params["models"].update({t: {"backend": "openai", "model_id": t, "base_url": "http://127.0.0.1:9/v1"}
                             for t in TARGETS})
    params["judges"] = {j: {"kind": "keyword"} for j in judges}
    params["metrics"]["judges"] = list(judges)
    params["figures"] = {"judge": judges[0]}
    params["results_dir"] = "results"
    params["live"] = {**params["live"], "models": []}  # the tree has no live cell
    if tuple(defenses) != ("none",) or not moderation:  # else params.yaml's defenses, whose moderation.csv it writes
        params["defenses"] = list(defenses)
    cfg = root / "params.yaml"
    cfg.write_text(yaml.safe_dump(params))
    res = root / "results"
    all_files = []
    for j_i, judge in enumerate(judges):
        files = []
        for m_i, (model, base) in enumerate(TARGETS.items()):
            for defense in defenses:
                recs = synthetic_judgments(judge, model, base, m_i, flip=0.1 * j_i, defense=defense)
                for k in K:
                    f = res / "judgments" / judge / model / defense / f"{k}.jsonl"
                    write_jsonl(f, [r for r in recs if r["turns"] == k])
                    files.append(str(f))
                if j_i == 0:
                    write_generations(res, model, recs, defense, images)
        all_files += files
        assert main(["metrics", "--params", str(cfg), "-i", *files, "-o", str(res / "metrics" / judge),
                     "--scores", str(res / "scores" / judge)]) == 0
    if len(judges) > 1:
        assert main(["agreement", "--params", str(cfg), "-i", *all_files,
                     "-o", str(res / "metrics" / "judge_agreement.csv")]) == 0
    if moderation:
        write_moderation(res / "metrics" / judges[0] / "moderation.csv", judges[0])
    return {"params": cfg, "results": res, "metrics": res / "metrics" / judges[0]}


def params_variant(tree: dict, path: Path, change) -> Path:
    """PATH: the tree's params.yaml after CHANGE(params) (it edits the dict in place)."""
    params = yaml.safe_load(Path(tree["params"]).read_text())
    change(params)
    path.write_text(yaml.safe_dump(params))
    return path


def single_judge_without_defenses(params: dict) -> None:
    """A run that makes no moderation or agreement files (one judge, no defense)."""
    params["defenses"] = ["none"]
    params["metrics"]["judges"] = params["metrics"]["judges"][:1]
