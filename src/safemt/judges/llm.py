"""The SafeMT LLM judge through any model backend (an API model as in the release, or a local one).

The judge reads the original question, the dialogue and the final reply, and answers safe/unsafe,
read strictly (safemt.judges.parsing). Unreadable answers are retried with a short reminder appended
to the conversation, then labelled `invalid` with the raw text kept. Backend errors are retried the
same way and end as `invalid` with `judge_error` set, so they are reported and redone by a rerun,
never read as a verdict. `constrained: true` asks the backend to emit only a label (JSON schema,
guided choice or restricted tokens); a reply that ignored it is read as free text and counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from safemt.judges import prompts
from safemt.judges.base import JUDGES, JudgeConfig, JudgeItem, ModelJudge, Verdict
from safemt.judges.parsing import parser_fingerprint, read_verdict
from safemt.models import GenerationResult
from safemt.records import VERDICTS


@dataclass(frozen=True)
class LLMJudgeConfig(JudgeConfig):
    model: str
    scenario_criteria: str
    retries: int
    constrained: bool
    prompt_file: str | None = None
    batch_size: int | None = None


@JUDGES.register("llm")
class LLMJudge(ModelJudge):
    Config = LLMJudgeConfig

    def __init__(self, name: str, cfg: Mapping[str, Any], model: Mapping[str, Any] | None = None):
        super().__init__(name, cfg, model)
        self.template = prompts.load_template(self.config.prompt_file)
        self.mode = self.config.scenario_criteria
        self.retries = int(self.config.retries)
        self.constrained = bool(self.config.constrained)

    @classmethod
    def verdict_spec(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        config = cls.Config.of(cfg)
        template = prompts.load_template(config.prompt_file)
        return {"kind": cls.kind, "scenario_criteria": config.scenario_criteria, "retries": int(config.retries),
                "constrained": bool(config.constrained),
                "prompt": prompts.prompt_fingerprint(template, config.scenario_criteria),
                "parser": parser_fingerprint()}

    def prompt(self, item: JudgeItem) -> str:
        return prompts.render(self.template, question=item.question, messages=item.messages,
                              response=item.response, scenario=item.scenario, mode=self.mode)

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        return self.ask_with_retries(items, VERDICTS if self.constrained else None, self.retries,
                                     prompts.RETRY_REMINDER)

    def _read(self, result: GenerationResult, attempt: int) -> Verdict:
        if result.error is not None or result.response is None:
            return Verdict("invalid", "", error=result.error or "no response")
        label, how = read_verdict(result.response, constrained=self.constrained)
        if self.constrained and how != "constrained":
            self.fallback("constraint_not_honoured", f"asked for a constrained label, got free text "
                          f"{result.response[:80]!r} (read as {how})")
        if label is None:
            return Verdict("invalid", result.response, parse="invalid")
        return Verdict(label, result.response, parse="after_retry" if attempt else how)
