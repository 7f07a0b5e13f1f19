"""The `metrics:` section of params, typed: one frozen `MetricsOptions` for the metrics, the SI bootstrap
and the moderation table.

It is built from the section after the schema's defaults are filled in (`safemt.config.fill_defaults`),
so the defaults live in one place, workflow/schemas/params.schema.yaml, and a default written out in a
profile gives the same options (and the same `metrics_params_hash`) as one left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safemt.records import DEFAULT_SI_LABELS


@dataclass(frozen=True)
class Bootstrap:
    """`metrics.bootstrap`: resamples per confidence interval (0: point estimates only) and the base seed."""

    n: int
    seed: int

    def as_dict(self) -> dict[str, int]:
        return {"n": self.n, "seed": self.seed}


@dataclass(frozen=True)
class MetricsOptions:
    """Every key of `metrics:` (README, "Deviations and options", defines each; the schema holds the defaults)."""

    judges: tuple[str, ...] | None  # None: every judge (the caller that knows the judges decides)
    missing_turns: str              # error | renormalize
    weighting: str                  # exp | uniform
    turn_index: str                 # count | first_is_zero
    s2_labels: str                  # release | valid_only
    provider_refusals: str          # safe | missing
    bootstrap: Bootstrap
    si_labels: str = DEFAULT_SI_LABELS  # hard | soft: a graded judge's grades counted unsafe; no schema default

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "MetricsOptions":
        """From the `metrics:` section with the schema's defaults filled in."""
        judges = section.get("judges")
        return cls(judges=None if judges is None else tuple(judges), missing_turns=section["missing_turns"],
                   weighting=section["weighting"], turn_index=section["turn_index"],
                   s2_labels=section["s2_labels"], provider_refusals=section["provider_refusals"],
                   bootstrap=Bootstrap(n=section["bootstrap"]["n"], seed=section["bootstrap"]["seed"]),
                   si_labels=section.get("si_labels", DEFAULT_SI_LABELS))

    def si_options(self) -> dict[str, str]:
        """The keyword options of `safety_index`."""
        return {"missing_turns": self.missing_turns, "weighting": self.weighting, "turn_index": self.turn_index,
                "s2_labels": self.s2_labels}

    def recorded(self) -> dict[str, str]:
        """The options summary.json records in its provenance (`si_labels` only away from its default, so
        that every output of a run without a graded judge, and its hash, stays what it was before it)."""
        extra = {} if self.si_labels == DEFAULT_SI_LABELS else {"si_labels": self.si_labels}
        return {**self.si_options(), "provider_refusals": self.provider_refusals, **extra}

    def as_config(self) -> dict[str, Any]:
        """The section as the schema spells it (default-filled; `judges` only when set, `si_labels` only
        away from its default): what is hashed."""
        out: dict[str, Any] = {} if self.judges is None else {"judges": list(self.judges)}
        return {**out, **self.recorded(), "bootstrap": self.bootstrap.as_dict()}
