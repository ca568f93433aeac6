"""After the promotion: the CRM's answers, the SLA escalations, the daily top leads,
and re-scoring from the event log — on a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from nurture.core.intake import parse_lead
from nurture.core.sales import Answer
from nurture.digest import send_digests
from nurture.evidence import record
from nurture.feedback import escalate_overdue, receive
from nurture.leads import upsert_lead
from nurture.mail import MemoryMailer
from nurture.models import CrmPush, Enrollment, Lead, Promotion, ScoreChange
from nurture.promotion import promote

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # Monday, 09:00 in Paris
RECYCLE = """\
id: long-term
name: Long-term nurture
locales: [en]
entry:
  triggers:
    - tag_added: never-used
steps:
  - id: news
    email: {template: example, kind: newsletter}
"""


@pytest.fixture
def runtime(make_runtime: Any, content_dirs: tuple[Path, Path]) -> Any:
    sequences, templates = content_dirs
    (sequences / "long-term.yaml").write_text(RECYCLE)
    mailer = MemoryMailer()
    built = make_runtime(
        mailer_factory=lambda: mailer,
        sequences_dir=sequences,
        templates_dir=templates,
        scoring_file=ROOT / "sequences" / "rules" / "scoring.yaml",
        routing_file=ROOT / "sequences" / "rules" / "routing.yaml",
    )
    built.mailer = mailer
    return built


def a_lead(runtime: Any, email: str = "marc@dubois-meca.example", **values: Any) -> int:
    data = {"email": email, "first_name": "Marc", "company": "Dubois Méca", "country": "FR",
            "company_size": 400, "job_title": "Directeur de production", **values}  # fmt: skip
    with runtime.sessions.begin() as session:
        lead, _, _ = upsert_lead(session, parse_lead(data), T0)
        return lead.id


def promoted(runtime: Any, lead_id: int) -> int:
    with runtime.sessions.begin() as session:
        lead = session.get(Lead, lead_id)
        promotion = promote(
            session, runtime.content, lead, "demo requested", T0, timedelta(hours=24)
        )
        assert promotion is not None
        return promotion.id


def test_promotion_happens_once_per_cycle(runtime: Any) -> None:
    lead_id = a_lead(runtime)
    promoted(runtime, lead_id)
    with runtime.sessions.begin() as session:
        lead = session.get(Lead, lead_id)
        assert promote(session, runtime.content, lead, "again", T0, timedelta(hours=24)) is None
        assert len(session.scalars(select(CrmPush)).all()) == 1


def test_rejected_lead_is_recycled_into_the_named_sequence_once(runtime: Any) -> None:
    lead_id = a_lead(runtime)
    promotion_id = promoted(runtime, lead_id)
    rejected = Answer("crm-9", "rejected", T0 + timedelta(hours=2), reason="no budget this year")
    for _ in range(2):  # the CRM sends it twice
        with runtime.sessions.begin() as session:
            result = receive(session, runtime.content, promotion_id, rejected,
                             T0 + timedelta(hours=3), recycle_sequence="long-term")  # fmt: skip
    assert result.replay is True
    with runtime.sessions() as session:
        lead = session.get(Lead, lead_id)
        assert (lead.stage, lead.cycle) == ("recycled", 2)
        enrollments = session.scalars(select(Enrollment.sequence_id)).all()
        assert enrollments == ["long-term"]
        promotion = session.get(Promotion, promotion_id)
        assert (promotion.status, promotion.feedback_reason) == ("rejected", "no budget this year")
    # A new cycle: the lead can be promoted again later.
    assert promoted(runtime, lead_id) != promotion_id


def test_a_lost_lead_lands_in_the_sequence_entered_on_recycled_with_nothing_named(
    make_runtime: Any,
) -> None:
    """With the shipped sequences and no NURTURE_RECYCLE_SEQUENCE, a lead sales lose is
    nurtured again in recycled-nurture (its trigger: stage_reached recycled), and its
    log holds no "not put back in a sequence"."""
    from nurture.models import DecisionLog

    shipped = make_runtime(
        sequences_dir=ROOT / "sequences",
        templates_dir=ROOT / "templates",
        scoring_file=ROOT / "sequences" / "rules" / "scoring.yaml",
        routing_file=ROOT / "sequences" / "rules" / "routing.yaml",
    )
    lead_id = a_lead(shipped)
    promotion_id = promoted(shipped, lead_id)
    lost = Answer("crm-4", "lost", T0 + timedelta(days=20), reason="went with a competitor")
    with shipped.sessions.begin() as session:
        result = receive(session, shipped.content, promotion_id, lost, T0 + timedelta(days=20))
    assert result.recycled_into == "recycled-nurture"
    with shipped.sessions() as session:
        active = session.scalars(
            select(Enrollment.sequence_id).where(
                Enrollment.lead_id == lead_id, Enrollment.status == "active"
            )
        ).all()
        kinds = session.scalars(select(DecisionLog.kind).where(DecisionLog.lead_id == lead_id))
        assert active == ["recycled-nurture"]
        assert "not_recycled" not in set(kinds)


def test_out_of_order_answers_end_in_the_same_state(runtime: Any) -> None:
    lead_id = a_lead(runtime)
    promotion_id = promoted(runtime, lead_id)
    answers = [
        Answer("w", "won", T0 + timedelta(days=30), amount=48_000),
        Answer("o", "opportunity", T0 + timedelta(days=5), amount=40_000),
        Answer("a", "accepted", T0 + timedelta(hours=4)),
    ]
    for answer in answers:
        with runtime.sessions.begin() as session:
            receive(session, runtime.content, promotion_id, answer, T0 + timedelta(days=31))
    with runtime.sessions() as session:
        promotion = session.get(Promotion, promotion_id)
        assert (promotion.status, promotion.amount) == ("won", 48_000)
        assert promotion.accepted_at == T0 + timedelta(hours=4)
        # The first answer, opportunity and win, whatever order they arrived in: the
        # funnel, SLA and velocity reports read them here.
        assert (promotion.answered_at, promotion.opportunity_at, promotion.won_at) == (
            T0 + timedelta(hours=4),
            T0 + timedelta(days=5),
            T0 + timedelta(days=30),
        )
        assert session.get(Lead, lead_id).stage == "customer"


def test_a_promotion_nobody_accepts_is_escalated_then_reassigned(runtime: Any) -> None:
    lead_id = a_lead(runtime)
    promotion_id = promoted(runtime, lead_id)
    sla = timedelta(hours=24)
    with runtime.sessions.begin() as session:
        assert escalate_overdue(session, runtime.content, T0 + timedelta(hours=23), sla) == []
    with runtime.sessions.begin() as session:
        assert len(escalate_overdue(session, runtime.content, T0 + timedelta(hours=25), sla)) == 1
    with runtime.sessions.begin() as session:
        assert len(escalate_overdue(session, runtime.content, T0 + timedelta(hours=50), sla)) == 1
    with runtime.sessions() as session:
        promotion = session.get(Promotion, promotion_id)
        assert promotion.sla_breached and promotion.escalations == 2
        assert promotion.rep_email == "sophie.lambert@planifia.example"  # was Julien
        kinds = [p.kind for p in session.scalars(select(CrmPush).order_by(CrmPush.id))]
        assert kinds == ["lead.promoted", "lead.escalated", "lead.reassigned"]
    # Accepted in time: never escalated.
    other = promoted(runtime, a_lead(runtime, "zoe@atelier.example"))
    with runtime.sessions.begin() as session:
        receive(session, runtime.content, other, Answer("x", "accepted", T0), T0)
        assert escalate_overdue(session, runtime.content, T0 + timedelta(days=9), sla) == [
            session.get(Promotion, promotion_id)
        ]


def test_each_rep_gets_the_top_leads_each_morning_once(runtime: Any) -> None:
    for number, visits in enumerate((3, 1, 2, 0)):
        lead_id = a_lead(runtime, f"lead{number}@usine.example")
        with runtime.sessions.begin() as session:
            lead = session.get(Lead, lead_id)
            for _ in range(visits):
                record(session, runtime.content, runtime.settings, lead, "page_visited",
                       {"path": "/customers"}, T0 - timedelta(days=1))  # fmt: skip
    early = datetime(2026, 3, 3, 6, 30, tzinfo=UTC)  # 07:30 in Paris: too early
    assert send_digests(runtime, early) == 0
    morning = datetime(2026, 3, 3, 7, 5, tzinfo=UTC)  # 08:05 in Paris
    assert send_digests(runtime, morning) == 2  # Paris and Brussels: 08:05
    assert send_digests(runtime, morning + timedelta(hours=1)) == 1  # London's 08:05
    assert send_digests(runtime, morning + timedelta(hours=3)) == 0  # once a day each
    to = [m["To"].split("<")[1].rstrip(">") for m in runtime.mailer.messages]
    assert sorted(to) == [
        "emma.clarke@planifia.example",
        "julien.moreau@planifia.example",
        "sophie.lambert@planifia.example",
    ]  # Toronto's morning has not come yet
    to = {m["To"].split("<")[1].rstrip(">"): m for m in runtime.mailer.messages}
    digest = to["julien.moreau@planifia.example"].get_body(("plain",)).get_content()
    assert digest.index("lead0@usine.example") < digest.index("lead2@usine.example")
    assert "lead3@usine.example" not in digest  # did nothing this week
    assert "read customer stories or integrations" in digest  # the evidence
    # An internal email: no list to leave, so no unsubscribe link and no one-click header.
    message = to["julien.moreau@planifia.example"]
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    assert message["List-Id"] is not None


def test_the_daily_list_is_also_a_report_per_rep(runtime: Any) -> None:
    import json

    from click.testing import CliRunner
    from conftest import TEST_SECRET
    from freezegun import freeze_time

    from nurture.cli import cli

    for number, visits in enumerate((3, 1, 2, 0)):
        lead_id = a_lead(runtime, f"lead{number}@usine.example")
        with runtime.sessions.begin() as session:
            lead = session.get(Lead, lead_id)
            for _ in range(visits):
                record(session, runtime.content, runtime.settings, lead, "page_visited",
                       {"path": "/customers"}, T0 - timedelta(days=1))  # fmt: skip
    settings = runtime.settings
    env = {"NURTURE_DATABASE_URL": settings.database_url, "NURTURE_SECRET_KEY": TEST_SECRET,
           "NURTURE_ROUTING_FILE": str(settings.routing_file),
           "NURTURE_SCORING_FILE": str(settings.scoring_file),
           "NURTURE_SEQUENCES_DIR": str(settings.sequences_dir),
           "NURTURE_TEMPLATES_DIR": str(settings.templates_dir)}  # fmt: skip
    with freeze_time(datetime(2026, 3, 3, 7, 5, tzinfo=UTC)):
        out = CliRunner().invoke(
            cli, ["leads", "top", "--rep", "julien.moreau@planifia.example", "--format", "json"],
            env=env,
        )  # fmt: skip
        unknown = CliRunner().invoke(cli, ["leads", "top", "--rep", "x@y.example"], env=env)
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)["rows"]
    assert [(r["rank"], r["email"]) for r in rows] == [
        (1, "lead0@usine.example"), (2, "lead2@usine.example"), (3, "lead1@usine.example")
    ]  # fmt: skip
    assert rows[0]["lead"].startswith("ld_") and rows[0]["name"] == "Marc"
    assert "read customer stories or integrations" in rows[0]["evidence"]
    assert unknown.exit_code == 2 and "no rep x@y.example in the routing file" in unknown.output


def test_rescore_command_recomputes_from_the_event_log(runtime: Any, tmp_path: Path) -> None:
    from nurture.cli import cli

    lead_id = a_lead(runtime)
    with runtime.sessions.begin() as session:
        lead = session.get(Lead, lead_id)
        record(session, runtime.content, runtime.settings, lead, "webinar_registered",
               {"webinar": "planifia-live"}, T0)  # fmt: skip
    scoring = tmp_path / "scoring.yaml"
    text = (ROOT / "sequences" / "rules" / "scoring.yaml").read_text()
    old = "      points: 5\n      cap: {points: 5, per: 30 days}"
    new = "      points: 12\n      cap: {points: 12, per: 30 days}"
    scoring.write_text(text.replace(old, new))
    env = {
        "NURTURE_DATABASE_URL": runtime.settings.database_url,
        "NURTURE_SECRET_KEY": "x" * 32,
        "NURTURE_SCORING_FILE": str(scoring),
        "NURTURE_SEQUENCES_DIR": str(runtime.settings.sequences_dir),
        "NURTURE_TEMPLATES_DIR": str(runtime.settings.templates_dir),
    }
    result = CliRunner().invoke(cli, ["scoring", "rescore"], env=env)
    assert result.exit_code == 0, result.output
    assert "rescored 1 leads: 1 score changes" in result.output
    with runtime.sessions() as session:
        change = session.scalars(select(ScoreChange)).one()
        assert change.points == 12


def test_a_weekend_does_not_count_against_sales(runtime: Any) -> None:
    """Handed over on Friday at 18:00 in Paris with a 24-hour SLA: Friday's last six
    hours and Monday's first eighteen; Saturday evening is not overdue."""
    friday = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)  # 18:00 in Paris
    lead_id = a_lead(runtime)
    with runtime.sessions.begin() as session:
        lead = session.get(Lead, lead_id)
        promotion = promote(session, runtime.content, lead, "demo", friday, timedelta(hours=24))
        assert promotion is not None
        assert promotion.sla_due_at == datetime(2026, 3, 9, 17, 0, tzinfo=UTC)  # Mon 18:00
    sla = timedelta(hours=24)
    with runtime.sessions.begin() as session:
        saturday = friday + timedelta(hours=25)
        assert escalate_overdue(session, runtime.content, saturday, sla) == []
        monday = datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
        assert escalate_overdue(session, runtime.content, monday, sla) == []
        assert (
            len(escalate_overdue(session, runtime.content, monday + timedelta(hours=2), sla)) == 1
        )
