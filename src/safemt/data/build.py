"""`safemt data build`: seed queries -> dialogues of every turn length, with their images.

The build is a pure function of (seeds file, its images, params): a rebuild writes the same bytes.
Every seed is checked and every image rendered in memory before anything is written, so a bad seed
leaves the output untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from safemt.data import draw
from safemt.data.records import Dialogue, Message, RecordError, check_image_path
from safemt.data.scenarios import METHODS, SCENARIOS, folder
from safemt.data.templates import MAX_TURNS, Picker, Prompt, generate, paraphrase
from safemt.errors import ConfigError, SafemtError
from safemt.jsonl import write_jsonl

ASSIGNMENTS = ("round_robin", "random", "all")
FINAL_TURNS = ("verbatim", "paraphrase")
SEED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # also a file name: no separators, no dot-files


@dataclass(frozen=True)
class Seed:
    id: str
    scenario: str
    question: str
    source: str
    image: str | None
    phrase: str | None
    scene: str | None


@dataclass(frozen=True)
class Options:
    turns: tuple[int, ...]
    assignment: str
    seed: int
    final_turn: str


def options(params: dict[str, Any]) -> Options:
    """The dataset keys the build reads, with the schema's defaults; unsupported values fail early."""
    ds = params.get("dataset") or {}
    generator = ds.get("generator", "template")
    if generator != "template":
        raise ConfigError(f"the {generator!r} generator is not available yet; use 'template'",
                          key="dataset.generator")
    turns = tuple(sorted(params.get("turns", [1, 2, 4, 6, 8])))
    if any(t > MAX_TURNS for t in turns):
        raise ConfigError(f"the template generator writes at most {MAX_TURNS} turns", key="turns")
    opts = Options(turns, ds.get("method_assignment", "round_robin"), int(ds.get("seed", 0)),
                   ds.get("final_turn", "verbatim"))
    if opts.assignment not in ASSIGNMENTS:
        raise ConfigError(f"unknown method assignment {opts.assignment!r} (one of {', '.join(ASSIGNMENTS)})",
                          key="dataset.method_assignment")
    if opts.final_turn not in FINAL_TURNS:
        raise ConfigError(f"unknown final turn {opts.final_turn!r} (one of {', '.join(FINAL_TURNS)})",
                          key="dataset.final_turn")
    return opts


# --- seeds -----------------------------------------------------------------------------------------

def read_seeds(path: Path) -> list[Seed]:
    """Parse and check every seed; the first bad one raises naming its line and id."""
    if not path.is_file():
        raise SafemtError("seeds file not found", file=str(path))
    seeds: list[Seed] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            seed = _parse_seed(line, line_no, path)
            if seed.id in seen:
                raise SafemtError("duplicate id", file=str(path), index=line_no, record_id=seed.id)
            seen.add(seed.id)
            seeds.append(seed)
    if not seeds:
        raise SafemtError("no seeds", file=str(path))
    return seeds


def _parse_seed(line: str, line_no: int, path: Path) -> Seed:
    def bad(reason: str, record_id: str | None = None) -> SafemtError:
        return SafemtError(reason, file=str(path), index=line_no, record_id=record_id)

    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise bad(f"not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise bad("not a JSON object")
    seed_id = obj.get("id")
    if not isinstance(seed_id, str) or not SEED_ID.fullmatch(seed_id):
        raise bad(f"id must be letters, digits, '_', '.' or '-', got {seed_id!r}")
    try:
        return _seed_fields(obj, path.parent)
    except ValueError as exc:
        raise bad(str(exc), seed_id) from None


def _seed_fields(obj: dict[str, Any], root: Path) -> Seed:
    """The checked fields of one seed; ValueError carries the reason."""
    if obj.get("scenario") not in SCENARIOS:
        raise ValueError(f"unknown scenario {obj.get('scenario')!r}")
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("empty question")
    source = obj.get("source", "own")
    if not isinstance(source, str) or not source:
        raise ValueError("source must be a non-empty string")
    image = obj.get("image")
    if image is not None:
        _check_seed_image(image, root)
    phrase, scene = _draw_fields(obj.get("draw"))
    if phrase is None and (image is None or not (root / image).is_file()):
        raise ValueError(f"missing image {image!r} (no such file and no 'draw' to render one)")
    return Seed(obj["id"], obj["scenario"], question, source, image, phrase, scene)


def _check_seed_image(image: Any, root: Path) -> None:
    try:
        check_image_path(image)
    except RecordError as exc:
        raise ValueError(f"{exc} (the seeds file's folder)") from None
    if not (root / image).resolve().is_relative_to(root.resolve()):
        raise ValueError(f"image path {image!r} escapes the seeds file's folder through a link")


def _draw_fields(spec: Any) -> tuple[str | None, str | None]:
    if spec is None:
        return None, None
    if not isinstance(spec, dict) or not isinstance(spec.get("phrase"), str) \
            or not isinstance(spec.get("scene"), str):
        raise ValueError("draw must be an object with string 'phrase' and 'scene'")
    draw.check(spec["phrase"], spec["scene"])
    return spec["phrase"], spec["scene"]


# --- images ----------------------------------------------------------------------------------------

def seed_image(seed: Seed, root: Path) -> tuple[str, bytes]:
    """(path relative to the dataset's image root, bytes): rendered from `draw`, else the seed's file."""
    if seed.phrase is not None:
        data, suffix = draw.render_png(seed.id, seed.phrase, seed.scene), ".png"
    else:
        src = root / seed.image
        data, suffix = src.read_bytes(), src.suffix.lower()
    return f"images/{folder(seed.scenario)}/{seed.id}{suffix}", data


def write_bytes(path: Path, data: bytes) -> None:
    """Atomic binary write (temp file + fsync + rename), like the JSONL writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- dialogues -------------------------------------------------------------------------------------

def assign_methods(seed: Seed, position: int, turns: int, multi_index: int, opts: Options) -> tuple[str, ...]:
    """Methods for one seed at one turn length: a rotation, a seeded draw, or all four."""
    if opts.assignment == "all":
        return METHODS
    if opts.assignment == "random":
        return (Picker(opts.seed, seed.id, turns, "method").pick(METHODS),)
    return (METHODS[(position + multi_index) % len(METHODS)],)


def seed_dialogues(seed: Seed, position: int, image: str, sha: str, opts: Options) -> Iterator[Dialogue]:
    """Every dialogue of one seed; in `all` mode the id gets a `__<method>` suffix."""
    multi = [t for t in opts.turns if t > 1]
    if 1 in opts.turns:
        yield _dialogue(seed, seed.id, 1, None, (Message("user", seed.question),), image, sha)
    for multi_index, turns in enumerate(multi):
        for method in assign_methods(seed, position, turns, multi_index, opts):
            pick = Picker(opts.seed, seed.id, turns, method)
            query = seed.question
            if opts.final_turn == "paraphrase":
                query = paraphrase(query, pick.fork("paraphrase"))
            prompt = Prompt(query, seed.scenario, seed.phrase, seed.scene)
            dialogue_id = f"{seed.id}__{method}" if opts.assignment == "all" else seed.id
            yield _dialogue(seed, dialogue_id, turns, method, generate(method, prompt, turns, pick), image, sha)


def _dialogue(seed: Seed, dialogue_id: str, turns: int, method: str | None,
              messages: tuple[Message, ...], image: str, sha: str) -> Dialogue:
    dialogue = Dialogue(id=dialogue_id, turns=turns, scenario=seed.scenario, source=seed.source,
                        method=method, method_inferred=False, image=image, image_sha256=sha,
                        messages=messages, question=seed.question)
    dialogue.check()
    return dialogue


def summarize(dialogues: list[Dialogue], n_seeds: int, out: Path) -> dict[str, Any]:
    by_turns = Counter(d.turns for d in dialogues)
    by_method = Counter(d.method or "none" for d in dialogues)
    return {
        "output": str(out), "seeds": n_seeds, "dialogues": len(dialogues),
        "turns": {str(t): by_turns[t] for t in sorted(by_turns)},
        "methods": {m: by_method[m] for m in (*METHODS, "none") if by_method[m]},
    }


def build_dataset(seeds_path: str | Path, out: str | Path, params: dict[str, Any]) -> dict[str, Any]:
    """Write one dialogue per seed x turn length (x method) to `out`, images under out's folder.

    Methods follow `dataset.method_assignment`: `round_robin` rotates the four methods by seed
    position and turn length, `random` draws one per (seed id, turns) from `dataset.seed`, and `all`
    writes every method for every seed and N > 1. Only in `all` mode are ids suffixed with
    `__<method>` (e.g. `own_bias_1__roleplay`), which keeps (id, turns) unique. 1-turn dialogues are
    the seed question alone (method null) whatever `dataset.final_turn` says; longer ones end with the
    question verbatim or lightly paraphrased. `question` is always the seed's question verbatim.
    Returns the summary that is also printed as one line.
    """
    opts = options(params)
    seeds_path, out = Path(seeds_path), Path(out)
    seeds = read_seeds(seeds_path)
    images = {seed.id: seed_image(seed, seeds_path.parent) for seed in seeds}
    shas = {seed_id: hashlib.sha256(data).hexdigest() for seed_id, (_, data) in images.items()}
    dialogues = sorted((d for position, seed in enumerate(seeds)
                        for d in seed_dialogues(seed, position, images[seed.id][0], shas[seed.id], opts)),
                       key=lambda d: (d.turns, d.id))
    for rel, data in images.values():
        write_bytes(out.parent / rel, data)
    write_jsonl(out, (d.to_dict() for d in dialogues))
    summary = summarize(dialogues, len(seeds), out)
    print(f"{out}: {summary['dialogues']} dialogues from {summary['seeds']} seeds; turns "
          + ", ".join(f"{t}: {n}" for t, n in summary["turns"].items()) + "; methods "
          + ", ".join(f"{m}: {n}" for m, n in summary["methods"].items()))
    return summary
