"""Compare a finished default run with the oracle of docs/planted.md: what differs, one line each.

The tolerances are the issue's: per-dialogue agreement with the rule at least 98% per model and
length, ASR and over-refusal within 0.03, SI within 0.02, parse failures under 2% per defense.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

from tests import planted_oracle as oracle

ASR_TOL, SI_TOL, RULE_SHARE, PARSE_SHARE = 0.03, 0.02, 0.98, 0.02


def _rows(path: Path) -> list[dict[str, str]]:
    """The CSV's rows; none when the file is missing (every expected cell is then reported missing)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _number(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def _labels(results: Path, judge: str, target: str, defense: str, k: int) -> dict[tuple[str, int], str]:
    path = results / "judgments" / judge / target / defense / f"{k}.jsonl"
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {(r["id"], r["turns"]): r["label"] for r in records}


def known_answer_failures(results: Path) -> list[str]:
    """Every cell of the run at RESULTS that the planted rules do not predict."""
    want = oracle.expected(results / "dataset")
    failures: list[str] = []
    # 1. per dialogue, per model and length: the share of judged labels, replies and the guard's and the
    # moderator's verdicts (harmful and benign) that follow the rule
    hits: dict[tuple[str, int, str], list[int]] = defaultdict(lambda: [0, 0])
    for (judge, target, defense), labels in want["labels"].items():
        for k in oracle.LENGTHS:
            got = _labels(results, judge, target, defense, k)
            for key, label in labels.items():
                if key[1] != k:
                    continue
                cell = hits[(target, k, "judged labels")]
                cell[0] += got.get(key) == label
                cell[1] += 1
    # ... and every generation record, harmful and benign: the reply, and the guard's or moderator's verdict
    dialogues = {(d.id, d.turns, d.benign): d for d in oracle.read(results / "dataset")}
    for target in oracle.TARGETS:
        for defense in oracle.DEFENSES:
            for name in [*map(str, oracle.LENGTHS), "benign"]:
                path = results / "generations" / target / defense / f"{name}.jsonl"
                records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] \
                    if path.exists() else []
                want_n = sum(1 for (_, t, b) in dialogues if b == (name == "benign") and (b or str(t) == name))
                if len(records) != want_n:
                    failures.append(f"{path}: {len(records)} records, expected {want_n}")
                for r in records:
                    d = dialogues.get((r["id"], r["turns"], name == "benign"))
                    if d is None:
                        failures.append(f"{path}: unknown dialogue {r['id']} at {r['turns']} turns")
                        continue
                    cell = hits[(target, d.turns, "replies")]
                    cell[0] += oracle.read_generation(d, r) == oracle.reply(target, defense, d)
                    cell[1] += 1
                    flag = oracle.flagged(defense, d)
                    if flag is not None:
                        verdict = r.get("defense_verdict") or {}
                        got = verdict.get("unsafe") if defense == "guard_input" else \
                            verdict.get("verdict") in ("malicious", "sensitive")
                        cell = hits[(target, d.turns, f"{defense} verdicts")]
                        cell[0] += got == flag
                        cell[1] += 1
    for (target, k, what), (ok, n) in sorted(hits.items()):
        if ok / n < RULE_SHARE:
            failures.append(f"{target} at {k} turns: {ok}/{n} {what} follow the rule")
    # 2. ASR by length, per judge
    for judge in oracle.JUDGES:
        seen = set()
        for row in _rows(results / "metrics" / judge / "asr.csv"):
            key = (judge, row["model"], row["defense"], int(row["turns"]))
            seen.add(key)
            exp = want["asr"].get(key)
            if exp is None or _number(row["asr"]) is None or abs(_number(row["asr"]) - exp) > ASR_TOL:
                failures.append(f"asr {key}: {row['asr']}, expected {exp}")
        failures += [f"asr {key}: missing, expected {v}" for key, v in want["asr"].items()
                     if key[0] == judge and key not in seen]
        # 3. the Safety Index
        seen = set()
        for row in _rows(results / "metrics" / judge / "si.csv"):
            key = (judge, row["model"], row["defense"])
            seen.add(key)
            exp = want["si"].get(key)
            if exp is None or _number(row["si"]) is None or abs(_number(row["si"]) - exp["si"]) > SI_TOL:
                failures.append(f"si {key}: {row['si']}, expected {exp and round(exp['si'], 4)}")
        failures += [f"si {key}: missing" for key in want["si"] if key[0] == judge and key not in seen]
    # 4. moderation.csv: ASR, flag rates and parse failures per target, defense, length; over-refusal
    # per target and defense over all lengths (17 benign dialogues a length: one miss would be 0.06)
    refused: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for row in _rows(results / "metrics" / "keyword" / "moderation.csv"):
        if row["turns"] == "all":  # the pooled row: the per-length rows are checked
            continue
        target, defense, k = row["target"], row["defense"], int(row["turns"])
        exp = want["asr"][("keyword", target, defense, k)]
        if _number(row["asr"]) is None or abs(_number(row["asr"]) - exp) > ASR_TOL:
            failures.append(f"moderation.csv asr {target} {defense} {k}: {row['asr']}, expected {exp:.3f}")
        cell, n = refused[(target, defense)], int(row["benign_n"])
        cell[0] += (_number(row["over_refusal"]) or 0.0) * n
        cell[1] += want["over_refusal"][(target, defense, k)] * n
        cell[2] += n
        flag = want["flag_rate"].get((defense, k))
        if flag is not None and abs((_number(row["flag_rate"]) or 0.0) - flag) > ASR_TOL:
            failures.append(f"moderation.csv flag_rate {target} {defense} {k}: {row['flag_rate']}, "
                            f"expected {flag:.3f}")
        if row["parse_failures"] and int(row["parse_failures"]) > PARSE_SHARE * (int(row["n"]) + int(row["benign_n"])):
            failures.append(f"moderation.csv parse_failures {target} {defense} {k}: {row['parse_failures']}")
    for (target, defense), (got, exp, n) in sorted(refused.items()):
        if abs(got - exp) / n > ASR_TOL:
            failures.append(f"moderation.csv over_refusal {target} {defense}: {got / n:.3f}, expected {exp / n:.3f}")
    if len(refused) != len(oracle.TARGETS) * len(oracle.DEFENSES):
        failures.append(f"moderation.csv: {len(refused)} target x defense rows, expected "
                        f"{len(oracle.TARGETS) * len(oracle.DEFENSES)}")
    # 5. judge agreement, overall and per scenario
    agreement = results / "metrics" / "judge_agreement.csv"
    rows = _rows(agreement)
    if not rows:
        failures.append(f"{agreement}: missing")
    for row in rows:
        exp = want["agreement"].get(row["scenario"])
        if exp is None or _number(row["agreement"]) is None or abs(_number(row["agreement"]) - exp) > ASR_TOL:
            failures.append(f"judge agreement {row['scenario']}: {row['agreement']}, expected {exp}")
    return failures
