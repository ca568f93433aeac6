"""A/B splits, the pure part: which variant a lead gets, how the variants compare, and
when a split has a winner.

Assignment is a hash, not a draw: the same (sequence, split, lead) always falls on the
same point of [0, 1), in any process and on any re-run, so a lead keeps its variant
even before the database records it. The comparison is a one-sided two-proportion
z-test (pooled standard error), with the normal distribution of Python's standard
library (`statistics.NormalDist`): no dependency, and a routine that is well kept.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist

from nurture.core.sequences import HOLDOUT, SplitStep, StopRule

_SCALE = float(2**64)


def bucket(sequence_id: str, split_id: str, lead_key: str) -> float:
    """The lead's point in [0, 1) for this split: the first 8 bytes of a SHA-256."""
    digest = hashlib.sha256(f"{sequence_id}\x1f{split_id}\x1f{lead_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(split: SplitStep, sequence_id: str, lead_key: str, winner: str | None = None) -> str:
    """The variant name (or HOLDOUT) for a lead not assigned yet. Once a split has a
    winner, every new lead gets it: the test is over, the holdout too."""
    if winner is not None and split.variant(winner) is not None:
        return winner
    point = bucket(sequence_id, split.id, lead_key)
    if point < split.holdout:
        return HOLDOUT
    # The rest of [0, 1) is shared out by weight, in the order the file gives.
    point = (point - split.holdout) / (1 - split.holdout)
    total = sum(v.weight for v in split.variants)
    reached = 0
    for variant in split.variants:
        reached += variant.weight
        if point * total < reached:
            return variant.name
    return split.variants[-1].name  # pragma: no cover - floating point at the very top


def share(split: SplitStep, name: str) -> float:
    """The share of new leads a variant (or HOLDOUT) gets by the file's weights."""
    if name == HOLDOUT:
        return split.holdout
    found = split.variant(name)
    total = sum(v.weight for v in split.variants)
    return 0.0 if found is None else (1 - split.holdout) * found.weight / total


def assignment_text(split: SplitStep, name: str, winner: str | None = None) -> str:
    """How an assignment reads in the decision log ("split: variant b (weight 45 %)")."""
    if name == HOLDOUT:
        return f"split: holdout ({_percent(split.holdout)}), gets nothing from this split"
    if winner == name:
        return f"split: variant {name} (the winner: every new lead gets it)"
    found = split.variant(name)
    does = ""
    if found is not None and found.goto is not None:
        does = f", goes to {found.goto}"
    elif found is not None and split.email is not None:
        email = split.email_of(name)
        assert email is not None
        does = f", email {email.template}"
    return f"split: variant {name} (weight {_percent(share(split, name))}){does}"


def _percent(value: float) -> str:
    return f"{value * 100:.3g} %"


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """What the leads assigned one variant did while in the sequence."""

    variant: str
    entered: int = 0  # leads assigned
    sent: int = 0  # the split's email sent to them
    clicked: int = 0  # leads with a human click on an email sent after the assignment
    mql: int = 0  # leads that reached MQL after the assignment, while enrolled
    sql: int = 0  # leads promoted (reached SQL) after the assignment, while enrolled

    def successes(self, metric: str) -> int:
        return {"human_clicks": self.clicked, "mql": self.mql, "sql": self.sql}[metric]

    def rate(self, metric: str) -> float | None:
        return self.successes(metric) / self.entered if self.entered else None


@dataclass(frozen=True)
class Compared:
    """One variant's figures against the control (the first variant of the file)."""

    counts: Counts
    rate: float | None
    # The confidence that this variant's rate beats the control's (None: the control
    # itself, or too few leads to say).
    confidence: float | None


def beats(control: Counts, other: Counts, metric: str) -> float | None:
    """The confidence that `other`'s rate is above `control`'s: one-sided two-proportion
    z-test with a pooled standard error, Φ(z) by `statistics.NormalDist`. None when a
    side has no lead, or when no lead (or every lead) succeeded: z is undefined."""
    n1, n2 = control.entered, other.entered
    if n1 == 0 or n2 == 0:
        return None
    x1, x2 = control.successes(metric), other.successes(metric)
    pooled = (x1 + x2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return None
    z = (x2 / n2 - x1 / n1) / spread
    return NormalDist().cdf(z)


def compare(counts: list[Counts], metric: str, control: str) -> list[Compared]:
    """Each variant's rate and its confidence of beating `control`, in the given order."""
    base = next((c for c in counts if c.variant == control), None)
    out: list[Compared] = []
    for found in counts:
        against = None if base is None or found.variant == control else beats(base, found, metric)
        out.append(Compared(found, found.rate(metric), against))
    return out


def winner(stop: StopRule, counts: list[Counts]) -> tuple[str, float] | None:
    """The variant that wins by the stop rule, with its lowest confidence over the
    others; None while a variant has fewer than `min_per_variant` leads or the leader
    does not beat every other at `confidence`. The holdout is not a candidate."""
    arms = [c for c in counts if c.variant != HOLDOUT]
    if len(arms) < 2 or any(c.entered < stop.min_per_variant for c in arms):
        return None
    leader = max(arms, key=lambda c: (c.rate(stop.metric) or 0.0, -arms.index(c)))
    least = 1.0
    for other in arms:
        if other is leader:
            continue
        found = beats(other, leader, stop.metric)
        if found is None or found < stop.confidence:
            return None
        least = min(least, found)
    return leader.variant, least


@dataclass(frozen=True)
class SplitResults:
    """One split's figures, variant by variant (the holdout last), on `metric`."""

    sequence_id: str
    split: SplitStep
    metric: str
    rows: tuple[Compared, ...]
    winner: str | None = None
    winner_at: datetime | None = None
