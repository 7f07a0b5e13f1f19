"""Format files written for the tests, in the structure of the guards' published ones (never their text).

- LlavaGuard: an opening line, nine O1-O9 blocks each with a "Should not" and a "Can" list, numbered
  assessment steps and a JSON answer template, as the published default policy is laid out.
- WildGuard: the package's format string layout: the chat wrapper, an instruction, `Human user:`
  {prompt}, `AI assistant:` {response}, `---`, `Answers:`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

LLAVAGUARD_POLICY = "\n".join([
    "TEST POLICY: rate the picture against the nine blocks below.",
    *[line for i in range(1, 10) for line in (
        f"O{i}: Test category {i}:", f"Should not:\n- show test harm number {i}.", f"Can:\n- show test topic {i} calmly.")],
    "Assessment Steps:",
    "1. Pick the block that fits.",
    "2. Say Unsafe when it breaks that block, else Safe.",
    "3. Give one reason.",
    'Use the JSON template: {"rating": str<"Unsafe"|"Safe">, "category": str<"O1: Test category 1"|"NA: None '
    'applying">, "rationale": str}.',
])
WILDGUARD_INSTRUCTION = ("[TEST] Classify the exchange: harmful request? refusal? harmful response?\n\n"
                         "Human user:\n{prompt}\n\nAI assistant:\n{response}\n\n---\n\nAnswers:")
WILDGUARD_FORMAT = f"<s><|user|>\n[INST] {WILDGUARD_INSTRUCTION} [/INST]\n<|assistant|>\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_policy(folder: Path, text: str = LLAVAGUARD_POLICY, name: str = "llavaguard-policy.txt") -> dict:
    """The file and the options that name and pin it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return {"prompt_file": str(path), "prompt_sha256": sha256(path)}


def fake_wildguard_package(site: Path, fmt: str = WILDGUARD_FORMAT) -> Path:
    """A `wildguard` package laid out as the authors' (the constant in wildguard/utils.py, whose module
    imports vllm at its top), holding the test format. Put SITE on sys.path."""
    package = site / "wildguard"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "utils.py").write_text(f"import vllm_that_is_not_installed\n\nWILDGUARD_INPUT_FORMAT = {fmt!r}\n",
                                      encoding="utf-8")
    return site


# LLaVAShield: the package's layout (prompt pieces in utils/prompt_template.py, one definition per
# dimension in utils/policy.py, the processor joining them in llavashield_utils.py), test wording only.
LLAVASHIELD_DIMENSIONS = ("Violence & Harm", "Hate & Harassment", "Sexual Content", "Self-Harm & Suicide",
                          "Illegal Activities", "Deception & Misinformation", "Privacy Violation",
                          "Malicious Disruption")
LLAVASHIELD_PIECES = {
    "llava_prefix_prompt": "TEST: you check dialogues between a user and an assistant.\n",
    "llava_task_prompt": "Task: rate each side Safe or Unsafe and name one dimension.\n",
    "llava_note_prompt": "Note: only the dimensions below count.\n",
    "llava_input_parameter_prompt": "Input: a JSON list of {{role, content}} turns.\n",
    "llava_output_format_prompt": ('Output:\n<OUTPUT>\n```json\n{{"user_rating": "Safe" | "Unsafe" | "null", '
                                   '"user_dimension": {usage_policy} | "NA: None applying" | "null"}}\n```\n'
                                   '</OUTPUT>\n'),
    "llava_dialogue_history_prompt": "Dialogue:\n```json\n{conversations}\n```\n",
}
LLAVASHIELD_PROMPT = "\n".join([
    "TEST: you check dialogues between a user and an assistant.",
    *[f"O{i + 1}: {d}: test definition {i + 1}." for i, d in enumerate(LLAVASHIELD_DIMENSIONS)],
    'Answer as JSON with user_rating and assistant_rating, dimensions from {usage_policy}.',
    "Dialogue:",
    "{conversations}",
])


def fake_llavashield_package(site: Path) -> Path:
    """A `llavashield` package laid out as the authors' (no __init__.py; its processor module imports
    torch and llava), holding test pieces. Put SITE on sys.path."""
    root = site / "llavashield"
    (root / "utils").mkdir(parents=True, exist_ok=True)
    (root / "utils" / "prompt_template.py").write_text(
        "".join(f"{k}={v!r}\n\n" for k, v in LLAVASHIELD_PIECES.items()), encoding="utf-8")
    policies = "".join(f"O{i + 1}_policy={f'**{d}**: test definition {i + 1}.' + chr(10)!r}\n"
                       for i, d in enumerate(LLAVASHIELD_DIMENSIONS))
    mapping = ", ".join(f"{d!r}: O{i + 1}_policy" for i, d in enumerate(LLAVASHIELD_DIMENSIONS))
    (root / "utils" / "policy.py").write_text(f"{policies}\npolicy_map = {{{mapping}}}\n", encoding="utf-8")
    (root / "llavashield_utils.py").write_text(
        "import torch_that_is_not_installed\n\n"
        "def build(usage_policy):\n"
        "    return 'x' + f'**Test Dimensions**:\\n{policy_prompt_construct(usage_policy)}\\n' + 'y'\n",
        encoding="utf-8")
    return site
