"""Rule-based labels for the four jailbreak patterns, for released dialogues that name none.

The release has no method field, so its dialogues are labelled from what is visible in the text
(docs/contracts.md, "Jailbreak methods"), in this order:
- in_context: the final turn asks to follow the examples above ("Following above samples..."), or
  every pre-written answer has the same fake-compliance or Q/A-example shape; a fake "Sure! Here
  is..." opening followed by ordinary turns becomes `in_context+<label of the rest>`;
- roleplay: a fiction or game frame (screenplay, novel, "pretend you are", a persona) in the first
  user turn, or fiction words in two user turns; a frame that only starts at the third user turn or
  later becomes `<label of the lead-in>+roleplay`;
- image_anchor: user turns that start and end on the picture and keep returning to it or to earlier
  turns ("In the image...", "Earlier we talked about...");
- escalation: a real opening (not empty, not a greeting) and a final turn on the same topic as an
  earlier turn (it shares a content word with one): the drift of gradual escalation;
- unknown: any other multi-turn dialogue. No pattern is visible, and the classifier says so rather
  than guessing (it used to fall back to escalation); the count is reported by `classify` and the card.
Two-method combinations (`first+second`, in dialogue order) are labels: the release combines methods
in one dialogue, and the second part is read from the turns after the first pattern ends; a part that
shows no pattern is left out (`in_context` alone).
1-turn dialogues have no method. Labels written here carry `method_inferred: true`.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from safemt.records import Dialogue
from safemt.scenarios import METHODS
from safemt.data.validate import read_dialogues
from safemt.files import write_jsonl

_I = re.IGNORECASE
# An answer that opens with compliance: "Sure, here is ...", "Certainly! Here are ...". Repeated over
# every answer it is the in-context pattern; a single one counts only in its eager "Sure! Here" form,
# since ordinary helpful answers also begin "Sure, here are a few...".
COMPLIANCE = re.compile(r"^\W*(?:sure|certainly|absolutely|of course|okay|ok)\b[\s!,.:]*here(?:'s| is| are)\b", _I)
EAGER = re.compile(r"^\W*(?:sure|certainly|absolutely|of course|okay|ok)!\s*here(?:'s| is| are)\b", _I)
# Many-shot examples written as "Q: ... / A: ...": answers labelled as answers, and a final turn that
# ends on an empty answer slot for the model to fill.
LABELLED_ANSWER = re.compile(r"^\W*(?:a|answer|assistant)\s*:", _I)
OPEN_SLOT = re.compile(r"\b(?:a|answer|assistant(?: answers| says)?)\s*:\s*$", _I)
# A final turn that asks to go on in the manner of the examples before it.
FOLLOW_EXAMPLES = re.compile(
    r"\b(?:follow(?:ing)?|based on|like|as in|in the style of)\s+(?:the\s+|these\s+|those\s+)?"
    r"(?:above|previous|earlier|prior|preceding)\s+(?:samples?|examples?|answers?|ones?|demonstrations?)"
    r"|\b(?:samples?|examples?)\s+(?:above|before)\b|\bsame (?:format|pattern|template)\b"
    r"|\b(?:answer|respond|reply|continue|do)\b[^.?!]{0,20}\bthe same\b", _I)
# A fiction frame: one of these in the first user turn sets the whole dialogue in a story or game ...
FRAME = re.compile(
    r"\b(?:screenplay|script|novel|(?:short )?stor(?:y|ies)|fiction(?:al)?|role[- ]?play(?:ing)?|protagonist|"
    r"pretend(?: to be| you are| you're)|imagine you(?: are|'re)|act as|play the role|"
    r"(?:in|break|breaks|breaking|stay|stays|main|my|your) character|game master|dungeon master|"
    r"text adventure|adventure game|let's play|stage play|radio play|improv|(?:a|the|our|my) play about|"
    r"writing an? (?:\w+ ){0,2}(?:thriller|book|play|scene|comic|sitcom|musical))\b", _I)
# A persona to speak as: "You are Captain Redbeard", "You're Marco" (a capitalised name).
PERSONA = re.compile(r"\b[Yy]ou(?:'re| are) (?:now )?(?!I\b)[A-Z]\w+")
# ... and these count when they recur (or frame the last turn of a short dialogue).
FICTION = re.compile(
    FRAME.pattern + r"|\b(?:character|antagonist|villain|heroine|hero|chapter|narrator|plot|"
    r"(?:continue|write|writing|next|opening) (?:the |a |this )?scene|"
    r"theat(?:er|re|rical)|drama(?:tic)?|movie|film|thriller|campaign|monologue|tragedy|comedy)\b", _I)
# The picture, or an earlier turn, as the anchor of a question.
PICTURE = re.compile(
    r"\b(?:picture|image|photo(?:graph)?|pic|screenshot|illustration|drawing|poster|caption)s?\b|"
    r"\b(?:shown|depicted|pictured)\b", _I)
BACK_REFERENCE = re.compile(
    r"\b(?:earlier|previously|going back to|back to (?:the|what|your)|building on|as (?:we|you) "
    r"(?:said|discussed|mentioned|noted|described)|(?:we|you) (?:talked|discussed|spoke|mentioned|said|described"
    r"|saw|noticed|noted|pointed out|covered)"
    r"|you just (?:said|described|mentioned)|from before|a moment ago)\b", _I)


UNKNOWN = "unknown"


def classify(d: Dialogue) -> str | None:
    """The method a dialogue shows, `unknown` if none is visible, or None for a 1-turn dialogue."""
    if d.turns < 2:
        return None
    users = tuple(m.content for m in d.messages if m.role == "user")
    answers = tuple(m.content for m in d.messages if m.role == "assistant")
    eager = [bool(EAGER.search(a)) for a in answers]
    if _shows_examples(users[-1], answers) or all(eager):
        return "in_context"
    opening = _eager_opening(eager)
    if opening:
        rest = _plain_label(users[opening:], answers[opening:])
        return "in_context" if rest == UNKNOWN else f"in_context+{rest}"
    return _plain_label(users, answers)


def _shows_examples(final: str, answers: tuple[str, ...]) -> bool:
    """The final turn asks to follow the examples, or every answer has the same example shape."""
    if FOLLOW_EXAMPLES.search(final) or OPEN_SLOT.search(final):
        return True
    return len(answers) > 1 and (all(COMPLIANCE.search(a) for a in answers)
                                 or all(LABELLED_ANSWER.search(a) for a in answers))


def _eager_opening(eager: list[bool]) -> int:
    """How many exchanges at the start are eager fake compliance, when none come later (else 0)."""
    n = next((i for i, f in enumerate(eager) if not f), len(eager))
    return n if n and not any(eager[n:]) else 0


def _plain_label(users: tuple[str, ...], answers: tuple[str, ...]) -> str:
    """Role-play, anchoring or escalation (or a lead-in then role-play) without fake compliance."""
    fiction = [bool(FICTION.search(u) or PERSONA.search(u)) for u in users]
    framed = FRAME.search(users[0]) or PERSONA.search(users[0])
    if not (framed or sum(fiction) >= 2 or (len(users) == 2 and fiction[-1])):
        return _anchor_or_escalation(users, answers)
    start = fiction.index(True)
    if start < 2:
        return "roleplay"
    lead = _anchor_or_escalation(users[:start], answers[:start])
    return "roleplay" if lead == UNKNOWN else f"{lead}+roleplay"


def _anchored(text: str) -> bool:
    return bool(PICTURE.search(text) or BACK_REFERENCE.search(text))


def _anchor_or_escalation(users: tuple[str, ...], answers: tuple[str, ...]) -> str:
    """Anchoring when the turns start and end on the picture and keep returning to it or to earlier
    turns; escalation when a real opening drifts to a final turn on the same topic; else unknown."""
    later = users[1:]
    back = any(BACK_REFERENCE.search(u) for u in later)
    if _anchored(users[0]) and _anchored(users[-1]) and (back or all(_anchored(u) for u in later)):
        return "image_anchor"
    earlier = set().union(*(_content_words(t) for t in (*users[:-1], *answers)))
    if len(_content_words(users[0])) >= 2 and _content_words(users[-1]) & earlier:
        return "escalation"
    return UNKNOWN


# Words too common to show that two turns share a topic (content words are cut to five letters).
_WORD = re.compile(r"[a-z][a-z']{2,}")
_COMMON = frozenset("""the and for you are but not can how who why was has had did its our out get got any
all one way use may now see too yes her his him she they them this that about after again also always another anyone anything around because been before being
between both could does doing down each even every from give have having help hello here into just know like
made make many more most much must never only other over please people really same should some someone
something still such than thank thanks that their them then there these they thing things think this those
through very want ways were what when where which while will with would your""".split())


def _content_words(text: str) -> set[str]:
    """Words cut to a crude stem: a plural s dropped, then five letters ("cars"/"car", "satire"/"satirical")."""
    return {(w[:-1] if len(w) > 3 and w.endswith("s") else w)[:5]
            for w in _WORD.findall(text.lower()) if w not in _COMMON}


# --- files and accuracy --------------------------------------------------------------------------------

def label(d: Dialogue) -> Dialogue:
    """The dialogue with an inferred method if it has none; a known method is never overwritten."""
    if d.method is not None:
        return d
    method = classify(d)
    return d if method is None else dataclasses.replace(d, method=method, method_inferred=True)


def classify_file(path: str | Path, out: str | Path) -> dict[str, int]:
    """Label every record of PATH whose method is null; write all records to OUT in the same order."""
    dialogues = [item.dialogue for item in read_dialogues(path)]
    labelled = [label(d) for d in dialogues]
    write_jsonl(out, (d.to_dict() for d in labelled))
    counts = Counter(d.method for d, before in zip(labelled, dialogues) if before.method is None and d.method)
    inferred = {m: counts[m] for m in sorted(counts, key=_method_order)}
    print(f"{out}: {sum(inferred.values())} methods inferred of {len(labelled)} dialogues ("
          + (", ".join(f"{m}: {n}" for m, n in inferred.items()) or "none") + ")")
    return inferred


def _method_order(method: str) -> tuple[int, str]:
    order = (*METHODS, UNKNOWN)
    return (order.index(method) if method in order else len(order), method)


def truth(d: Dialogue) -> str | None:
    """The known method of a dialogue: a hand label (`label`, as in the fixture) or a method not inferred."""
    hand = d.extra.get("label")
    if isinstance(hand, str):
        return hand
    return d.method if d.method is not None and not d.method_inferred else None


def accuracy(dialogues: Iterable[Dialogue]) -> dict[str, Any]:
    """How often the classifier finds the known method of multi-turn dialogues, overall and per method,
    with the confusion matrix (per true method: predicted label -> dialogues)."""
    known = [d for d in dialogues if truth(d) is not None and d.turns > 1]
    confusion: dict[str, Counter] = {}
    for d in known:
        confusion.setdefault(truth(d), Counter())[classify(d) or "none"] += 1
    correct = sum(c[m] for m, c in confusion.items())
    order = sorted(confusion, key=_method_order)
    return {
        "dialogues": len(known),
        "correct": correct,
        "accuracy": round(correct / len(known), 4) if known else None,
        "per_method": {m: {"dialogues": sum(c.values()), "accuracy": round(c[m] / sum(c.values()), 4),
                           "predicted": dict(sorted(c.items()))}
                       for m, c in sorted(confusion.items(), key=lambda kv: _method_order(kv[0]))},
        "confusion_matrix": {"rows": "true label", "columns": "predicted label",
                             "labels": sorted({*order, *(p for c in confusion.values() for p in c)},
                                              key=_method_order),
                             "counts": {m: dict(sorted(confusion[m].items(), key=lambda kv: _method_order(kv[0])))
                                        for m in order}},
    }
