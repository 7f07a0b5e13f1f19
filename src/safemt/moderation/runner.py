"""Applying a defense to a batch of dialogues inside inference: who answers, with what prompt.

One DefenseRunner per inference job: its guard or moderator model is loaded once and asked about a
whole batch at a time. `run` returns, per dialogue, the target's result (or the refusal, or an error)
and the defense fields of the generation record: `blocked_by`, `defense_verdict`, `policy_id`,
and, for guard_output, `target_response` (the answer the guard stopped); the guard's or moderator's
time per dialogue goes with the outcome to the timings (safemt.timings), not into the record.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from collections.abc import Mapping
from typing import Any, Callable, Protocol

from safemt.errors import SafemtError
from safemt.models import ChatRequest, GenerationResult
from safemt.moderation.defenses import (DEFENSES, GUARD_KINDS, DefenseSpec, apply_defense, describe_defense,
                                        parse_defense)
from safemt.moderation.guards.runner import Guard, GuardItem, GuardOutcome
from safemt.moderation.moderators import Moderator, ModeratorVerdict
from safemt.moderation.policies import load_policies, place_policy
from safemt.moderation.settings import ModerationSettings
from safemt.records import DEFENSE_FIELDS
from safemt.registry import Registry


class Target(Protocol):
    def generate(self, requests: list[ChatRequest]) -> list[GenerationResult]: ...


@dataclass(frozen=True)
class DefenseInput:
    """One dialogue as the defense sees it: the request as written, and a caption from the dataset."""

    request: ChatRequest
    caption: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a defense made of one dialogue: the result recorded and the defense fields."""

    result: GenerationResult
    fields: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(DEFENSE_FIELDS))
    defense_latency_s: float | None = None  # measured: goes to the timings, not the record


def defense_reads(spec: DefenseSpec, settings: ModerationSettings) -> dict[str, Any]:
    """What a defense's outputs depend on in the configuration, besides its models' weights: the
    planner serialises it (Snakemake params: a change reruns only that defense's jobs), and the
    runtime's `DefenseRunner.describe` is built from the same settings."""
    if spec.static:
        return {"defense": spec.name}
    if spec.kind in GUARD_KINDS:
        return {"defense": spec.name, "guards": settings.guards[spec.component], "refusal": settings.refusal}
    return {"defense": spec.name, "moderators": settings.moderators[spec.component],
            "policies_sha256": load_policies(settings.policies).sha256, "policy_placement": settings.policy_placement}


def defense_models(spec: DefenseSpec, settings: ModerationSettings, models: Mapping[str, Any]) -> list[str]:
    """The `models:` names a defense loads: its guard's or moderator's model, and a captioner."""
    if spec.static:
        return []
    component = (settings.guards if spec.kind in GUARD_KINDS else settings.moderators)[spec.component]
    caption = (component.get("input") or {}).get("caption")
    return [component["model"]] + ([caption] if caption in models else [])


class DefenseRunner:
    """Defense `name` for one job: static rewrite, or guard / moderator model plus policy library."""

    def __init__(self, name: str, settings: ModerationSettings, models: Mapping[str, Mapping[str, Any]]):
        self.spec: DefenseSpec = parse_defense(name, settings)
        self.settings = settings
        guarded = self.spec.kind in GUARD_KINDS
        self.guard = Guard(self.spec.component, settings.guards[self.spec.component], models) if guarded else None
        self.moderator = (Moderator.named(self.spec.component, settings.moderators, models)
                          if self.spec.kind == "moderator" else None)
        self.library = load_policies(settings.policies) if self.moderator else None
        self.counts = {"flagged": 0, "sensitive": 0, "parse_failures": 0, "errors": 0, "general_policy": 0}

    def describe(self) -> dict[str, Any]:
        """What changes this defense's outputs: enters every generation's config_hash."""
        if self.spec.static:
            return describe_defense(self.spec.kind)
        info: dict[str, Any] = {"name": self.spec.name, "kind": self.spec.kind}
        reads = defense_reads(self.spec, self.settings)
        if self.guard:
            info.update(guard=self.guard.describe(), refusal=reads["refusal"])
        if self.moderator:
            info.update(moderator=self.moderator.describe(), policies_sha256=reads["policies_sha256"],
                        policy_placement=reads["policy_placement"])
        return info

    def prepare(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """Static defenses rewrite the messages up front; the others see them as written."""
        return apply_defense(self.spec.kind, messages) if self.spec.static else [dict(m) for m in messages]

    # --- running ---------------------------------------------------------------------------------

    def run(self, inputs: list[DefenseInput], target: Target) -> list[Outcome]:
        """One outcome per input, in order (checked): the defense kind's strategy from STRATEGIES."""
        strategy = STRATEGIES.get("static" if self.spec.static else self.spec.kind, key="defense")
        outcomes = strategy(self, inputs, target)
        if len(outcomes) != len(inputs):
            raise SafemtError(f"defense {self.spec.name}: {len(outcomes)} outcomes for {len(inputs)} dialogues")
        return outcomes

    # --- pieces the strategies share ------------------------------------------------------------

    def guard_fields(self, check: GuardOutcome) -> dict[str, Any]:
        """The defense fields of a guard's reading (counted once per dialogue)."""
        self.counts["flagged"] += check.verdict.unsafe
        self.counts["parse_failures"] += not check.verdict.parsed
        return {**dict.fromkeys(DEFENSE_FIELDS), "defense_verdict": check.verdict.to_dict()}

    def moderated(self, request: ChatRequest, verdict: ModeratorVerdict) -> tuple[ChatRequest, dict[str, Any]]:
        """What the target receives after the moderator's verdict, with the defense fields."""
        self.counts["parse_failures"] += not verdict.parsed
        fields = {**dict.fromkeys(DEFENSE_FIELDS), "defense_verdict": verdict.to_dict()}
        self.counts["flagged"] += verdict.malicious
        self.counts["sensitive"] += verdict.sensitive
        if verdict.injects:
            policy_id, text = self.library.for_scenario(verdict.scenario)
            self.counts["general_policy"] += policy_id == "general"
            fields["policy_id"] = policy_id
            messages = place_policy(list(request.messages), text, self.settings.policy_placement)
            request = replace(request, messages=tuple(messages))
        return request, fields

    def refusal(self) -> GenerationResult:
        return GenerationResult(self.settings.refusal, None, "blocked", 0)

    def failed(self, error: str, latency: float) -> Outcome:
        self.counts["errors"] += 1
        return Outcome(GenerationResult.failed(error), dict.fromkeys(DEFENSE_FIELDS), latency)

    def start_file(self) -> None:
        """Count afresh: one runner may serve several output files, each with its own provenance."""
        self.counts = dict.fromkeys(self.counts, 0)
        if self.guard:
            self.guard.stats = dict.fromkeys(self.guard.stats, 0)

    def report(self) -> dict[str, Any]:
        """Counts for the stage's provenance (since `start_file`); parse fallbacks are also said on stderr."""
        if self.counts["parse_failures"]:
            component = self.guard or self.moderator
            fallback = component.on_parse_error
            print(f"safemt: defense {self.spec.name}: {self.counts['parse_failures']} unreadable "
                  f"{'guard' if self.guard else 'moderator'} replies took on_parse_error={fallback}",
                  file=sys.stderr)
        if self.guard and self.guard.stats["truncated"]:
            print(f"safemt: guard {self.guard.name}: {self.guard.stats['truncated']} replies were cut at the token "
                  f"limit and read from the part written (parse: truncated); raise max_new_tokens", file=sys.stderr)
        if self.guard and self.guard.stats["captions_missing"]:
            print(f"safemt: guard {self.guard.name}: {self.guard.stats['captions_missing']} images had no caption",
                  file=sys.stderr)
        return {"defense": self.spec.name, **self.counts,
                **({"guard_stats": self.guard.stats} if self.guard else {})}


# --- strategies: how each defense kind runs a batch; each builds every outcome once -----------------

Strategy = Callable[[DefenseRunner, list[DefenseInput], Target], list[Outcome]]
STRATEGIES: Registry[Strategy] = Registry("defense strategy")


def answered(target: Target, requests: list[ChatRequest]) -> list[GenerationResult]:
    """The target's results for REQUESTS, exactly one each (checked); no call for none."""
    if not requests:
        return []
    results = target.generate(requests)
    if len(results) != len(requests):
        raise SafemtError(f"the target returned {len(results)} results for {len(requests)} requests")
    return results


@STRATEGIES.register("static")
def static(runner: DefenseRunner, inputs: list[DefenseInput], target: Target) -> list[Outcome]:
    """The messages were rewritten up front (DefenseRunner.prepare): the target answers every dialogue."""
    return [Outcome(r) for r in answered(target, [i.request for i in inputs])]


@STRATEGIES.register("guard_input")
def guard_input(runner: DefenseRunner, inputs: list[DefenseInput], target: Target) -> list[Outcome]:
    """The guard reads each dialogue first; a flagged one gets the refusal and never reaches the target."""
    checks = runner.guard.classify([_item(i) for i in inputs], "input")
    passed = [k for k, c in enumerate(checks) if not c.error and not c.verdict.unsafe]
    answers = dict(zip(passed, answered(target, [inputs[k].request for k in passed])))
    outcomes = []
    for k, check in enumerate(checks):
        if check.error:
            outcomes.append(runner.failed(check.error, check.latency_s))
        elif check.verdict.unsafe:
            fields = {**runner.guard_fields(check), "blocked_by": runner.guard.name}
            outcomes.append(Outcome(runner.refusal(), fields, check.latency_s))
        else:
            outcomes.append(Outcome(answers[k], runner.guard_fields(check), check.latency_s))
    return outcomes


@STRATEGIES.register("guard_output")
def guard_output(runner: DefenseRunner, inputs: list[DefenseInput], target: Target) -> list[Outcome]:
    """The target answers; the guard reads dialogue plus answer; a flagged answer is replaced by the
    refusal and kept in `target_response`."""
    answers = answered(target, [i.request for i in inputs])
    readable = [k for k, a in enumerate(answers) if a.error is None and a.response is not None]
    checks = dict(zip(readable, runner.guard.classify([_item(inputs[k], answers[k].response) for k in readable],
                                                     "output")))
    outcomes = []
    for k, answer in enumerate(answers):
        check = checks.get(k)
        if check is None:
            outcomes.append(Outcome(answer))
        elif check.error:
            outcomes.append(runner.failed(check.error, check.latency_s))
        elif check.verdict.unsafe:
            fields = {**runner.guard_fields(check), "blocked_by": runner.guard.name, "target_response": answer.response}
            outcomes.append(Outcome(replace(runner.refusal(), latency_s=answer.latency_s,
                                            n_input_tokens=answer.n_input_tokens), fields, check.latency_s))
        else:
            outcomes.append(Outcome(answer, runner.guard_fields(check), check.latency_s))
    return outcomes


@STRATEGIES.register("moderator")
def moderate(runner: DefenseRunner, inputs: list[DefenseInput], target: Target) -> list[Outcome]:
    """The moderator reads each dialogue; on malicious or sensitive the scenario's policy is placed into
    what the target receives, on benign the dialogue goes through untouched."""
    moderator = runner.moderator
    start = time.perf_counter()
    requests = [moderator.request(i.request.key, i.request.messages, i.request.image) for i in inputs]
    replies = answered(moderator.backend, requests)
    latency = round((time.perf_counter() - start) / max(len(inputs), 1), 4)
    prepared: list[tuple[ChatRequest, dict[str, Any]] | Outcome] = []
    for inp, reply in zip(inputs, replies):
        if reply.error is not None or reply.response is None:
            prepared.append(runner.failed(f"moderator {moderator.name}: {reply.error or 'no response'}", latency))
        else:
            prepared.append(runner.moderated(inp.request, moderator.read(reply.response)))
    to_target = [p for p in prepared if not isinstance(p, Outcome)]
    answers = iter(answered(target, [request for request, _ in to_target]))
    return [p if isinstance(p, Outcome) else Outcome(next(answers), p[1], latency) for p in prepared]


def _item(inp: DefenseInput, response: str | None = None) -> GuardItem:
    return GuardItem(inp.request.key, inp.request.messages, inp.request.image, inp.caption, response)


__all__ = ["DEFENSE_FIELDS", "DEFENSES", "STRATEGIES", "DefenseInput", "DefenseRunner", "Outcome", "defense_models",
           "defense_reads"]
