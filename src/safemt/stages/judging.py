"""Judging stage: label frozen generations; never regenerates a response.

Inputs: the dataset and generation files (Generation contract). Outputs:
`<results>/judgments/<judge>/<model>/<defense>/<turns>.jsonl` (Judgment contract,
`safemt.records.JUDGMENT`), `.journal/` beside it. Helpers: `safemt.judges`. `run` labels several
files with one judge loaded once.

A generation record with an `error` is not judged: its judgment carries `label: null` and the
error, and metrics count it as missing. Verdicts are cached in a journal beside the output, keyed by
(judge config hash, judged item hash), so a rerun or a changed judge redoes only what changed, and an
interrupted run resumes. The judge config hash covers everything that decides a verdict: the judge
model's config, the rendered prompts with their criteria, the retry reminder, the dialogue renderer
and the parser (Judge.describe). Every judgment records the judge's name, config hash and `parse`
(how its label was read); `.journal/<out stem>.provenance.json` counts the readings and every
fallback taken (batches run one by one, ignored constraints, default labels).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from safemt.hashing import stable_hash
from safemt.data.validate import check_unique, read_dialogues
from safemt.files import read_records, write_json, write_jsonl
from safemt.errors import SafemtError
from safemt.journal import journal_path, journalled_batches, read_journal, repair_journal
from safemt.judges import Judge, JudgeItem
from safemt.judges.parsing import parse_counts
from safemt.stages import params as sections
from safemt.stages.params import as_params
from safemt.records import GENERATION, GRADE_LABELS, JUDGMENT, LABELS, PARSE_KINDS, PROVIDER, Dialogue


class Dialogues(dict):
    """Dataset keyed by (id, turns, method); a generation written before records carried `method` is
    found by (id, turns) when only one dialogue has that pair."""

    def for_generation(self, g: dict[str, Any]) -> Dialogue | None:
        if "method" in g:
            return self.get((g["id"], g["turns"], g["method"]))
        found = [d for (i, t, _), d in self.items() if (i, t) == (g["id"], g["turns"])]
        return found[0] if len(found) == 1 else None


def load_dialogues(path: str | Path) -> Dialogues:
    """Dataset keyed by (id, turns, method), each record validated."""
    items = read_dialogues(path)
    check_unique(items)
    return Dialogues((item.dialogue.key, item.dialogue) for item in items)


def load_generations(path: str | Path, dialogues: Dialogues) -> list[dict[str, Any]]:
    def check(rec: dict[str, Any]) -> str | None:
        if rec["error"] is None and not isinstance(rec["response"], str):
            return "record has neither a response nor an error"
        if rec.get("refused_by") not in (None, PROVIDER) or (rec.get("refused_by") and rec["error"] is None):
            return f"refused_by {rec.get('refused_by')!r} must be null or 'provider' (with an error)"
        if dialogues.for_generation(rec) is None:
            method = f", {rec['method']}" if "method" in rec else ""
            return f"generation for ({rec['id']}, {rec['turns']}{method}) has no dialogue in the dataset"
        return None

    return read_records([path], "generation", GENERATION.required, key=generation_key, check=check)


def generation_key(rec: dict[str, Any]) -> tuple:
    """(id, turns, method), plus the turn index of a live dialogue's every-turn answers (docs/live.md)."""
    key = GENERATION.key_of(rec)
    return key if rec.get("turn_index") is None else (*key, rec["turn_index"])


def judge_item(g: dict[str, Any], d: Dialogue) -> JudgeItem:
    """What the judge reads. A live turn's answer (`turn_index` t) answered the dialogue's first t user
    turns: the judge sees those, with the target's own answers between them (the live transcript)."""
    messages = tuple({"role": m.role, "content": m.content} for m in d.messages)
    turns = d.turns
    if g.get("turn_index") is not None:
        turns = int(g["turn_index"])
        messages = messages[:2 * turns - 1]
    return JudgeItem(id=d.id, turns=turns, scenario=d.scenario, question=d.question, messages=messages,
                     response=g["response"])


def item_hash(item: JudgeItem, g: dict[str, Any]) -> str:
    """What the judge sees plus which generation it came from."""
    return stable_hash({"item": [item.id, item.turns, item.scenario, item.question, list(item.messages),
                                 item.response], "model": g["model"], "defense": g["defense"]})


def _cached(journal: Path, judge_hash: str) -> dict[str, dict[str, Any]]:
    """Journal verdicts of this judge config, by item hash; judge failures are redone, and so are
    verdicts journalled before judgments recorded how their label was read (no `parse`)."""
    return {r["item_hash"]: r for r in read_journal(journal)
            if r.get("judge_hash") == judge_hash and r.get("judge_error") is None and "item_hash" in r
            and r.get("parse") in PARSE_KINDS}


def run(params: dict[str, Any], judge: str, dataset: str | list[str], pairs: list[tuple[str, str]]) -> list[dict]:
    """Label several generation files with one judge: a local judge model is loaded once for all of them.

    DATASET is one file for every pair, or one per pair (a live run's transcripts, one per file).
    Every input is checked before the judge is built; then each (generations, out) pair is judged
    and written in turn, each with its own journal, so an interrupted job resumes file by file.
    """
    datasets = [dataset] * len(pairs) if isinstance(dataset, (str, Path)) else list(dataset)
    if len(datasets) != len(pairs):
        raise SafemtError(f"judge needs one dataset, or one per input (got {len(datasets)} for {len(pairs)})")
    loaded = {str(path): load_dialogues(path) for path in dict.fromkeys(map(str, datasets))}
    for (generations, _), path in zip(pairs, datasets):
        load_generations(generations, loaded[str(path)])
    params = as_params(params)
    judge_obj = sections.judge(params, judge)
    return [run_judging(params, judge, str(path), generations, out, judge_obj=judge_obj, dialogues=loaded[str(path)])
            for (generations, out), path in zip(pairs, datasets)]


def run_judging(params: dict[str, Any], judge: str, dataset: str, generations: str, out: str,
                judge_obj: Judge | None = None, dialogues: Dialogues | None = None) -> dict:
    dialogues = dialogues if dialogues is not None else load_dialogues(dataset)  # inputs first, then the model
    gens = load_generations(generations, dialogues)
    judge_obj = judge_obj if judge_obj is not None else sections.judge(as_params(params), judge)
    judge_hash = stable_hash(judge_obj.describe())
    # the judge object may serve several files: count this file's fallbacks only
    seen_before = {"judge": Counter(judge_obj.fallbacks), "backend": Counter(judge_obj.backend_fallbacks)}
    out_path = Path(out)
    journal = journal_path(out_path)

    todo: dict[str, JudgeItem] = {}
    hashes: list[str | None] = []
    for g in gens:
        if g["error"] is not None:
            hashes.append(None)
            continue
        item = judge_item(g, dialogues.for_generation(g))
        h = item_hash(item, g)
        hashes.append(h)
        todo[h] = item
    torn_bytes = repair_journal(journal)  # before any read: a torn last line is dropped and redone
    done = _cached(journal, judge_hash)
    pending = [(h, item) for h, item in todo.items() if h not in done]

    def label(chunk: list[tuple[str, JudgeItem]]) -> list[dict[str, Any]]:
        verdicts = judge_obj.judge([item for _, item in chunk])
        if len(verdicts) != len(chunk):
            raise SafemtError(f"judge {judge}: {len(verdicts)} verdicts for {len(chunk)} replies")
        return [{"judge_hash": judge_hash, "item_hash": h, "label": v.label, "raw": v.raw,
                 "judge_error": v.error, "parse": v.parse, **({} if v.grade is None else {"grade": v.grade})}
                for (h, _), v in zip(chunk, verdicts)]

    for _, entries in journalled_batches(journal, pending, judge_obj.batch_size, label, f"judge {judge}", len(todo)):
        done.update({e["item_hash"]: e for e in entries})

    graded = bool(getattr(judge_obj, "graded", False))
    records = [_judgment(g, dialogues.for_generation(g), judge, judge_hash, done.get(h) if h else None, graded)
               for g, h in zip(gens, hashes)]
    records.sort(key=lambda r: (r["turns"], r["id"], r["method"] or "", r.get("turn_index") or 0))
    write_jsonl(out, records)
    counts = {lab: sum(r["label"] == lab for r in records) for lab in LABELS}
    missing = sum(r["label"] is None for r in records)
    failures = sum(r["judge_error"] is not None for r in records)
    refused = sum(r["refused_by"] is not None for r in records)
    parses = parse_counts(records)
    grades = ({"grades": {g: sum(r["grade"] == g for r in records) for g in GRADE_LABELS}} if graded else {})
    fallbacks = {"judge": dict(Counter(judge_obj.fallbacks) - seen_before["judge"]),
                 "backend": dict(Counter(judge_obj.backend_fallbacks) - seen_before["backend"])}
    write_json(journal.parent / f"{out_path.stem}.provenance.json", {
        "judge": judge, "judge_hash": judge_hash, "describe": judge_obj.describe(),
        "records": len(records), "labels": counts, "missing": missing, "judge_errors": failures,
        "refused_by_provider": refused, "parse_counts": parses, "judged_this_run": len(pending),
        "fallbacks_this_run": fallbacks, "journal_torn_bytes_dropped": torn_bytes, **grades})
    print(f"judge {judge}: {len(records)} records -> {out} (safe {counts['safe']} of which refused by the "
          f"provider {refused}, unsafe {counts['unsafe']}, invalid {counts['invalid']} of which judge errors "
          f"{failures}, missing {missing}; read as {_counts_text(parses)})")
    if graded:
        print(f"judge {judge}: graded {_counts_text(grades['grades'])}")
    for who, kinds in fallbacks.items():
        if kinds:
            print(f"safemt: judge {judge}: {who} fallbacks this run: {_counts_text(kinds)}", file=sys.stderr)
    return {**counts, "missing": missing, "judge_errors": failures, "refused_by_provider": refused,
            "journal_torn_bytes_dropped": torn_bytes, "parse_counts": parses, "fallbacks": fallbacks}


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing"


def _judgment(g: dict[str, Any], d: Dialogue, judge: str, judge_hash: str, v: dict[str, Any] | None,
              graded: bool = False) -> dict:
    """The Judgment record (safemt.records.JUDGMENT, in its field order). A generation error is not
    judged (label null); a provider refusal is a refusal (label safe, refused_by: provider), never
    shown to the judge; metrics.provider_refusals: missing undoes it. A graded judge's record ends
    with its `grade` (a provider refusal: `refusal`; not judged: null)."""
    refused = g.get("refused_by") == PROVIDER
    values = {"id": g["id"], "turns": g["turns"], "model": g["model"], "defense": g["defense"], "judge": judge,
              "label": v["label"] if v else ("safe" if refused else None), "raw": v["raw"] if v else None,
              "parse": v["parse"] if v else ("provider_refusal" if refused else None),
              "refused_by": PROVIDER if refused else None,
              "scenario": d.scenario, "method": d.method, "error": None if v else g["error"],
              "judge_error": v["judge_error"] if v else None, "judge_hash": judge_hash}
    extra = {"turn_index": g["turn_index"]} if g.get("turn_index") is not None else {}
    if graded:
        extra["grade"] = v.get("grade", "invalid") if v else ("refusal" if refused else None)
    return {**{name: values[name] for name in JUDGMENT.names}, **extra}

