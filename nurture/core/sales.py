"""What the CRM said about a promoted lead, folded into one final answer.

Answers may arrive twice or out of order; the final answer depends only on the set
of answers received, never on their arrival order: the furthest status wins
(accepted < opportunity < won / lost / rejected), then the latest, then the id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

STATUSES = ("accepted", "rejected", "opportunity", "won", "lost")
_RANK = {"pending": 0, "accepted": 1, "opportunity": 2, "won": 3, "lost": 3, "rejected": 3}

# The lifecycle stage each answer moves the lead to (None: no change).
STAGE_AFTER = {
    "accepted": None,  # stays sql
    "opportunity": "opportunity",
    "won": "customer",
    "lost": "recycled",
    "rejected": "recycled",
}


@dataclass(frozen=True)
class Answer:
    external_id: str
    status: str
    occurred_at: datetime
    amount: float | None = None
    reason: str | None = None


def final_answer(answers: Iterable[Answer]) -> Answer | None:
    """The answer that stands, whatever order the others came in."""
    ranked = sorted(answers, key=lambda a: (_RANK[a.status], a.occurred_at, a.external_id))
    if not ranked:
        return None
    final = ranked[-1]
    if final.amount is None:
        # An opportunity's amount carries on to a win reported without one.
        amounts = [a for a in ranked if a.amount is not None]
        if amounts:
            return Answer(final.external_id, final.status, final.occurred_at,
                          amounts[-1].amount, final.reason)  # fmt: skip
    return final


def first_at(answers: Iterable[Answer], statuses: Iterable[str] | None = None) -> datetime | None:
    """When sales first gave one of `statuses` (any answer when None)."""
    wanted = None if statuses is None else frozenset(statuses)
    times = [a.occurred_at for a in answers if wanted is None or a.status in wanted]
    return min(times) if times else None


def accepted_at(answers: Iterable[Answer]) -> datetime | None:
    """When sales first took the lead (any answer but a rejection counts as taking it)."""
    times = [a.occurred_at for a in answers if a.status != "rejected"]
    return min(times) if times else None
