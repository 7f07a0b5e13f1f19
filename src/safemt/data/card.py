"""`safemt data card`: what a dialogue dataset holds, as JSON and as one figure.

The card counts dialogues by scenario x method x turns, the share of each query source, the mean
dialogue length in tokens for each turn count and the build's rejects, and reports how accurate
the rule-based method classifier is on dialogues whose method is known. Same inputs give the same
bytes, so DVC sees a change only when the data changed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from safemt.data.build import Options, make_dialogues, rejects_path
from safemt.data.classify import accuracy
from safemt.records import Dialogue
from safemt.data.validate import read_dialogues
from safemt.errors import ConfigError, SafemtError, first_line
from safemt.figures.style import save_png
from safemt.files import read_jsonl, write_json

WORDS = "whitespace-separated words (str.split) summed over all messages of a dialogue"
Tokenizer = tuple[Callable[[str], int], str]  # a token counter and what it counts
WORD_TOKENS: Tokenizer = (lambda text: len(text.split())), WORDS


def make_card(path: str | Path, out: str | Path, opts: Options, tokens: Tokenizer | None = None,
              figure: str | Path | None = None,
              reference: str | Path | None = None, fixture: str | Path | None = None) -> dict[str, Any]:
    """Write the card of the dialogues in PATH to OUT (and the figure, if asked); return the card.

    The classifier is scored on dialogues built from REFERENCE seeds with every method (the project's
    own dialogues, whose method is known) when given, else on PATH's dialogues with a known method;
    and, beside that, on FIXTURE (hand-labelled dialogues, a `label` field each) when given. Both
    come with their confusion matrix; the labels the classifier gave PATH's dialogues are counted.
    """
    path = Path(path)
    dialogues = [item.dialogue for item in read_dialogues(path)]
    if not dialogues:
        raise SafemtError("no dialogues to describe", file=str(path))
    count_tokens, tokens_defined = tokens or WORD_TOKENS
    card = {
        "file": str(path),
        "dialogues": len(dialogues),
        "counts": counts(dialogues),
        "by_turns": {str(t): n for t, n in sorted(Counter(d.turns for d in dialogues).items())},
        "by_method": _tally(_method(d) for d in dialogues),
        "by_scenario": _tally(d.scenario for d in dialogues),
        "methods_inferred": sum(d.method_inferred for d in dialogues),
        "sources": sources(dialogues),
        "tokens": {"definition": tokens_defined, "mean_per_dialogue": mean_tokens(dialogues, count_tokens)},
        "rejects": rejects(rejects_path(path)),
        "method_classifier": classifier_report(dialogues, opts, reference, fixture),
    }
    if figure is not None:
        draw_figure(card, Path(figure))
    write_json(out, card)
    hand = card["method_classifier"]["hand_labelled"]
    print(f"{out}: card of {card['dialogues']} dialogues; classifier accuracy "
          f"{card['method_classifier']['accuracy']} on {card['method_classifier']['evaluated_on']}"
          + (f", {hand['accuracy']} on {hand['dialogues']} hand-labelled dialogues" if hand else "")
          + (f"; figure {figure}" if figure is not None else ""))
    return card


def _method(d: Dialogue) -> str:
    return d.method or "none"


def _tally(values: Any) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def counts(dialogues: list[Dialogue]) -> dict[str, dict[str, dict[str, int]]]:
    """scenario -> method -> turns -> dialogues, only the cells that are not empty."""
    table: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for d in dialogues:
        table[d.scenario][_method(d)][str(d.turns)] += 1
    return {s: {m: dict(sorted(c.items(), key=lambda kv: int(kv[0]))) for m, c in sorted(by_m.items())}
            for s, by_m in sorted(table.items())}


def sources(dialogues: list[Dialogue]) -> dict[str, dict[str, Any]]:
    """Dialogues per query source (id prefix in the release, `source` in seeds) and their share."""
    tally = Counter(d.source or "unknown" for d in dialogues)
    return {s: {"dialogues": n, "share": round(n / len(dialogues), 4)} for s, n in sorted(tally.items())}


def tokenizer(name: str | None, models: Mapping[str, Any]) -> Tokenizer:
    """Words by default; the tokenizer of the model `dataset.tokenizer` names, if set."""
    if not name:
        return WORD_TOKENS
    if name not in models or "path" not in models[name]:
        raise ConfigError(f"unknown model {name!r} (a models entry with a path)", key="dataset.tokenizer")
    return _hf_tokenizer(name, models[name])


def _hf_tokenizer(name: str, cfg: Mapping[str, Any]) -> Tokenizer:
    from transformers import AutoTokenizer

    from safemt.hub import hub_offline
    from safemt.models.message_images import log_remote_code

    log_remote_code({"name": name, **cfg})
    local = Path(cfg["path"]).is_dir()
    try:
        tok = AutoTokenizer.from_pretrained(cfg["path"], revision=None if local else cfg.get("revision"),
                                            trust_remote_code=bool(cfg.get("trust_remote_code", False)),
                                            local_files_only=hub_offline())
    except (OSError, ValueError) as exc:
        raise SafemtError(f"cannot load the tokenizer of {name!r}: {first_line(exc)}",
                          key="dataset.tokenizer") from None
    defined = (f"tokens of the {name!r} tokenizer ({cfg['path']}), no special tokens, summed over all "
               "messages of a dialogue")
    return (lambda text: len(tok(text, add_special_tokens=False)["input_ids"])), defined


def mean_tokens(dialogues: list[Dialogue], count: Callable[[str], int]) -> dict[str, float]:
    """Mean dialogue length for each turn count (all messages; the image is not counted)."""
    lengths: dict[int, list[int]] = defaultdict(list)
    for d in dialogues:
        lengths[d.turns].append(sum(count(m.content) for m in d.messages))
    return {str(t): round(sum(v) / len(v), 2) for t, v in sorted(lengths.items())}


def rejects(path: Path) -> dict[str, Any]:
    """The build's rejects beside the dataset (none for an imported release)."""
    if not path.exists():
        return {"file": None, "total": 0, "by_check": {}, "by_method": {}}
    rows = read_jsonl(path)
    return {"file": str(path), "total": len(rows), "by_check": _tally(r.get("check", "?") for r in rows),
            "by_method": _tally(r.get("method", "?") for r in rows)}


def classifier_report(dialogues: list[Dialogue], opts: Options, reference: str | Path | None,
                      fixture: str | Path | None = None) -> dict[str, Any]:
    if reference is None:
        report = accuracy(dialogues)
        where = "this file's dialogues whose method is known (not inferred)"
    else:
        report = accuracy(reference_dialogues(reference, opts))
        where = f"template dialogues built from {reference} with every method (method known)"
    hand = None
    if fixture is not None:
        hand = {"file": str(fixture), "labels": "decided by hand from the text before the classifier was run",
                **accuracy(item.dialogue for item in read_dialogues(fixture))}
    inferred = _tally(d.method for d in dialogues if d.method_inferred and d.method)
    return {"evaluated_on": where, **report, "hand_labelled": hand, "labels_inferred_here": inferred}


def reference_dialogues(seeds: str | Path, opts: Options) -> list[Dialogue]:
    """The project's own dialogues: the seeds with every method, by the offline template generator."""
    every = replace(opts, generator="template", assignment="all", combine=False, generator_model=None)
    return make_dialogues(seeds, every).dialogues


# --- figure ----------------------------------------------------------------------------------------------

def draw_figure(card: dict[str, Any], path: Path) -> None:
    """Three panels: dialogues per turn count by method, per scenario, and mean length per turn count."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # labels are drawn as written, never as TeX
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1.3, 1]})
    _by_turns_and_method(axes[0], card)
    scenarios = card["by_scenario"]
    axes[1].barh(list(scenarios), list(scenarios.values()), color="#4c72b0")
    axes[1].invert_yaxis()
    axes[1].tick_params(axis="y", labelsize=7)
    axes[1].set_xlabel("dialogues")
    axes[1].set_title("by scenario", fontsize=10)
    tokens = card["tokens"]["mean_per_dialogue"]
    axes[2].plot([int(t) for t in tokens], list(tokens.values()), marker="o", color="#dd8452")
    axes[2].set_xticks([int(t) for t in tokens])
    axes[2].set_xlabel("dialogue turns")
    unit = "words" if card["tokens"]["definition"] == WORDS else "tokens"
    axes[2].set_ylabel(f"mean {unit} per dialogue")
    axes[2].set_title("length", fontsize=10)
    axes[2].grid(alpha=0.3)
    fig.suptitle(f"dataset: {card['dialogues']} dialogues", fontsize=11)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)


def _by_turns_and_method(ax: Any, card: dict[str, Any]) -> None:
    turns = sorted(card["by_turns"], key=int)
    per: dict[str, Counter] = defaultdict(Counter)
    for by_method in card["counts"].values():
        for method, by_turns in by_method.items():
            per[method].update(by_turns)
    bottom = [0] * len(turns)
    for method in sorted(per):
        heights = [per[method][t] for t in turns]
        ax.bar(turns, heights, bottom=bottom, label=method)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_xlabel("dialogue turns")
    ax.set_ylabel("dialogues")
    ax.set_title("by turns and method", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
