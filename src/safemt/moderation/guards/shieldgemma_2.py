"""ShieldGemma 2 (google/shieldgemma-2-4b-it): the image only, scored per policy.

The model is an image classifier: for each (image, policy) pair its processor writes the prompt the
model was trained on (from the model's own chat template and `policy_definitions`), and
`ShieldGemma2ForImageClassification` returns the probability of `Yes` (the image breaks the policy)
against `No` for the first answer token. So nothing is generated and no prompt text lives here: the
adapter sends a scoring request (ChatRequest.score) naming the policies, the `hf` backend returns
`{policy: P(Yes)}`, and a policy is broken when its P(Yes) reaches `threshold` (options, 0.5 if
unset); the image is unsafe when any policy is broken. The scores are kept in the verdict's raw
output and `scores`.

Options: `policies` (names; none: every policy the model defines), `custom_policies` (name ->
definition, your own text, added to or replacing the model's), `threshold`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from safemt.errors import ConfigError
from safemt.moderation.guards.base import (GUARD_ADAPTERS, GuardAdapter, GuardPrompt, GuardVerdict, GuardView,
                                           InputPolicy)


@GUARD_ADAPTERS.register("shieldgemma_2")
@dataclass
class ShieldGemma2(GuardAdapter):
    sees_text = False
    sees_images = True
    scores = True

    def check_policy(self, policy: InputPolicy, where: str) -> None:
        super().check_policy(policy, where)
        custom = self.options.get("custom_policies") or {}
        if not isinstance(custom, dict) or not all(isinstance(v, str) and v.strip() for v in custom.values()):
            raise ConfigError("custom_policies maps a policy name to its definition (text)",
                              key=f"{where}.options.custom_policies")
        threshold = self.options.get("threshold", 0.5)
        if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ConfigError("threshold is a probability in [0, 1]", key=f"{where}.options.threshold")

    def policies(self) -> tuple[str, ...]:
        """The policy names asked about; empty: all of the model's own (plus custom ones)."""
        return tuple(self.options.get("policies") or ())

    def prompts(self, view: GuardView, stage: str) -> list[GuardPrompt]:
        custom = tuple(sorted((self.options.get("custom_policies") or {}).items()))
        return [GuardPrompt((), view.image, score=self.policies(), custom_policies=custom)]

    def parse(self, texts: list[str], stage: str) -> GuardVerdict | None:
        """`{"dangerous": 0.0123, ...}`, the scoring backend's P(Yes) per policy."""
        if len(texts) != 1:
            return None
        try:
            scores = json.loads(texts[0])
        except ValueError:
            return None
        if not isinstance(scores, dict) or not scores or not all(_probability(p) for p in scores.values()):
            return None
        wanted = self.policies()
        if wanted and tuple(scores) != wanted:
            return None  # scores for other policies than asked: never read as these
        threshold = float(self.options.get("threshold", 0.5))
        broken = tuple(name for name, p in scores.items() if p >= threshold)
        return GuardVerdict(bool(broken), broken, texts[0], scores={k: float(v) for k, v in scores.items()})


def _probability(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1
