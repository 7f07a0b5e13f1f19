"""`kind: llavashield`: LLaVAShield (RealSafe/LLaVAShield-v1.0-7B) as the dialogue moderator.

The prompt is the guard adapter's (`moderation/guards/llavashield.py`): the authors' instruction from
a pinned file or their package (`options.prompt_file`, `options.prompt_sha256`), the policy
dimensions (`options.dimensions`, default: those SafeMT's scenarios map to), the whole dialogue with
its image. The user side's rating is the verdict (Unsafe: malicious; Safe: benign; LLaVAShield has no
`sensitive` answer) and its violated dimension picks the scenario whose policy is injected
(DIMENSION_POLICY; `NA: None applying` or no dimension: the general policy). An unreadable reply, or
one without a user-side rating, takes `on_parse_error`, counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safemt.models import ChatRequest
from safemt.moderation.guards.llavashield import DIMENSION_POLICY, dimensions_of, load_format, parse_shield, render
from safemt.moderation.moderators import MODERATORS, Moderator, ModeratorVerdict


@MODERATORS.register("llavashield")
class LlavaShieldModerator(Moderator):
    """LLaVAShield's own format in, its user-side rating and dimension out."""

    def __init__(self, name: str, cfg: Mapping[str, Any], model: Mapping[str, Any]):
        super().__init__(name, cfg, model)  # loads and checks the format once (load_template)
        self.dimensions = dimensions_of(dict(cfg.get("options") or {}), f"moderators.{name}.options")

    @classmethod
    def load_template(cls, cfg: dict[str, Any], where: str) -> str:
        fmt, _ = load_format(dict(cfg.get("options") or {}), f"moderator {where.split('.', 1)[1]}", where)
        return fmt.text

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "dimensions": list(self.dimensions), "dimension_policy": DIMENSION_POLICY}

    def request(self, key: tuple[str, int], messages: tuple[dict[str, str], ...], image: Path | None) -> ChatRequest:
        image = image if self.image else None
        text = render(self.template, self.dimensions, messages, image is not None)
        return ChatRequest(key, ({"role": "user", "content": text},), image)

    def read(self, text: str) -> ModeratorVerdict:
        reading = parse_shield(text, self.dimensions)
        if reading is None or reading.user is None:
            return ModeratorVerdict(self.on_parse_error == "malicious", None, "", text, parsed=False)
        malicious = reading.user == "unsafe"
        scenario = DIMENSION_POLICY.get(reading.user_dimension or "") if malicious else None
        return ModeratorVerdict(malicious, scenario, reading.user_rationale, text)
