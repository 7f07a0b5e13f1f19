"""Inference stage: the final assistant reply of one model, under one defense, to each dialogue.

Inputs: the dataset (Dialogue contract), a target model (`models:`), a defense (`defenses:`).
Outputs: `<results>/generations/<model>/<defense>/<turns>.jsonl` (Generation contract,
`safemt.records.GENERATION`), `.journal/` beside it. Helpers: `safemt.models` (backends),
`safemt.moderation` (defenses). `run` answers; `merge` joins shard outputs.

Resumable: every finished batch is appended (fsync'd) to a journal beside the output, and a rerun
reuses journal records whose config_hash still matches, so an interrupted run continues where it
stopped and a changed model, decoding parameter, defense or input regenerates exactly what it
affects. The output file itself is written once, atomically, at the end.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from safemt.hashing import stable_hash
from safemt.data.image_files import sha256_file
from safemt.data.validate import check_hashes, check_unique, hash_images, read_dialogues
from safemt.files import read_records, write_json, write_jsonl
from safemt.journal import journal_path, journalled_batches, read_journal, repair_journal
from safemt.layout import Layout
from safemt.models import Backend, ChatRequest, get_backend
from safemt.moderation.runner import DefenseInput, DefenseRunner, Outcome
from safemt.stages import params as sections
from safemt.stages.params import as_params
from safemt.records import DEFENSE_FIELDS, GENERATION, PROVIDER, TIMING, Dialogue
from safemt.timings import read_timings, write_timings

# Provider refusals and content filters are final outcomes, not transient failures: kept on resume,
# and recorded as `refused_by: provider` (the deployed system refused; judging counts it as safe).
FINAL_ERRORS = ("content_filter", "refusal")
# A journal entry: the Generation record and its measured times (written apart: safemt.timings).
ENTRY_FIELDS = (*GENERATION.names, *(f for f in TIMING.names if f not in GENERATION.names))


def refused_by(error: str | None, finish_reason: str | None) -> str | None:
    """'provider' when an API filtered or refused the request; None for answers and transport errors."""
    return PROVIDER if error is not None and finish_reason in FINAL_ERRORS else None


@dataclass(frozen=True)
class Job:
    """One dialogue to answer, with what identifies its answer."""

    dialogue: Dialogue
    request: ChatRequest
    image_sha256: str | None

    @property
    def key(self) -> tuple[str, int, str | None]:
        """(id, turns, method): in `method_assignment: all` several methods share (id, turns)."""
        return self.dialogue.key


def run(params: dict[str, Any], model: str, dataset: str | Path, out: str | Path, defense: str = "none",
        shard: tuple[int, int] = (0, 1), turns: int | None = None, image_root: str | Path | None = None,
        backend: Backend | None = None, runner: DefenseRunner | None = None) -> Path:
    """Answer the selected dialogues of `dataset` with `model`; write the Generation contract to `out`.
    BACKEND and RUNNER, when given, are the model and defense already built (`run_model` reuses them)."""
    params = as_params(params)
    runner, jobs, backend = prepare(params, model, dataset, defense, shard, turns, image_root, backend, runner)
    dataset, out = Path(dataset), Path(out)
    runner.start_file()
    seen = BackendCounts.of(backend)  # a reused backend has counted earlier files too
    if not backend.sees_images and any(job.request.image for job in jobs):
        print(f"safemt: {model} is a text-only model: dialogues are given without their image", file=sys.stderr)
    backend_info = backend.describe()
    defense_info = runner.describe()
    hashes = {job.key: _config_hash(job, backend_info, defense_info) for job in jobs}
    journal = journal_path(out)
    torn_bytes = repair_journal(journal)  # before any read: a torn last line is dropped and redone
    done = _reusable(journal, hashes, model, defense)
    todo = [job for job in jobs if job.key not in done]

    def answer(batch: list[Job]) -> list[dict[str, Any]]:
        outcomes = runner.run([DefenseInput(job.request, job.dialogue.extra.get("image_caption")) for job in batch],
                              backend)
        return [_journal_entry(job, o, model, defense, hashes[job.key]) for job, o in zip(batch, outcomes)]

    label = f"infer {model}" + (f" {turns}-turn" if turns is not None else "")
    for _, entries in journalled_batches(journal, todo, backend.batch_size, answer, label, len(jobs)):
        done.update({GENERATION.key_of(e): e for e in entries})
    ordered = [done[key] for key in sorted(hashes, key=lambda k: (k[1], k[0], k[2] or ""))]
    write_jsonl(out, ({name: e[name] for name in GENERATION.names} for e in ordered))
    write_timings(out, ordered)
    job_run = InferenceRun(model, defense_info, backend_info, dataset, shard, turns, stable_hash(params))
    write_json(journal.parent / f"{out.stem}.provenance.json",
               job_run.provenance(ordered, seen.since(backend), runner.report(), torn_bytes))
    refused = sum(r["refused_by"] is not None for r in ordered)
    failed = sum(r["error"] is not None for r in ordered) - refused
    if refused:
        print(f"safemt: {refused} of {len(ordered)} requests were refused or filtered by the provider "
              "(refused_by: provider; judged as refusals)", file=sys.stderr)
    if failed:
        print(f"safemt: {failed} of {len(ordered)} generations failed (see their error field); "
              "a rerun retries them", file=sys.stderr)
    return out


def prepare(params: dict[str, Any], model: str, dataset: str | Path, defense: str, shard: tuple[int, int],
            turns: int | None, image_root: str | Path | None, backend: Backend | None,
            runner: DefenseRunner | None) -> tuple[DefenseRunner, list[Job], Backend]:
    """The defense, the checked jobs and the model of one file's run (`run` and live mode's): an unknown
    guard or moderator, or a bad record or image, stops here before any model loads."""
    runner = runner if runner is not None else sections.defense(params, defense)
    dataset = Path(dataset)
    root = Path(image_root) if image_root is not None else dataset.parent
    jobs = _jobs(dataset, root, runner, turns, shard)
    backend = backend if backend is not None else get_backend(sections.model(params, model))
    return runner, jobs, backend


def run_model(params: dict[str, Any], model: str, dataset: str | Path, benign_dataset: str | Path | None = None,
              run_file: Any = None, defenses: list[str] | None = None, lengths: list[int] | None = None,
              pattern: str | None = None) -> list[Path]:
    """Every generations file of one target in one process: each defense x turn length, and the benign
    control set under each defense when given. The model is loaded once and each defense's guard or
    moderator once, instead of once per file (`workflow.inference_jobs: model`, the local profile's
    granularity). The files are those RUN_FILE (default `run`; live mode passes its own, with the same
    signature) writes one by one, at PATTERN (default the generations layout) for DEFENSES and LENGTHS
    (default the params' `defenses` and `turns`)."""
    run_file = run if run_file is None else run_file
    params = as_params(params)
    layout = Layout.of(params)
    pattern = layout.generations if pattern is None else pattern
    backend = get_backend(sections.model(params, model))
    outs = []
    for defense in defenses if defenses is not None else params.get("defenses") or ["none"]:
        runner = sections.defense(params, defense)
        for turns in lengths if lengths is not None else params["turns"]:
            out = pattern.format(model=model, defense=defense, turns=turns)
            outs.append(run_file(params, model, dataset, out, defense, turns=turns, backend=backend, runner=runner))
        if benign_dataset is not None:
            out = layout.benign_generations.format(model=model, defense=defense)
            outs.append(run_file(params, model, benign_dataset, out, defense, backend=backend, runner=runner))
    return outs


# --- reading and selecting dialogues ---------------------------------------------------------------

def _jobs(dataset: Path, root: Path, runner: DefenseRunner, turns: int | None, shard: tuple[int, int]
          ) -> list[Job]:
    """The selected dialogues, every record and image checked before a model loads."""
    items = read_dialogues(dataset)
    check_unique(items)
    selected = [item for item in items if _selected(item.dialogue, turns, shard)]
    hashes = hash_images(selected, root, allow_missing=False)  # each distinct image read once
    check_hashes(selected, hashes)
    return [_job(item.dialogue, root, hashes, runner) for item in selected]


def _job(dialogue: Dialogue, root: Path, hashes: dict[str, str | None], runner: DefenseRunner) -> Job:
    image = root / dialogue.image if dialogue.image is not None else None
    messages = runner.prepare([{"role": m.role, "content": m.content} for m in dialogue.messages])
    return Job(dialogue, ChatRequest(dialogue.key, tuple(messages), image), hashes.get(dialogue.image))


def shard_of(record_id: str, turns: int, n: int) -> int:
    """A stable shard number, independent of file order, so that shards partition any dataset."""
    digest = hashlib.sha256(f"{record_id}|{turns}".encode("utf-8")).digest()
    return int.from_bytes(digest, "big") % n


def _selected(dialogue: Dialogue, turns: int | None, shard: tuple[int, int]) -> bool:
    index, count = shard
    if turns is not None and dialogue.turns != turns:
        return False
    return count == 1 or shard_of(dialogue.id, dialogue.turns, count) == index


# --- hashing and resuming --------------------------------------------------------------------------

def answer_inputs(job: Job, backend_info: dict[str, Any], defense_info: dict[str, Any]) -> dict[str, Any]:
    """What an answer to JOB depends on: model setup, defense, the dialogue and its image."""
    return {
        "backend": backend_info,
        "defense": defense_info,
        "id": job.dialogue.id,
        "turns": job.dialogue.turns,
        "messages": [{"role": m.role, "content": m.content} for m in job.dialogue.messages],
        "image_sha256": job.image_sha256,
    }


def _config_hash(job: Job, backend_info: dict[str, Any], defense_info: dict[str, Any]) -> str:
    """Everything that determines this answer (`answer_inputs`), hashed."""
    return stable_hash(answer_inputs(job, backend_info, defense_info))


def _journals(journal: Path) -> list[Path]:
    """Every journal in the folder, this run's own last: work done under another shard count counts too
    (the timings files beside them are not journals)."""
    others = sorted(p for p in journal.parent.glob("*.jsonl") if p != journal and not p.name.endswith(".timings.jsonl"))
    return [*others, journal]


def _reusable(journal: Path, hashes: dict[tuple[str, int, str | None], str], model: str, defense: str
              ) -> dict[tuple[str, int, str | None], dict[str, Any]]:
    """Journal records still valid for this run: same (id, turns) and config_hash, no error (last one wins).

    The config hash covers the dialogue's messages, so it also tells apart the methods that share an
    (id, turns) (and a journal written before records carried `method` still resumes). The hash
    covers what the model is, not what it is called: a reused answer takes this run's names."""
    done: dict[tuple[str, int, str | None], dict[str, Any]] = {}
    by_hash = {h: key for key, h in hashes.items()}
    records = (rec for path in _journals(journal) for rec in read_journal(path))
    for rec in records:
        key = by_hash.get(rec.get("config_hash"))
        final = rec.get("error") is None or rec.get("finish_reason") in FINAL_ERRORS
        if key is not None and key[:2] == (rec.get("id"), rec.get("turns")) and final:
            done[key] = {**{field: rec.get(field) for field in ENTRY_FIELDS}, "model": model, "defense": defense,
                         "method": key[2], "refused_by": refused_by(rec.get("error"), rec.get("finish_reason"))}
    return done


# --- writing ---------------------------------------------------------------------------------------

def _journal_entry(job: Job, outcome: Outcome, model: str, defense: str, config_hash: str) -> dict[str, Any]:
    """One Generation record (safemt.records.GENERATION, in its field order) plus its measured times
    (TIMING), as the journal keeps it; an error never comes with a response; the defense fields are
    null when the defense has no model."""
    result = outcome.result
    failed = result.error is not None
    values = {
        "id": job.dialogue.id,
        "turns": job.dialogue.turns,
        "method": job.dialogue.method,  # part of the key where several methods share (id, turns)
        "model": model,
        "defense": defense,
        "response": None if failed else result.response,
        "error": result.error,
        "finish_reason": result.finish_reason,  # content_filter / refusal come with an error
        "refused_by": refused_by(result.error, result.finish_reason),
        "n_input_tokens": result.n_input_tokens,
        "n_output_tokens": None if failed else result.n_output_tokens,
        "config_hash": config_hash,
        **{f: outcome.fields.get(f) for f in DEFENSE_FIELDS},
        "latency_s": result.latency_s,
        "defense_latency_s": outcome.defense_latency_s,
    }
    return {name: values[name] for name in ENTRY_FIELDS}


@dataclass(frozen=True)
class BackendCounts:
    """A backend's running totals (usage, fallbacks) at one moment; `since` gives one file's share."""

    usage: dict[str, int] | None
    fallbacks: dict[str, int]

    @classmethod
    def of(cls, backend: Backend) -> "BackendCounts":
        return cls(dict(backend.usage) if backend.usage is not None else None, dict(backend.fallbacks))

    def since(self, backend: Backend) -> "BackendCounts":
        now = BackendCounts.of(backend)
        usage = None if now.usage is None else {k: v - (self.usage or {}).get(k, 0) for k, v in now.usage.items()}
        return BackendCounts(usage, dict(Counter(now.fallbacks) - Counter(self.fallbacks)))


@dataclass(frozen=True)
class InferenceRun:
    """What one inference job was asked to do: the sidecar provenance says it with what came out."""

    model: str
    defense: dict[str, Any]
    backend: dict[str, Any]
    dataset: Path
    shard: tuple[int, int]
    turns: int | None
    params_sha256: str

    def provenance(self, records: list[dict[str, Any]], backend: "BackendCounts", defense_counts: dict[str, Any],
                   torn_bytes: int) -> dict[str, Any]:
        """How the output was made (kept out of the output, which holds only the contract)."""
        return {
            "model": self.model,
            "backend": self.backend,
            "defense": self.defense,
            "dataset": {"path": str(self.dataset), "sha256": sha256_file(self.dataset)},
            "shard": list(self.shard),
            "turns": self.turns,
            "params_sha256": self.params_sha256,
            "versions": {pkg: _version(pkg) for pkg in ("safemt", "torch", "transformers", "tokenizers")},
            "records": len(records),
            "errors": sum(r["error"] is not None and r["refused_by"] is None for r in records),
            "refused_by_provider": sum(r["refused_by"] == "provider" for r in records),
            "usage_this_run": backend.usage,
            "journal_torn_bytes_dropped": torn_bytes,
            "fallbacks_this_run": backend.fallbacks,  # e.g. batch_run_one_by_one: batches split
            "defense_this_run": defense_counts,
            "blocked": sum(r.get("blocked_by") is not None for r in records),
        }


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def merge(inputs: list[str], out: str) -> int:
    """Join shard outputs into one file in (turns, id, method) order; a dialogue in two shards is an error."""
    merged = read_records(inputs, "generation", GENERATION.required, key=GENERATION.key_of)
    merged.sort(key=lambda r: (r["turns"], r["id"], r.get("method") or ""))
    write_jsonl(out, merged)
    times = {key: row for path in inputs for key, row in read_timings(path).items()}
    write_timings(out, [times.get(GENERATION.key_of(r), {**r, "latency_s": None, "defense_latency_s": None})
                        for r in merged])
    _merge_live(inputs, out)
    print(f"merged {len(merged)} generations from {len(inputs)} shard(s) -> {out}")
    return len(merged)


def _merge_live(inputs: list[str], out: str) -> None:
    """Live shards (docs/live.md) also join their every-turn answers and transcripts beside OUT."""
    from safemt.files import read_jsonl
    from safemt.layout import live_dialogues_file, live_turns_file

    for sibling in (live_turns_file, live_dialogues_file):
        parts = [sibling(str(p)) for p in inputs]
        if all(Path(p).is_file() for p in parts):
            rows = [r for p in parts for r in read_jsonl(p)]
            rows.sort(key=lambda r: (r["turns"], r["id"], r.get("method") or "", r.get("turn_index") or 0))
            write_jsonl(sibling(str(out)), rows)

