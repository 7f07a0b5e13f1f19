"""`safemt data build`: seed queries -> dialogues of every turn length, with their images.

With the template generator the build is a pure function of (seeds file, its images, params): a
rebuild writes the same bytes. Every seed is checked, every image rendered and every dialogue
generated in memory before anything is written, so a bad seed leaves the output untouched.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any, Iterator

from safemt.config import fill_defaults, model_entry
from safemt.data import draw
from safemt.data.image_files import check_image_readable
from safemt.data.generators import Generator, Reject, Task, make_generator, run
from safemt.data.grounding import GROUNDING_FIELDS, Grounding, parse_grounding
from safemt.data.quality import Checks
from safemt.records import Dialogue, Message, RecordError, check_image_path
from safemt.scenarios import METHODS, SCENARIOS, folder
from safemt.data.templates import COMBINATIONS, MAX_TURNS, MIN_COMBINED_TURNS, Picker
from safemt.errors import ConfigError, SafemtError
from safemt.files import atomic_write_bytes, read_jsonl, write_jsonl

ASSIGNMENTS = ("round_robin", "random", "all")
FINAL_TURNS = ("verbatim", "paraphrase")
GENERATORS = ("template", "llm")
SEED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # also a file name: no separators, no dot-files
SEED_FIELDS = ("id", "scenario", "question", "source", "image", "draw", *GROUNDING_FIELDS)


@dataclass(frozen=True)
class Seed:
    id: str
    scenario: str
    question: str
    source: str
    image: str | None
    phrase: str | None
    scene: str | None
    grounding: Grounding = Grounding()


@dataclass(frozen=True)
class Options:
    """The `dataset:` keys the build reads (with the schema's defaults) and the turn lengths."""

    turns: tuple[int, ...]
    assignment: str
    seed: int
    final_turn: str
    generator: str
    max_tries: int
    checks: Checks
    combine: bool
    generator_model: Mapping[str, Any] | None = None  # the llm generator's model entry (plus `name`)


def options(dataset: Mapping[str, Any], turns: Sequence[int], models: Mapping[str, Any]) -> Options:
    """The build's options from the `dataset:` section, `turns` and `models` (for the llm generator's
    model); the schema's defaults fill what the section leaves out; unsupported values fail early."""
    ds = fill_defaults(dict(dataset), at=("dataset",))
    chosen = ds.get("generator_model")
    model = model_entry(models, chosen) if ds["generator"] == "llm" and chosen in models else None
    opts = Options(tuple(sorted(turns)), ds["method_assignment"], int(ds["seed"]), ds["final_turn"], ds["generator"],
                   int(ds["max_tries"]), Checks.from_params(ds.get("checks")), bool(ds["combine"]), model)
    if opts.generator not in GENERATORS:
        raise ConfigError(f"unknown generator {opts.generator!r} (one of {', '.join(GENERATORS)})",
                          key="dataset.generator")
    if opts.generator == "template" and any(t > MAX_TURNS for t in opts.turns):
        raise ConfigError(f"the template generator writes at most {MAX_TURNS} turns", key="turns")
    if opts.generator == "llm" and model is None:
        raise ConfigError(f"the llm generator needs a model defined in models, got {chosen!r}",
                          key="dataset.generator_model")
    if opts.max_tries < 1:
        raise ConfigError("max_tries must be at least 1", key="dataset.max_tries")
    if opts.assignment not in ASSIGNMENTS:
        raise ConfigError(f"unknown method assignment {opts.assignment!r} (one of {', '.join(ASSIGNMENTS)})",
                          key="dataset.method_assignment")
    if opts.final_turn not in FINAL_TURNS:
        raise ConfigError(f"unknown final turn {opts.final_turn!r} (one of {', '.join(FINAL_TURNS)})",
                          key="dataset.final_turn")
    return opts


# --- seeds -----------------------------------------------------------------------------------------

def read_seeds(path: Path) -> list[Seed]:
    """Parse and check every seed; the first bad one raises naming its record and id."""
    seeds: list[Seed] = []
    seen: set[str] = set()
    for index, obj in enumerate(read_jsonl(path), start=1):
        seed = _parse_seed(obj, index, path)
        if seed.id in seen:
            raise SafemtError("duplicate id", file=str(path), index=index, record_id=seed.id)
        seen.add(seed.id)
        seeds.append(seed)
    if not seeds:
        raise SafemtError("no seeds", file=str(path))
    return seeds


def _parse_seed(obj: dict[str, Any], index: int, path: Path) -> Seed:
    def bad(reason: str, record_id: str | None = None) -> SafemtError:
        return SafemtError(reason, file=str(path), index=index, record_id=record_id)

    seed_id = obj.get("id")
    if not isinstance(seed_id, str) or not SEED_ID.fullmatch(seed_id):
        raise bad(f"id must be letters, digits, '_', '.' or '-', got {seed_id!r}")
    try:
        return _seed_fields(obj, path.parent)
    except ValueError as exc:
        raise bad(str(exc), seed_id) from None


def _seed_fields(obj: dict[str, Any], root: Path) -> Seed:
    """The checked fields of one seed; ValueError carries the reason."""
    unknown = sorted(set(obj) - set(SEED_FIELDS))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (fields: {', '.join(SEED_FIELDS)})")
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
    if phrase is None:
        try:
            check_image_readable(root / image)
        except RecordError as exc:
            raise ValueError(f"image {image!r}: {exc}") from None
    grounding = parse_grounding(obj, question, phrase, scene)
    return Seed(obj["id"], obj["scenario"], question, source, image, phrase, scene, grounding)


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


# --- dialogues -------------------------------------------------------------------------------------

def method_pool(turns: int, opts: Options) -> tuple[str, ...]:
    """The four methods, plus the combinations when `dataset.combine` is on and N is long enough."""
    if opts.combine and turns >= MIN_COMBINED_TURNS:
        return METHODS + COMBINATIONS
    return METHODS


def assign_methods(seed: Seed, position: int, turns: int, multi_index: int, opts: Options) -> tuple[str, ...]:
    """Methods for one seed at one turn length: a rotation, a seeded draw, or all of them."""
    pool = method_pool(turns, opts)
    if opts.assignment == "all":
        return pool
    if opts.assignment == "random":
        return (Picker(opts.seed, seed.id, turns, "method").pick(pool),)
    return (pool[(position + multi_index) % len(pool)],)


def plan(seeds: list[Seed], opts: Options, pictures: dict[str, Path | None]) -> list[Task]:
    """Every multi-turn dialogue to generate, keyed (id, turns, method): the id is the seed's at every
    length, so in `all` mode several methods share (id, turns)."""
    multi = [t for t in opts.turns if t > 1]
    return [Task(seed.id, seed.id, turns, method, seed.question, seed.scenario, seed.grounding,
                 pictures.get(seed.id))
            for position, seed in enumerate(seeds)
            for multi_index, turns in enumerate(multi)
            for method in assign_methods(seed, position, turns, multi_index, opts)]


def _dialogue(seed: Seed, dialogue_id: str, turns: int, method: str | None,
              messages: tuple[Message, ...], image: str, sha: str) -> Dialogue:
    dialogue = Dialogue(id=dialogue_id, turns=turns, scenario=seed.scenario, source=seed.source,
                        method=method, method_inferred=False, image=image, image_sha256=sha,
                        messages=messages, question=seed.question)
    dialogue.check()
    return dialogue


@dataclass(frozen=True)
class Built:
    """A build held in memory: what `build_dataset` writes, and what the dataset card re-derives."""

    dialogues: list[Dialogue]
    rejects: list[Reject]
    images: dict[str, tuple[str, bytes]]  # seed id -> (path under the image root, bytes)
    seeds: int
    generator: str
    ungrounded: dict[str, int] = dataclass_field(default_factory=dict)  # grounding field -> seeds lacking it


def make_dialogues(seeds_path: str | Path, opts: Options) -> Built:
    """Check the seeds, draw the images and generate every dialogue, writing nothing.

    1-turn dialogues are the seed question alone (method null). Longer ones come from the
    configured generator and pass the quality checks, or end up among the rejects.
    """
    seeds_path = Path(seeds_path)
    seeds = read_seeds(seeds_path)
    images = {seed.id: seed_image(seed, seeds_path.parent) for seed in seeds}
    shas = {seed_id: hashlib.sha256(data).hexdigest() for seed_id, (_, data) in images.items()}
    generator = make_generator(opts.generator, opts.generator_model, opts.seed, opts.final_turn)
    with pictures_for(generator, images) as pictures:
        tasks = plan(seeds, opts, pictures)
        kept, rejects = run(generator, tasks, opts.checks, opts.max_tries)
    by_id = {seed.id: seed for seed in seeds}
    dialogues = [_dialogue(seed, seed.id, 1, None, (Message("user", seed.question),), images[seed.id][0],
                           shas[seed.id]) for seed in seeds if 1 in opts.turns]
    for task in tasks:
        if task.key in kept:
            seed = by_id[task.seed_id]
            dialogues.append(_dialogue(seed, task.id, task.turns, task.method, kept[task.key],
                                       images[seed.id][0], shas[seed.id]))
    dialogues.sort(key=lambda d: (d.turns, d.id, d.method or ""))
    rejects.sort(key=lambda r: (r.task.turns, r.task.id, r.task.method))
    lacking = Counter(name for seed in seeds for name in seed.grounding.missing())
    return Built(dialogues, rejects, images, len(seeds), generator.name,
                 {name: lacking[name] for name in GROUNDING_FIELDS if lacking[name]})


@contextmanager
def pictures_for(generator: Generator, images: dict[str, tuple[str, bytes]]) -> Iterator[dict[str, Path | None]]:
    """Image files a generator can look at, in a temporary folder (the output is not touched yet)."""
    if not generator.wants_images:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="safemt-build-") as tmp:
        pictures: dict[str, Path | None] = {}
        for seed_id, (rel, data) in images.items():
            pictures[seed_id] = Path(tmp) / rel
            atomic_write_bytes(pictures[seed_id], data)
        yield pictures


def rejects_path(out: Path) -> Path:
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.rejects.jsonl")


def summarize(built: Built, out: Path) -> dict[str, Any]:
    by_turns = Counter(d.turns for d in built.dialogues)
    by_method = Counter(d.method or "none" for d in built.dialogues)
    return {
        "output": str(out), "seeds": built.seeds, "dialogues": len(built.dialogues),
        "generator": built.generator, "rejected": len(built.rejects),
        "turns": {str(t): by_turns[t] for t in sorted(by_turns)},
        "methods": {m: by_method[m] for m in (*METHODS, *COMBINATIONS, "none") if by_method[m]},
        "seeds_without": built.ungrounded,
    }


def build_dataset(seeds_path: str | Path, out: str | Path, opts: Options) -> dict[str, Any]:
    """Write one dialogue per seed x turn length (x method) to `out`, images under out's folder.

    Methods follow `dataset.method_assignment`: `round_robin` rotates the methods by seed position
    and turn length, `random` draws one per (seed id, turns) from `dataset.seed`, and `all` writes
    every method for every seed and N > 1; with `dataset.combine` the combinations join the methods
    for N >= 6. The id is the seed's at every length and in every mode, so (id, turns, method) is the
    key (in `all` mode several methods share an id and a length, and S2 links them per method). Longer dialogues end with the question verbatim or paraphrased
    (`dataset.final_turn`); `question` is always the seed's question verbatim. Dialogues rejected on
    every try are left out and listed with their reason in `<OUT stem>.rejects.jsonl` (always
    written, empty when none). Returns the summary that is also printed as one line.
    """
    out = Path(out)
    built = make_dialogues(seeds_path, opts)
    for rel, data in built.images.values():
        atomic_write_bytes(out.parent / rel, data)
    write_jsonl(rejects_path(out), (r.to_dict() for r in built.rejects))
    write_jsonl(out, (d.to_dict() for d in built.dialogues))
    summary = summarize(built, out)
    print(f"{out}: {summary['dialogues']} dialogues from {summary['seeds']} seeds ({built.generator} generator); "
          "turns " + ", ".join(f"{t}: {n}" for t, n in summary["turns"].items()) + "; methods "
          + ", ".join(f"{m}: {n}" for m, n in summary["methods"].items())
          + f"; rejected {summary['rejected']} ({rejects_path(out)})"
          + "".join(f"; seeds without {k} (family defaults used): {n}" for k, n in built.ungrounded.items()))
    return summary
