"""Live dialogues (`dialogue_mode: live`): the target answers every user turn itself.

In replay (the release's protocol) the assistant turns of a dialogue are the dataset's, written in
advance, and the target writes only the last reply. In live mode the target answers user turn 1, its
answer becomes assistant turn 1 of the history, it answers user turn 2 after it, and so on to the
last user turn; the image stays on the first user message, as in replay. The defense acts at every
turn: a static defense rewrites each turn's request, a guard or moderator reads the conversation so
far. A turn a guard blocks gets the refusal text as its answer, and that refusal is the assistant turn
the dialogue continues from.

Outputs, for `-o OUT` (`<folder>/<turns>.jsonl`):
- OUT: one Generation record per dialogue, the final turn's answer (today's contract, so every judge,
  metric and figure reads it unchanged);
- `<folder>/turns/<turns>.jsonl`: every turn's answer, a Generation record plus `turn_index` (1..turns),
  keyed by (id, turns, method, turn_index);
- `<folder>/dialogues/<turns>.jsonl`: the transcripts, each dialogue with its assistant turns replaced
  by the target's own answers (the Dialogue contract, plus `live_answered`: the turns answered), which
  the judges read as the dialogue a reply answered.

Resumable turn by turn: each finished batch of turns is fsync'd to the journal of the turns file,
keyed by a config hash over the model, the defense, the dialogue, the turn index and the answers
before it. A rerun reuses every journalled turn whose hash still matches and continues each
dialogue at its first unanswered turn; a finished turn is never generated again. Dialogues at the
same turn index are batched together (the batching the hf backend makes efficient); vllm's prefix
caching (on by default) reuses the history's cache from the previous turn.

A turn that fails (a transport or model error) ends its dialogue for this run: the final record
carries the error (`live turn t of N: ...`) and a rerun retries from that turn. A turn the provider
refused or filtered ends the dialogue as that refusal (`refused_by: provider`, judged as a refusal,
as in replay).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from safemt.config import live_defenses, live_turns
from safemt.files import write_json, write_jsonl
from safemt.hashing import stable_hash
from safemt.journal import journal_path, journalled_batches, read_journal, repair_journal
from safemt.layout import Layout, live_dialogues_file, live_turns_file
from safemt.models import Backend, ChatRequest
from safemt.moderation.runner import DefenseInput, DefenseRunner
from safemt.records import GENERATION
from safemt.stages import inference
from safemt.stages.inference import (FINAL_ERRORS, BackendCounts, InferenceRun, Job, _journal_entry, answer_inputs, prepare,
                                     refused_by)
from safemt.stages.params import as_params
from safemt.timings import write_timings

MODE = "live"


def user_turns(job: Job) -> list[str]:
    return [m.content for m in job.dialogue.messages if m.role == "user"]


def history(job: Job, answers: list[str], turn: int) -> list[dict[str, str]]:
    """The conversation at user turn TURN (1-based): users 1..TURN with the target's answers between."""
    users = user_turns(job)
    messages: list[dict[str, str]] = []
    for i in range(turn):
        if i:
            messages.append({"role": "assistant", "content": answers[i - 1]})
        messages.append({"role": "user", "content": users[i]})
    return messages


def turn_hash(job: Job, turn: int, answers: list[str], backend_info: dict[str, Any],
              defense_info: dict[str, Any]) -> str:
    """Everything that decides turn TURN's answer: model, defense, the dialogue, its image, the turn
    index and the answers before it (which the earlier turns' hashes decided)."""
    return stable_hash({"mode": MODE, **answer_inputs(job, backend_info, defense_info), "turn_index": turn,
                        "answers": answers[:turn - 1]})


def run(params: dict[str, Any], model: str, dataset: str | Path, out: str | Path, defense: str = "none",
        shard: tuple[int, int] = (0, 1), turns: int | None = None, image_root: str | Path | None = None,
        backend: Backend | None = None, runner: DefenseRunner | None = None) -> Path:
    """Answer every turn of the selected dialogues live; write OUT (final turns), its turns file and
    transcripts (module docstring). Same arguments as `safemt.stages.inference.run`."""
    params = as_params(params)
    runner, jobs, backend = prepare(params, model, dataset, defense, shard, turns, image_root, backend, runner)
    dataset, out = Path(dataset), Path(out)
    if backend.name == "vllm" and not backend.cfg.get("enable_prefix_caching", True):
        print(f"safemt: {model}: live mode with enable_prefix_caching off: every turn recomputes its history",
              file=sys.stderr)
    runner.start_file()
    seen = BackendCounts.of(backend)
    backend_info, defense_info = backend.describe(), runner.describe()
    turns_out = Path(live_turns_file(str(out)))
    journal = journal_path(turns_out)
    torn_bytes = repair_journal(journal)
    journalled = {r.get("config_hash"): r for r in read_journal(journal)
                  if r.get("error") is None or r.get("finish_reason") in FINAL_ERRORS}
    answers: dict[tuple, list[str]] = {job.key: [] for job in jobs}
    entries: dict[tuple, list[dict[str, Any]]] = {job.key: [] for job in jobs}
    ended: set[tuple] = set()  # dialogues stopped by an error or a provider refusal
    counts = {"turns_total": sum(job.dialogue.turns for job in jobs), "turns_reused": 0, "turns_generated": 0}

    def keep(job: Job, entry: dict[str, Any]) -> None:
        entries[job.key].append(entry)
        if entry["error"] is not None:
            ended.add(job.key)
        else:
            answers[job.key].append(entry["response"])

    for turn in range(1, max((job.dialogue.turns for job in jobs), default=0) + 1):
        todo: list[tuple[Job, str]] = []
        for job in jobs:
            if job.dialogue.turns < turn or job.key in ended:
                continue
            h = turn_hash(job, turn, answers[job.key], backend_info, defense_info)
            rec = journalled.get(h)
            if rec is not None and (rec.get("id"), rec.get("turns"), rec.get("turn_index")) == (
                    job.dialogue.id, job.dialogue.turns, turn):
                counts["turns_reused"] += 1
                keep(job, _renamed(rec, model, defense, job))
            else:
                todo.append((job, h))

        def answer(batch: list[tuple[Job, str]], turn: int = turn) -> list[dict[str, Any]]:
            inputs = [DefenseInput(ChatRequest(job.key, tuple(runner.prepare(history(job, answers[job.key], turn))),
                                               job.request.image), job.dialogue.extra.get("image_caption"))
                      for job, _ in batch]
            outcomes = runner.run(inputs, backend)
            return [{**_journal_entry(job, o, model, defense, h), "turn_index": turn}
                    for (job, h), o in zip(batch, outcomes)]

        label = f"live {model} turn {turn}" + (f" of {turns}" if turns is not None else "")
        for batch, done in journalled_batches(journal, todo, backend.batch_size, answer, label, len(todo)):
            counts["turns_generated"] += len(batch)
            for (job, _), entry in zip(batch, done):
                keep(job, entry)

    order = sorted(jobs, key=lambda j: (j.dialogue.turns, j.dialogue.id, j.dialogue.method or ""))
    every = [e for job in order for e in entries[job.key]]
    write_jsonl(turns_out, ({**{n: e.get(n) for n in GENERATION.names}, "turn_index": e["turn_index"]}
                            for e in every))
    finals = [_final(job, entries[job.key]) for job in order]
    write_jsonl(out, ({n: e[n] for n in GENERATION.names} for e in finals))
    write_timings(out, finals)
    write_jsonl(live_dialogues_file(str(out)), (_transcript(job, answers[job.key]) for job in order))
    job_run = InferenceRun(model, defense_info, backend_info, dataset, shard, turns, stable_hash(params))
    prov = job_run.provenance(finals, seen.since(backend), runner.report(), torn_bytes)
    write_json(journal_path(out).parent / f"{out.stem}.provenance.json",
               {**prov, "dialogue_mode": MODE, "turns_total": counts["turns_total"],
                "turns_reused": counts["turns_reused"], "turns_generated_this_run": counts["turns_generated"]})
    failed = sum(r["error"] is not None and r["refused_by"] is None for r in finals)
    print(f"live {model} {defense}: {len(finals)} dialogues, {counts['turns_total']} turns "
          f"({counts['turns_generated']} generated, {counts['turns_reused']} reused from the journal)")
    if failed:
        print(f"safemt: {failed} of {len(finals)} live dialogues stopped at a failed turn (see their error "
              "field); a rerun retries from that turn", file=sys.stderr)
    return out


def _renamed(rec: dict[str, Any], model: str, defense: str, job: Job) -> dict[str, Any]:
    """A journalled turn under this run's names (the hash covers what the model is, not its name)."""
    return {**rec, "model": model, "defense": defense, "method": job.dialogue.method,
            "refused_by": refused_by(rec.get("error"), rec.get("finish_reason"))}


def _final(job: Job, done: list[dict[str, Any]]) -> dict[str, Any]:
    """The dialogue's Generation record: its last turn's answer, or the turn that ended it early."""
    last = done[-1]
    if last["turn_index"] == job.dialogue.turns or last["refused_by"] is not None:
        return last
    return {**last, "error": f"live turn {last['turn_index']} of {job.dialogue.turns}: {last['error']}"}


def _transcript(job: Job, answers: list[str]) -> dict[str, Any]:
    """The dialogue as it happened: its assistant turns are the target's own answers (those it did not
    reach, after a failed turn, stay as written; `live_answered` says how many are its own)."""
    record = job.dialogue.to_dict()
    replaced, k = [], 0
    for m in record["messages"]:
        if m["role"] == "assistant" and k < len(answers):
            m = {"role": "assistant", "content": answers[k]}
            k += 1
        replaced.append(m)
    return {**record, "messages": replaced, "live_answered": len(answers)}


def run_model(params: dict[str, Any], model: str, dataset: str | Path, benign_dataset: str | Path | None = None
              ) -> list[Path]:
    """`dialogue_mode: live` for the whole grid: every generations file of one target (each defense x
    length, and the benign set), answered live, in the replay layout (`inference.run_model`'s files)."""
    return inference.run_model(params, model, dataset, benign_dataset, run_file=run)


def run_cell(params: dict[str, Any], model: str, dataset: str | Path) -> list[Path]:
    """Every live file of one target in `live:` (each live defense x length), the model loaded once."""
    params = as_params(params)
    return inference.run_model(params, model, dataset, run_file=run, defenses=live_defenses(params),
                               lengths=live_turns(params), pattern=Layout.of(params).live_generations)


def metrics(params: dict[str, Any], finals: list[str], turn_files: list[str], replay_asr: str | None,
            out_dir: str) -> dict[str, Any]:
    """Live metrics of one judge (safemt.metrics.live): live.csv, live_turns.csv, live_first_unsafe.csv,
    live.json in OUT_DIR."""
    from safemt.metrics.live import live_metrics
    from safemt.stages.metrics import metrics_options

    return live_metrics(metrics_options(params), finals, turn_files, replay_asr, out_dir)
