"""The SafeMT LLM judge through any model backend (an API model as in the release, or a local one).

The judge reads the original question, the dialogue and the final reply, and answers safe/unsafe.
Unreadable answers are retried with a short reminder appended to the conversation, then labelled
`invalid` with the raw text kept. Backend errors are retried the same way and end as `invalid` with
`judge_error` set, so they are reported and redone by a rerun, never read as a verdict.
"""

from __future__ import annotations

import hashlib
from typing import Any

from safemt.config import model_config
from safemt.judges.base import Judge, JudgeItem, Verdict
from safemt.judges.parsing import parse_verdict
from safemt.judges.prompts import RETRY_REMINDER, load_template, render
from safemt.models import ChatRequest, GenerationResult, get_backend


class LLMJudge(Judge):
    kind = "llm"

    def __init__(self, name: str, cfg: dict[str, Any], params: dict[str, Any]):
        super().__init__(name, cfg, params)
        self.template = load_template(cfg.get("prompt_file"))
        self.mode = cfg.get("scenario_criteria", "release")
        self.retries = int(cfg.get("retries", 2))
        self.backend = get_backend(model_config(params, cfg["model"]))

    @property
    def batch_size(self) -> int:
        return int(self.cfg.get("batch_size", self.backend.batch_size))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.backend.describe(), "scenario_criteria": self.mode,
                "retries": self.retries,
                "template_sha256": hashlib.sha256(self.template.encode("utf-8")).hexdigest()}

    def prompt(self, item: JudgeItem) -> str:
        return render(self.template, question=item.question, messages=item.messages, response=item.response,
                      scenario=item.scenario, mode=self.mode)

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        conversations = {i: [{"role": "user", "content": self.prompt(item)}] for i, item in enumerate(items)}
        verdicts: dict[int, Verdict] = {}
        pending = list(conversations)
        for attempt in range(self.retries + 1):
            requests = [ChatRequest(key=(items[i].id, items[i].turns), messages=tuple(conversations[i]))
                        for i in pending]
            results = self.backend.generate(requests) if requests else []
            still = []
            for i, result in zip(pending, results):
                verdict = self._read(result)
                last_try = attempt == self.retries
                if verdict.label != "invalid" or last_try:
                    verdicts[i] = verdict
                    continue
                still.append(i)
                if result.response is not None:  # show the model its unreadable answer, then remind it
                    conversations[i] += [{"role": "assistant", "content": result.response},
                                         {"role": "user", "content": RETRY_REMINDER}]
            pending = still
        return [verdicts[i] for i in range(len(items))]

    @staticmethod
    def _read(result: GenerationResult) -> Verdict:
        if result.error is not None or result.response is None:
            return Verdict("invalid", "", error=result.error or "no response")
        label = parse_verdict(result.response)
        return Verdict(label or "invalid", result.response)
