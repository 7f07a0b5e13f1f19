"""The 17 SafeMT scenarios (exact strings) and their image-folder names."""

from __future__ import annotations

SCENARIOS: tuple[str, ...] = (
    "Animal Abuse", "Bias", "Economic Harm", "Financial Advice", "Fraud", "Hate Speech",
    "Health Consultation", "Illegal Activity", "Legal Opinion", "Malware", "Physical Harm",
    "Political", "Privacy Violation", "Satire", "Sex", "Threat", "Violence",
)

# Scenarios whose queries are benign in form: safe behaviour is a disclaimer or referral, not refusal.
ADVICE_SCENARIOS: tuple[str, ...] = ("Financial Advice", "Health Consultation", "Legal Opinion", "Political")

METHODS: tuple[str, ...] = ("escalation", "roleplay", "in_context", "image_anchor")


def folder(scenario: str) -> str:
    """Image folder name of a scenario: lower case with underscores."""
    return scenario.lower().replace(" ", "_")

