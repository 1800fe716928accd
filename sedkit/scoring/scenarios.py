"""PSDS scenarios and the scoring warning: definitions every scoring module shares (kept apart
so that the threshold-folder path, the operating points and the score-table path import them
without importing one another)."""

from __future__ import annotations

import re
from dataclasses import dataclass


class ScoringWarning(UserWarning):
    """Input that scoring accepted but the user should know about (e.g. dropped detections)."""


@dataclass(frozen=True)
class PSDSParams:
    """One PSDS scenario: psds_eval's detection criteria and the score's weights.

    ``dtc_threshold``/``gtc_threshold``/``cttc_threshold`` are the detection, ground-truth and
    cross-trigger tolerance criteria; ``alpha_ct`` weighs cross-triggers in the effective false
    positive rate, ``alpha_st`` penalises instability across classes, ``max_efpr`` (per hour)
    bounds the area. ``name`` is the key of the score in the results.
    """

    name: str = "psds"
    dtc_threshold: float = 0.5
    gtc_threshold: float = 0.5
    cttc_threshold: float = 0.3
    alpha_ct: float = 0.0
    alpha_st: float = 0.0
    max_efpr: float = 100.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise ValueError(f"PSDS scenario name {self.name!r} must be an identifier")
        for key in ("dtc_threshold", "gtc_threshold", "cttc_threshold", "alpha_ct"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"PSDS {self.name}: {key} must lie in [0, 1], got {value}")
        if self.alpha_st < 0:
            raise ValueError(f"PSDS {self.name}: alpha_st must be >= 0, got {self.alpha_st}")
        if not self.max_efpr > 0:
            raise ValueError(f"PSDS {self.name}: max_efpr must be > 0, got {self.max_efpr}")


# DCASE 2021+ task 4 scenarios. cttc is only used through cross-triggers, which PSDS1 weighs
# with alpha_ct = 0, so its value there changes nothing; 0.3 is what the baselines pass.
PSDS1 = PSDSParams("psds1", 0.7, 0.7, 0.3, 0.0, 1.0, 100.0)
PSDS2 = PSDSParams("psds2", 0.1, 0.1, 0.3, 0.5, 1.0, 100.0)
#: Criteria of the DCASE baselines' intersection-based macro F1.
INTERSECTION_F1 = PSDSParams("intersection_f1", 0.5, 0.5, 0.3)
