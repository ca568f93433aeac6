"""`simulate` for a real lead: why it would get nothing (pure, on the shipped sequence)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nurture.core.journey import Facts, Position
from nurture.core.profile import SAMPLE_LEAD
from nurture.core.sequence_parser import parse_sequence
from nurture.core.simulation import Standing, kept_out, simulate

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "sequences" / "whitepaper-evaluation.yaml"
SEQUENCE = parse_sequence(SOURCE.read_text(encoding="utf-8"), str(SOURCE)).sequence
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEAD = replace(SAMPLE_LEAD, country="FR", company_size=300, stage="lead")


@pytest.mark.parametrize(
    ("lead", "standing", "why"),
    [
        (LEAD, Standing(), None),
        (LEAD, Standing(mail_refusal="unsubscribed"), "the lead may not be mailed: unsubscribed"),
        (replace(LEAD, stage="disqualified"), Standing(), "the lead is disqualified"),
        (replace(LEAD, country="US"), Standing(), "audience: country must be one of"),
        # Left 30 days ago; the sequence lets a lead back 180 days after it left.
        (LEAD, Standing(status="completed", left_at=NOW - timedelta(days=30)),
         "it left on 2026-01-31 and re-entry is allowed 180 days after leaving"),
        (LEAD, Standing(status="completed", left_at=NOW - timedelta(days=200)), None),
        # Inside already: it goes on, whatever the audience says today.
        (replace(LEAD, country="US"), Standing(status="active"), None),
    ],
)  # fmt: skip
def test_why_a_real_lead_would_get_nothing(lead: object, standing: Standing, why: str) -> None:
    assert SEQUENCE is not None
    said = kept_out(SEQUENCE, lead, standing, NOW)  # type: ignore[arg-type]
    assert (said is None) if why is None else (said is not None and said.startswith(why)), said


def test_a_lead_inside_goes_on_from_its_step_and_gets_nothing_twice() -> None:
    assert SEQUENCE is not None
    sent = Facts(lead=LEAD, done=frozenset({"testimonial"}))
    standing = Standing(status="active", position=Position("pause-1", NOW), facts=sent)
    whats = [
        e.what for e in simulate(SEQUENCE, LEAD, NOW + timedelta(hours=1), 30, standing=standing)
    ]
    assert whats[0].startswith("is in whitepaper-evaluation at pause-1 since")
    assert not any("sends testimonial" in what for what in whats)
    assert any("sends guide" in what for what in whats)
