"""Defenses and moderation around the model under test."""

from safemt.moderation.defenses import DEFENSES, apply_defense, describe_defense, get_defense

__all__ = ["DEFENSES", "apply_defense", "describe_defense", "get_defense"]
