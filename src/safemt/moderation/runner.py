"""Applying a defense to a batch of dialogues inside inference: who answers, with what prompt.

One DefenseRunner per inference job: its guard or moderator model is loaded once and asked about a
whole batch at a time. `run` returns, per dialogue, the target's result (or the refusal, or an error)
and the defense fields of the generation record: `blocked_by`, `defense_verdict`, `policy_id`,
`defense_latency_s` (the guard's or moderator's time per dialogue) and, for guard_output,
`target_response` (the answer the guard stopped).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from collections.abc import Mapping
from typing import Any, Protocol

from safemt.models import ChatRequest, GenerationResult
from safemt.moderation.defenses import (DEFENSES, GUARD_KINDS, DefenseSpec, apply_defense, describe_defense,
                                        parse_defense)
from safemt.moderation.guards.runner import Guard, GuardItem
from safemt.moderation.moderators import Moderator
from safemt.moderation.policies import load_policies, place_policy
from safemt.moderation.settings import ModerationSettings
from safemt.records import DEFENSE_FIELDS


class Target(Protocol):
    def generate(self, requests: list[ChatRequest]) -> list[GenerationResult]: ...


@dataclass(frozen=True)
class DefenseInput:
    """One dialogue as the defense sees it: the request as written, and a caption from the dataset."""

    request: ChatRequest
    caption: str | None = None


@dataclass
class Outcome:
    result: GenerationResult
    fields: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(DEFENSE_FIELDS))


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
        self.counts = {"flagged": 0, "parse_failures": 0, "errors": 0, "general_policy": 0}

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
        if self.spec.static:
            return [Outcome(r) for r in target.generate([i.request for i in inputs])]
        if self.spec.kind == "guard_input":
            return self._guard_input(inputs, target)
        if self.spec.kind == "guard_output":
            return self._guard_output(inputs, target)
        return self._moderate(inputs, target)

    def _guard_input(self, inputs: list[DefenseInput], target: Target) -> list[Outcome]:
        checks = self.guard.classify([_item(i) for i in inputs], "input")
        outcomes: list[Outcome | None] = []
        passed: list[int] = []
        for index, check in enumerate(checks):
            if check.error:
                outcomes.append(self._failed(check.error, check.latency_s))
                continue
            fields = self._guard_fields(check)
            if check.verdict.unsafe:
                fields["blocked_by"] = self.guard.name
                outcomes.append(Outcome(self._refusal(), fields))
            else:
                outcomes.append(Outcome(GenerationResult(None), fields))
                passed.append(index)
        answers = target.generate([inputs[i].request for i in passed]) if passed else []  # blocked: never sent
        for index, answer in zip(passed, answers):
            outcomes[index].result = answer
        return outcomes

    def _guard_output(self, inputs: list[DefenseInput], target: Target) -> list[Outcome]:
        answers = target.generate([i.request for i in inputs])
        answered = [k for k, a in enumerate(answers) if a.error is None and a.response is not None]
        checks = self.guard.classify([_item(inputs[k], answers[k].response) for k in answered], "output")
        outcomes = [Outcome(a) for a in answers]
        for k, check in zip(answered, checks):
            if check.error:
                outcomes[k] = self._failed(check.error, check.latency_s)
                continue
            fields = self._guard_fields(check)
            if check.verdict.unsafe:
                fields.update(blocked_by=self.guard.name, target_response=answers[k].response)
                outcomes[k] = Outcome(replace(self._refusal(), latency_s=answers[k].latency_s,
                                              n_input_tokens=answers[k].n_input_tokens), fields)
            else:
                outcomes[k] = Outcome(answers[k], fields)
        return outcomes

    def _moderate(self, inputs: list[DefenseInput], target: Target) -> list[Outcome]:
        start = time.perf_counter()
        requests = [self.moderator.request(i.request.key, i.request.messages, i.request.image) for i in inputs]
        replies = self.moderator.backend.generate(requests)
        latency = round((time.perf_counter() - start) / max(len(inputs), 1), 4)
        outcomes: list[Outcome] = []
        to_target: list[tuple[int, ChatRequest]] = []
        for index, (inp, reply) in enumerate(zip(inputs, replies)):
            if reply.error is not None or reply.response is None:
                outcomes.append(self._failed(f"moderator {self.moderator.name}: {reply.error or 'no response'}",
                                             latency))
                continue
            verdict = self.moderator.read(reply.response)
            self.counts["parse_failures"] += not verdict.parsed
            fields = dict.fromkeys(DEFENSE_FIELDS)
            fields.update(defense_verdict=verdict.to_dict(), defense_latency_s=latency)
            request = inp.request
            if verdict.malicious:
                self.counts["flagged"] += 1
                policy_id, text = self.library.for_scenario(verdict.scenario)
                self.counts["general_policy"] += policy_id == "general"
                fields["policy_id"] = policy_id
                messages = place_policy(list(request.messages), text, self.settings.policy_placement)
                request = replace(request, messages=tuple(messages))
            outcomes.append(Outcome(GenerationResult(None), fields))
            to_target.append((index, request))
        answers = target.generate([r for _, r in to_target]) if to_target else []
        for (index, _), answer in zip(to_target, answers):
            outcomes[index].result = answer
        return outcomes

    # --- pieces ----------------------------------------------------------------------------------

    def _guard_fields(self, check: Any) -> dict[str, Any]:
        self.counts["flagged"] += check.verdict.unsafe
        self.counts["parse_failures"] += not check.verdict.parsed
        fields = dict.fromkeys(DEFENSE_FIELDS)
        fields.update(defense_verdict=check.verdict.to_dict(), defense_latency_s=check.latency_s)
        return fields

    def _refusal(self) -> GenerationResult:
        return GenerationResult(self.settings.refusal, None, "blocked", 0)

    def _failed(self, error: str, latency: float) -> Outcome:
        self.counts["errors"] += 1
        fields = dict.fromkeys(DEFENSE_FIELDS)
        fields["defense_latency_s"] = latency
        return Outcome(GenerationResult.failed(error), fields)

    def report(self) -> dict[str, Any]:
        """Counts for the stage's provenance; parse fallbacks are also said on stderr."""
        if self.counts["parse_failures"]:
            component = self.guard or self.moderator
            fallback = component.on_parse_error
            print(f"safemt: defense {self.spec.name}: {self.counts['parse_failures']} unreadable "
                  f"{'guard' if self.guard else 'moderator'} replies took on_parse_error={fallback}",
                  file=sys.stderr)
        if self.guard and self.guard.stats["captions_missing"]:
            print(f"safemt: guard {self.guard.name}: {self.guard.stats['captions_missing']} images had no caption",
                  file=sys.stderr)
        return {"defense": self.spec.name, **self.counts,
                **({"guard_stats": self.guard.stats} if self.guard else {})}


def _item(inp: DefenseInput, response: str | None = None) -> GuardItem:
    return GuardItem(inp.request.key, inp.request.messages, inp.request.image, inp.caption, response)


__all__ = ["DEFENSE_FIELDS", "DEFENSES", "DefenseInput", "DefenseRunner", "Outcome", "defense_models",
           "defense_reads"]
