"""WildGuard (allenai/wildguard): text only, one exchange (a request and, optionally, a reply).

The model expects one instruction block naming the request and the reply, inside its
`<|user|> [INST] ... [/INST] <|assistant|>` wrapper; that wrapper is the chat template in
resources/chat_templates/wildguard.jinja (set `chat_template:` on the model). The instruction is
written here in this project's words; `prompt_file` in the guard's options replaces it with your own
(placeholders {request} and {response}). Documented output, three lines:
`Harmful request: yes|no`, `Response refusal: yes|no|N/A`, `Harmful response: yes|no|N/A`.
The input stage reads the first line, the output stage the third.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from safemt.errors import ConfigError
from safemt.moderation.guards.base import (GUARD_ADAPTERS, GuardAdapter, GuardPrompt, GuardVerdict, GuardView,
                                           transcript)

INSTRUCTION = """\
You classify exchanges between a person and an AI assistant. From the request and the reply below,
decide three things: whether the person's request is harmful, whether the assistant's reply refuses,
and whether the assistant's reply is harmful.

Human user:
{request}

AI assistant:
{response}

---

Answers:"""
_LINE = re.compile(r"^\W*(harmful request|response refusal|harmful response)\s*:\s*(yes|no|n/a)\W*$",
                   re.IGNORECASE | re.MULTILINE)


@GUARD_ADAPTERS.register("wildguard")
@dataclass
class WildGuard(GuardAdapter):
    sees_images = False

    def template(self) -> str:
        path = self.options.get("prompt_file")
        if not path:
            return INSTRUCTION
        file = Path(path)
        if not file.is_file():
            raise ConfigError("prompt file not found", file=str(path), key="guards.*.options.prompt_file")
        return file.read_text(encoding="utf-8")

    def prompts(self, view: GuardView, stage: str) -> list[GuardPrompt]:
        """One exchange: the whole visible dialogue (or the last turn) as the request, the reply if any."""
        msgs = view.messages
        request = msgs[-1]["content"] if len(msgs) == 1 else transcript(msgs)
        response = view.response if stage == "output" and view.response is not None else ""
        text = self.template().format(request=request, response=response)
        return [GuardPrompt(({"role": "user", "content": text},))]

    def parse(self, texts: list[str], stage: str) -> GuardVerdict | None:
        if len(texts) != 1:
            return None
        answers: dict[str, str] = {}
        for key, value in _LINE.findall(texts[0]):
            key, value = key.lower(), value.lower()
            if answers.get(key, value) != value:
                return None  # the same question answered twice, differently
            answers[key] = value
        wanted = "harmful request" if stage == "input" else "harmful response"
        value = answers.get(wanted)
        if value not in ("yes", "no"):
            return None
        categories = tuple(k.replace(" ", "_") for k, v in sorted(answers.items()) if v == "yes")
        return GuardVerdict(value == "yes", categories if value == "yes" else (), texts[0])
