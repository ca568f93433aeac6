"""The CRM's answers fold into one final state, whatever their order or repetitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest

from nurture.core.sales import Answer, accepted_at, final_answer

T = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
ACCEPTED = Answer("a1", "accepted", T)
OPPORTUNITY = Answer("a2", "opportunity", T + timedelta(days=3), amount=24_000)
WON = Answer("a3", "won", T + timedelta(days=20))
LOST = Answer("a4", "lost", T + timedelta(days=25), reason="budget frozen")


@pytest.mark.parametrize("order", list(permutations([ACCEPTED, OPPORTUNITY, WON])))
def test_any_arrival_order_gives_the_same_final_answer(order: tuple[Answer, ...]) -> None:
    final = final_answer(order + order[:1])  # and one replay
    assert final is not None
    assert (final.status, final.amount) == ("won", 24_000)  # the amount carries on


def test_a_late_accepted_never_undoes_a_win() -> None:
    late_accept = Answer("a9", "accepted", T + timedelta(days=40))
    final = final_answer([WON, late_accept])
    assert final is not None and final.status == "won"


def test_between_two_terminal_answers_the_latest_stands() -> None:
    final = final_answer([LOST, WON])
    assert final is not None and (final.status, final.reason) == ("lost", "budget frozen")


def test_accepted_at_is_the_first_answer_that_took_the_lead() -> None:
    rejected = Answer("r1", "rejected", T - timedelta(hours=1), reason="student")
    assert accepted_at([OPPORTUNITY, ACCEPTED, rejected]) == T
    assert accepted_at([rejected]) is None
    assert final_answer([]) is None
