"""Alarms: raised once when the figure crosses its line, cleared once when it comes
back, the owner told by one email each way; time is a parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import nurture.alarms
from nurture.alarms import CHECK_EVERY, check, complaint_alarm, treatment_alarm
from nurture.app import create_app
from nurture.config import load_settings
from nurture.core.alarms import CLEARED, RAISED, Reading, change, crossed, message
from nurture.core.intake import parse_lead
from nurture.enrollment import on_event
from nurture.leads import add_event, upsert_lead
from nurture.mail import MemoryMailer, RetryLater
from nurture.models import AlarmState, Lead, Promotion, SalesFeedback

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def owner(make_runtime: Any) -> tuple[Any, MemoryMailer]:
    mailer = MemoryMailer()
    runtime = make_runtime(mailer_factory=lambda: mailer, alarm_email="marketing@planifia.example")
    return runtime, mailer


def promotions(runtime: Any, answered_in_time: int, late: int, waiting: int) -> None:
    """Promotions handed over on Monday morning a week ago (24 business hours: one
    working day): answered the same day, on Thursday, or not at all."""
    created = NOW - timedelta(days=8)  # Monday 2 March, 10:00 in Paris
    due = created + timedelta(hours=24)
    with runtime.sessions.begin() as session:
        n = session.query(Lead).count()
        for i in range(answered_in_time + late + waiting):
            lead, _, _ = upsert_lead(session, parse_lead({"email": f"l{n + i}@example.com"}),
                                     created)  # fmt: skip
            session.flush()
            status, at = "pending", created
            if i < answered_in_time:
                status, at = "accepted", created + timedelta(hours=3)
            elif i < answered_in_time + late:
                status, at = "accepted", created + timedelta(days=3)
            promotion = Promotion(lead_id=lead.id, cycle=1, reason="score", status=status,
                                  status_at=at, accepted_at=at if status != "pending" else None,
                                  answered_at=at if status != "pending" else None,
                                  escalations=0, sla_breached=False, sla_due_at=due,
                                  created_at=created)  # fmt: skip
            session.add(promotion)
            session.flush()
            if status != "pending":  # sales' answer, as the CRM posts it
                answer = SalesFeedback(promotion_id=promotion.id, external_id=f"crm-{n + i}",
                                       status=status, occurred_at=at, received_at=at)  # fmt: skip
                session.add(answer)


def subjects(mailer: MemoryMailer) -> list[str]:
    return [str(m["Subject"]) for m in mailer.messages]


def test_sales_treating_too_few_raises_once_and_clears_once(owner: Any) -> None:
    runtime, mailer = owner
    promotions(runtime, answered_in_time=7, late=2, waiting=1)  # 70 %
    assert check(runtime, NOW) == "treatment_rate raised, told"
    assert subjects(mailer) == ["[nurture] Treatment rate of leads sent to sales: 70 %, under 80 %"]
    body = mailer.messages[0].get_body(("plain",)).get_content()
    assert (
        "Computed from 7 of 10 promotions of the last 30 days answered within the SLA"
        " (24 business hours)" in body
    )
    assert str(mailer.messages[0]["To"]) == "marketing@planifia.example"
    # Checked again and again while it stays low: not one more email.
    assert check(runtime, NOW + timedelta(minutes=5)) == "not due"
    assert check(runtime, NOW + CHECK_EVERY) == "no change"
    assert check(runtime, NOW + 2 * CHECK_EVERY) == "no change"
    assert len(mailer.messages) == 1
    promotions(runtime, answered_in_time=20, late=0, waiting=0)  # 27 of 30: 90 %
    assert check(runtime, NOW + 3 * CHECK_EVERY) == "treatment_rate cleared, told"
    assert subjects(mailer)[-1] == "[nurture] Treatment rate of leads sent to sales back to 90 %"
    assert check(runtime, NOW + 4 * CHECK_EVERY) == "no change"
    assert len(mailer.messages) == 2


def test_an_alarm_email_that_cannot_leave_is_tried_again(make_runtime: Any) -> None:
    class Down(MemoryMailer):
        def __init__(self) -> None:
            super().__init__()
            self.down = True

        def send(self, message: Any) -> Any:
            return RetryLater("relay down") if self.down else super().send(message)

    mailer = Down()
    runtime = make_runtime(mailer_factory=lambda: mailer, alarm_email="m@planifia.example")
    promotions(runtime, answered_in_time=1, late=4, waiting=0)  # 20 %
    assert check(runtime, NOW) == (
        "treatment_rate raised, not told (tried again at the next check)"
    )
    with runtime.sessions() as session:
        assert session.get(AlarmState, "treatment_rate").raised is False  # not told yet
    mailer.down = False
    assert check(runtime, NOW + CHECK_EVERY) == "treatment_rate raised, told"
    assert len(mailer.messages) == 1


def test_too_few_promotions_is_not_a_rate(owner: Any) -> None:
    runtime, mailer = owner
    promotions(runtime, answered_in_time=0, late=4, waiting=0)  # 0 %, but of 4
    assert check(runtime, NOW) == "no change"
    assert mailer.messages == []


def test_complaints_over_a_tenth_of_a_percent_raise_the_alarm(
    owner: Any, content_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, mailer = owner
    sequences, templates = content_dirs
    (sequences / "hello.yaml").write_text(
        "id: hello\nname: Hello\nlocales: [en]\nentry:\n  triggers:\n    - event: {name: go}\n"
        "steps:\n  - id: one\n    email: {template: example, kind: guide}\n"
    )
    from nurture.runtime import Runtime

    runtime = Runtime(
        load_settings(environ={}, overrides={**runtime.settings.__dict__,
                      "sequences_dir": sequences, "templates_dir": templates}),
        runtime.mailer_factory,
    )  # fmt: skip
    sent_at = NOW - timedelta(hours=3)
    with runtime.sessions.begin() as session:
        for i in range(40):
            lead, _, _ = upsert_lead(session, parse_lead({"email": f"r{i}@example.com"}), sent_at)
            session.flush()
            on_event(session, runtime.content, lead, "go", {}, sent_at)
    assert runtime.dispatcher.tick(sent_at).sent == 40
    monkeypatch.setattr(nurture.alarms, "MIN_SENT", 50)
    with runtime.sessions.begin() as session:
        lead = session.scalars(select(Lead)).first()
        add_event(session, lead, "complained", NOW - timedelta(hours=1), {}, origin="feedback")
    assert check(runtime, NOW) == "no change"  # 1 in 40: too few emails to judge
    monkeypatch.setattr(nurture.alarms, "MIN_SENT", 20)
    assert check(runtime, NOW + CHECK_EVERY) == "complaint_rate raised, told"
    assert subjects(mailer)[-1] == "[nurture] Spam-complaint rate: 2.5 %, over 0.1 %"
    metrics = create_app(runtime=runtime).test_client().get("/metrics").get_data(as_text=True)
    assert 'nurture_alarm{name="complaint_rate"} 1' in metrics
    assert 'nurture_alarm_value{name="complaint_rate"} 0.025' in metrics
    # A day later the complaint is out of the window and nothing is sent: no rate, no change.
    assert check(runtime, NOW + timedelta(days=2)) == "no change"
    runtime.close()


# --- pure ----------------------------------------------------------------------------------


def test_an_alarm_turns_only_when_its_side_changes() -> None:
    settings = load_settings(environ={})
    low = treatment_alarm(settings)
    assert change(False, Reading(low, 0.79, "")) == RAISED
    assert change(True, Reading(low, 0.79, "")) is None
    assert change(True, Reading(low, 0.8, "")) == CLEARED  # on the line is fine
    assert change(True, Reading(low, None, "")) is None  # cannot judge: stays
    high = complaint_alarm(settings)
    assert crossed(Reading(high, 0.0011, "")) is True
    assert crossed(Reading(high, 0.001, "")) is False


def test_thresholds_are_set_as_percentages() -> None:
    settings = load_settings(
        environ={"NURTURE_TREATMENT_ALARM": "75", "NURTURE_COMPLAINT_ALARM": "0.3%"}
    )
    assert settings.treatment_alarm == 0.75 and settings.complaint_alarm == pytest.approx(0.003)
    subject, _ = message(Reading(treatment_alarm(settings), 0.5, "x"), RAISED)
    assert subject == "[nurture] Treatment rate of leads sent to sales: 50 %, under 75 %"
    with pytest.raises(Exception, match="NURTURE_TREATMENT_ALARM"):
        load_settings(environ={"NURTURE_TREATMENT_ALARM": "180"})
