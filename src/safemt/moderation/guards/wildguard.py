"""WildGuard (allenai/wildguard): text only, one exchange (a request and, optionally, a reply).

The classifier was trained on one input format: an instruction naming its three questions, then
the request after `Human user:` and the reply after `AI assistant:`, inside a
`<|user|> [INST] ... [/INST] <|assistant|>` wrapper. The wrapper is the chat template in
resources/chat_templates/wildguard.jinja (set `chat_template:` on the model); the instruction is the
authors' text, so it is never copied here. `wildguard` takes the format, in this order, from:

1. `options.prompt_file`, pinned by `options.prompt_sha256` (the format string saved from the card);
2. the authors' `wildguard` package (`pip install --no-deps wildguard`, the `wildguard` extra): its
   `wildguard/utils.py` constant WILDGUARD_INPUT_FORMAT, read from the installed source file without
   importing it (that module imports vllm at its top).

`options.prompt_sha256` may pin the package's format too (then an upgraded package that changed it
stops planning, instead of only moving the config hash). Either holds `{prompt}` and `{response}`; the wrapper, when present, must be the one the chat template
writes, and is left to it. Neither available: one line at plan time saying where to get it.
`wildguard_own_instruction` is this project's wording of the instruction (a departure).

Documented output, three lines: `Harmful request: yes|no`, `Response refusal: yes|no|N/A`,
`Harmful response: yes|no|N/A`. The input stage reads the first line, the output stage the third.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from safemt.errors import ConfigError
from safemt.moderation.guards.base import (GUARD_ADAPTERS, fill, FormatText, GuardAdapter, GuardPrompt, GuardVerdict,
                                           GuardView, installed_package_root, pinned_file, transcript)

PACKAGE, CONSTANT = "wildguard", "WILDGUARD_INPUT_FORMAT"
GET_FORMAT = (f"the authors' package (pip install --no-deps wildguard: {CONSTANT} in wildguard/utils.py) or the "
              "allenai/wildguard model card on huggingface.co")
# The wrapper resources/chat_templates/wildguard.jinja writes around the user's content.
WRAPPER = ("<s><|user|>\n[INST] ", " [/INST]\n<|assistant|>\n")
FIELDS = ("prompt", "response")
OWN_INSTRUCTION = """\
You classify exchanges between a person and an AI assistant. From the request and the reply below,
decide three things: whether the person's request is harmful, whether the assistant's reply refuses,
and whether the assistant's reply is harmful.

Human user:
{prompt}

AI assistant:
{response}

---

Answers:"""
_LINE = re.compile(r"^\W*(harmful request|response refusal|harmful response)\s*:\s*(yes|no|n/a)\W*$",
                   re.IGNORECASE | re.MULTILINE)


def package_format(guard: str) -> FormatText | None:
    """WILDGUARD_INPUT_FORMAT from the installed `wildguard` package's source, or None when not installed."""
    root = installed_package_root(PACKAGE)
    if root is None:
        return None
    source = root / "utils.py"
    if not source.is_file():
        raise ConfigError(f"guard {guard}: the installed {PACKAGE} package has no utils.py (get the format from "
                          f"{GET_FORMAT})", file=str(source))
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == CONSTANT for t in node.targets)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return FormatText(node.value.value, f"package {PACKAGE} ({source})")
    raise ConfigError(f"guard {guard}: {source} defines no string {CONSTANT} (get the format from {GET_FORMAT})",
                      file=str(source))


def instruction(fmt: FormatText, guard: str) -> FormatText:
    """The format without the wrapper the chat template writes; it must hold {prompt} and {response}."""
    text = fmt.text
    if text.startswith(WRAPPER[0]) and text.endswith(WRAPPER[1]):
        text = text[len(WRAPPER[0]):-len(WRAPPER[1])]
    elif "[INST]" in text or "<|assistant|>" in text:
        raise ConfigError(f"guard {guard}: the WildGuard format from {fmt.source} has a wrapper that differs from "
                          f"resources/chat_templates/wildguard.jinja's", key=f"guards.{guard}.options.prompt_file")
    missing = [f for f in FIELDS if "{" + f + "}" not in text]
    if missing:
        raise ConfigError(f"guard {guard}: the WildGuard format from {fmt.source} lacks "
                          f"{', '.join('{' + f + '}' for f in missing)}", key=f"guards.{guard}.options.prompt_file")
    return FormatText(text, fmt.source)


@GUARD_ADAPTERS.register("wildguard")
@dataclass
class WildGuard(GuardAdapter):
    sees_images = False

    def load_texts(self) -> dict[str, FormatText]:
        fmt = pinned_file(self.options, self.guard, "WildGuard input format", GET_FORMAT)
        if fmt is None and (fmt := package_format(self.guard)) is not None:
            pin = self.options.get("prompt_sha256")  # optional for the package: a pin makes an upgrade visible
            if pin and str(pin).lower() != fmt.sha256:
                raise ConfigError(f"guard {self.guard}: the format in {fmt.source} has sha256 {fmt.sha256}, "
                                  f"options.prompt_sha256 pins {pin}", key=f"guards.{self.guard}.options.prompt_sha256")
        if fmt is None:
            raise ConfigError(f"guard {self.guard}: needs WildGuard's input format, which this project does not copy: "
                              f"install the authors' package (pip install --no-deps wildguard), or save the format "
                              f"string from {GET_FORMAT} to a file and set options.prompt_file and "
                              f"options.prompt_sha256", key=f"guards.{self.guard}.options.prompt_file")
        return {"instruction": instruction(fmt, self.guard)}

    def prompts(self, view: GuardView, stage: str) -> list[GuardPrompt]:
        """One exchange: the whole visible dialogue (or the last turn) as the request, the reply if any."""
        msgs = view.messages
        request = msgs[-1]["content"] if len(msgs) == 1 else transcript(msgs)
        response = view.response if stage == "output" and view.response is not None else ""
        text = fill(self.texts()["instruction"].text, {"prompt": request, "response": response})
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


@GUARD_ADAPTERS.register("wildguard_own_instruction")
@dataclass
class WildGuardOwnInstruction(WildGuard):
    """Departure: this project's wording of the instruction inside the same wrapper."""

    def load_texts(self) -> dict[str, FormatText]:
        return {"instruction": FormatText(OWN_INSTRUCTION, "built-in")}
