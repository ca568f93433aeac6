"""Reports: figures checked against a small history written out by hand.

The history (March 2026, UTC) is a dozen leads, every stage change, promotion,
answer, amount, cost, enrollment, email, open and click of which is listed below; each
test says how its expected figures follow from it. Reports run through the real
command (`nurture report ... --format json`) on SQLite, or on PostgreSQL with
NURTURE_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import ROOT, TEST_SECRET
from freezegun import freeze_time

from nurture.cli import cli
from nurture.core.business_time import (
    Ledger,
    WorkCalendar,
    business_deadline,
    business_seconds,
    calendar_for,
)
from nurture.core.reports import (
    GROUPINGS,
    Period,
    ReportError,
    days,
    parse_request,
    percent,
    percentile,
    percentile_from_ranks,
    percentile_ranks,
)
from nurture.core.reports_deliverability import DayCount, deliverability
from nurture.core.reports_sla import Handoff, sla
from nurture.core.sales import Answer, first_at
from nurture.hits import summarise
from nurture.models import (
    Cost,
    Delivery,
    Enrollment,
    Event,
    Lead,
    Promotion,
    SalesFeedback,
    StageChange,
    TrackingHit,
)

JULIEN = "julien.moreau@planifia.example"  # Europe/Paris in sequences/rules/routing.yaml
LUC = "luc.tremblay@planifia.example"  # America/Toronto
NOW = "2026-04-01 12:00:00"  # when the reports are run
WP, WB = "whitepaper-evaluation", "webinar-followup"
HYPERLINK = '=HYPERLINK("x")'


def at(text: str) -> datetime:
    """'03-02 09:00' -> 2026-03-02 09:00 UTC."""
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- the history ------------------------------------------------------------------------
Touch = dict[str, str] | None


def touch(channel: str, campaign: str | None = None) -> dict[str, str]:
    return {"channel": channel, **({"campaign": campaign} if campaign else {})}


# Lead: created, source, campaign, first touch, latest touch (None: as the first).
LEADS: dict[str, tuple[str, str | None, str | None, Touch, Touch]] = {
    "L1": ("03-02 09:00", "linkedin", "retargeting", touch("linkedin", "retargeting"), None),
    "L2": ("03-02 10:00", "linkedin", "retargeting", touch("linkedin", "retargeting"), None),
    "L3": ("03-03 09:00", "linkedin", "brand", touch("linkedin", "brand"),
           touch("google", "search")),  # came back through search
    "L4": ("03-02 14:00", "salon", None, touch("salon"), None),
    "L5": ("03-04 09:00", "salon", None, touch("salon"), None),
    "L6": ("03-05 09:00", "salon", None, touch("salon"), None),
    "L7": ("03-06 09:00", HYPERLINK, None, touch(HYPERLINK), None),
    # No channel, no source: the utm_source names it.
    "L8": ("03-09 09:00", None, None, {"utm_source": "linkedin", "utm_medium": "cpc",
                                        "utm_campaign": "retargeting"}, None),
    "L9": ("03-10 09:00", "google", "search", touch("google", "search"), None),
    "L10": ("03-11 09:00", "google", "search", touch("google", "search"), None),
    "L11": ("02-20 09:00", "linkedin", "retargeting", touch("linkedin", "retargeting"), None),
    "L12": ("03-16 09:00", None, None, None, None),  # arrived as a subscriber
}  # fmt: skip

STAGE_CHANGES = [  # lead, from, to, at
    ("L1", "lead", "mql", "03-03 09:00"),
    ("L1", "mql", "sql", "03-06 18:00"),
    ("L1", "sql", "opportunity", "03-16 09:00"),
    ("L1", "opportunity", "customer", "03-30 09:00"),
    ("L2", "lead", "mql", "03-04 10:00"),
    ("L2", "mql", "sql", "03-05 10:00"),
    ("L2", "sql", "recycled", "03-05 15:00"),
    ("L3", "lead", "mql", "03-10 09:00"),
    ("L4", "lead", "sql", "03-02 16:00"),  # a demo request: promoted straight away
    ("L4", "sql", "opportunity", "03-20 10:00"),
    ("L4", "opportunity", "recycled", "03-27 10:00"),
    ("L6", "lead", "mql", "03-05 12:00"),
    ("L6", "mql", "sql", "03-11 09:00"),
    ("L9", "lead", "mql", "03-12 09:00"),
    ("L9", "mql", "sql", "03-31 20:00"),
    ("L10", "lead", "mql", "03-11 10:00"),
    ("L10", "mql", "sql", "03-12 09:00"),
    ("L10", "sql", "opportunity", "03-18 14:00"),
    ("L10", "opportunity", "customer", "03-25 14:00"),
    ("L11", "lead", "mql", "02-25 09:00"),
    ("L11", "mql", "sql", "03-02 09:00"),
    ("L11", "sql", "opportunity", "03-23 10:00"),
    ("L12", "subscriber", "lead", "03-17 09:00"),
]
STAGE_NOW = {"L1": "customer", "L2": "recycled", "L3": "mql", "L4": "recycled", "L6": "sql",
             "L9": "sql", "L10": "customer", "L11": "opportunity"}  # fmt: skip

# Promotion: rep, handed over at, final status, accepted at, amount, escalations.
PROMOTIONS = {
    # Friday 19:00 in Paris; answered Monday 09:30 in Paris.
    "L1": (JULIEN, "03-06 18:00", "won", "03-09 08:30", 12000.0, 1),
    "L2": (LUC, "03-05 10:00", "rejected", None, None, 0),  # 05:00 in Toronto (EST)
    "L4": (JULIEN, "03-02 16:00", "lost", "03-04 16:00", 5000.0, 1),
    "L6": (JULIEN, "03-11 09:00", "pending", None, None, 2),  # never answered
    "L9": (JULIEN, "03-31 20:00", "pending", None, None, 0),  # Tuesday 22:00 in Paris
    "L10": (LUC, "03-12 09:00", "won", "03-12 15:00", 8000.0, 0),  # 05:00 in Toronto (EDT)
    "L11": (JULIEN, "03-02 09:00", "opportunity", "03-02 13:00", 3000.0, 0),
}
ANSWERS = [  # lead, status, occurred at, amount
    ("L1", "accepted", "03-09 08:30", None),
    ("L1", "opportunity", "03-16 09:00", 10000.0),
    ("L1", "won", "03-30 09:00", 12000.0),
    ("L2", "rejected", "03-05 15:00", None),
    ("L4", "accepted", "03-04 16:00", None),
    ("L4", "opportunity", "03-20 10:00", 5000.0),
    ("L4", "lost", "03-27 10:00", None),
    ("L10", "accepted", "03-12 15:00", None),
    ("L10", "opportunity", "03-18 14:00", 8000.0),
    ("L10", "won", "03-25 14:00", 8000.0),
    ("L11", "accepted", "03-02 13:00", None),
    ("L11", "opportunity", "03-23 10:00", 3000.0),
]
COSTS = [  # source, campaign ("" = whole source), month, amount
    ("linkedin", "", "2026-03", "600.00"),
    ("linkedin", "retargeting", "2026-03", "900.00"),
    ("salon", "", "2026-03", "1500.00"),
    ("google", "search", "2026-02", "200.00"),  # another month: not in March's figures
    ("google", "search", "2026-03", "400.00"),
    ("webinar", "", "2026-03", "300.00"),  # money spent, no lead
]
# Enrollment: lead, sequence, entered, left, status, exit reason, step where it is or left.
ENROLLMENTS = {
    "E1": ("L1", WP, "03-02 09:00", "03-06 18:00", "exited", "promoted to sales", "guide"),
    "E2": ("L2", WP, "03-02 10:00", "03-05 10:00", "exited", "promoted to sales", "guide"),
    "E3": ("L3", WP, "03-03 09:00", "03-12 09:05", "exited", "bounced", "comparison"),
    "E4": ("L5", WP, "03-04 09:00", "03-06 09:00", "exited", "bounced", "guide"),
    "E5": ("L8", WP, "03-09 09:00", "03-10 12:00", "exited", "unsubscribed", "testimonial"),
    "E6": ("L6", WB, "03-05 09:00", "03-11 09:00", "exited", "promoted to sales", "recording"),
    "E7": ("L9", WB, "03-10 09:00", "03-31 20:00", "exited", "promoted to sales", "recording"),
    "E8": ("L11", WP, "02-20 09:00", "03-02 09:00", "exited", "promoted to sales", "guide"),
}
# Delivery: enrollment, step, status, at (sent_at when sent; else the last update).
DELIVERIES = {
    "D1": ("E1", "testimonial", "sent", "03-02 09:00"),
    "D2": ("E2", "testimonial", "sent", "03-02 10:00"),
    "D3": ("E3", "testimonial", "sent", "03-03 09:00"),
    "D4": ("E4", "testimonial", "sent", "03-04 09:00"),
    "D5": ("E5", "testimonial", "sent", "03-09 09:00"),
    "D6": ("E8", "testimonial", "sent", "02-20 09:00"),  # February
    "D7": ("E1", "guide", "sent", "03-04 09:00"),
    "D8": ("E2", "guide", "sent", "03-04 10:00"),
    "D9": ("E3", "guide", "sent", "03-05 09:00"),
    "D10": ("E4", "guide", "failed", "03-06 09:00"),  # the relay refused L5's address
    "D11": ("E3", "comparison", "sent", "03-12 09:00"),
    "D12": ("E6", "recording", "sent", "03-06 09:00"),
    "D13": ("E7", "recording", "sent", "03-12 09:00"),
    "D14": ("E6", "deeper-guide", "failed", "03-07 09:00"),  # a template error: never sent
}
BOUNCED_AT = {"L5": "03-06 09:00"}  # written with D10's failure
HITS = [  # delivery, kind, classification, at
    ("D1", "open", "human", "03-02 10:00"),
    ("D1", "open", "human", "03-02 11:00"),  # the same email again: still one open
    ("D1", "click", "human", "03-02 11:05"),
    ("D2", "open", "machine_open", "03-02 10:00"),
    ("D3", "click", "scanner", "03-03 09:00"),
    ("D3", "open", "scanner", "03-03 09:00"),
    ("D3", "open", "human", "03-03 12:00"),
    ("D5", "open", "human", "03-09 10:00"),
    ("D6", "open", "human", "03-01 10:00"),  # an email of February
    ("D7", "click", "human", "03-04 09:30"),
    ("D12", "open", "human", "03-06 10:00"),
    ("D12", "open", "unknown", "03-06 10:01"),
]
EVENTS = [  # lead, name, delivery, at
    ("L8", "unsubscribed", "D5", "03-10 12:00"),
    ("L5", "bounced", "D10", "03-06 09:30"),  # the same bounce, reported again
    ("L3", "bounced", "D11", "03-12 09:05"),  # a bounce message after the relay took it
    ("L3", "bounced", "D11", "03-12 10:00"),  # and the same bounce message again
    ("L9", "complained", "D13", "03-12 18:00"),
    ("L12", "bounced", None, "03-20 10:00"),  # reported for no email we know
]


def write_history(session: Any) -> None:
    leads: dict[str, Lead] = {}
    for key, (created, source, campaign, first, latest) in LEADS.items():
        lead = Lead(
            email=f"{key.lower()}@example.com",
            source=source,
            campaign=campaign,
            first_touch=first,
            latest_touch=latest or first,
            stage=STAGE_NOW.get(key, "subscriber" if key == "L12" else "lead"),
            created_at=at(created),
            updated_at=at(created),
            bounced_at=at(BOUNCED_AT[key]) if key in BOUNCED_AT else None,
        )
        session.add(lead)
        leads[key] = lead
    session.flush()
    # Each change carries when its stay began, as set_stage writes it.
    since = {key: lead.created_at for key, lead in leads.items()}
    for key, before, after, when in sorted(STAGE_CHANGES, key=lambda change: change[3]):
        session.add(StageChange(lead_id=leads[key].id, from_stage=before, to_stage=after,
                                cause="history", since=since[key], at=at(when)))  # fmt: skip
        since[key] = at(when)
    promotions: dict[str, Promotion] = {}
    for key, (rep, sent, status, accepted, amount, escalations) in PROMOTIONS.items():
        promotions[key] = Promotion(
            lead_id=leads[key].id, cycle=1, reason="history",
            rep_name="Julien Moreau" if rep == JULIEN else "Luc Tremblay", rep_email=rep,
            status=status, status_at=at(sent), amount=amount, escalations=escalations,
            sla_breached=escalations > 0, accepted_at=at(accepted) if accepted else None,
            created_at=at(sent),
        )  # fmt: skip
        session.add(promotions[key])
    session.flush()
    for n, (key, status, when, amount) in enumerate(ANSWERS):
        session.add(SalesFeedback(promotion_id=promotions[key].id, external_id=f"crm-{n}",
                                  status=status, amount=amount, occurred_at=at(when),
                                  received_at=at(when)))  # fmt: skip
    # As nurture.feedback.receive keeps them on the promotion with each answer.
    for key, promotion in promotions.items():
        answers = [
            Answer(f"crm-{n}", status, at(when), amount, None)
            for n, (of, status, when, amount) in enumerate(ANSWERS)
            if of == key
        ]
        promotion.answered_at = first_at(answers)
        promotion.opportunity_at = first_at(answers, ("opportunity", "won"))
        promotion.won_at = first_at(answers, ("won",))
    for source, campaign, month, amount in COSTS:
        session.add(Cost(source=source, campaign=campaign, month=month, amount=Decimal(amount),
                         updated_at=at("03-01 00:00")))  # fmt: skip
    enrollments: dict[str, Enrollment] = {}
    for key, (lead, sequence, entered, left, status, reason, step) in ENROLLMENTS.items():
        enrollments[key] = Enrollment(
            lead_id=leads[lead].id, sequence_id=sequence, version="v1", cycle=1, status=status,
            step_id=step, step_started_at=at(entered), entered_at=at(entered),
            left_at=at(left) if left else None, exit_reason=reason,
        )  # fmt: skip
        session.add(enrollments[key])
    session.flush()
    deliveries: dict[str, Delivery] = {}
    for key, (enrollment, step, status, when) in DELIVERIES.items():
        owner = enrollments[enrollment]
        deliveries[key] = Delivery(
            enrollment_id=owner.id, lead_id=owner.lead_id, sequence_id=owner.sequence_id,
            version="v1", step_id=step, template=step, kind="email", status=status,
            message_id=f"<{key}@nurture.test>", to_email="x@example.com",
            created_at=at(when), updated_at=at(when),
            sent_at=at(when) if status == "sent" else None,
        )  # fmt: skip
        session.add(deliveries[key])
    session.flush()
    for delivery, kind, classification, when in HITS:
        row = deliveries[delivery]
        session.add(TrackingHit(delivery_id=row.id, lead_id=row.lead_id, kind=kind, method="GET",
                                classification=classification, at=at(when)))  # fmt: skip
    session.flush()
    # As the hits worker leaves them: each email's engagement from its hits.
    summarise(session, {row.id: row for row in deliveries.values()})
    for lead, name, delivery, when in EVENTS:
        session.add(Event(lead_id=leads[lead].id, name=name, occurred_at=at(when),
                          recorded_at=at(when), origin="api",
                          delivery_id=deliveries[delivery].id if delivery else None))  # fmt: skip


@pytest.fixture
def report(make_runtime: Any) -> Any:
    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        write_history(session)
    env = {
        "NURTURE_DATABASE_URL": runtime.settings.database_url,
        "NURTURE_SECRET_KEY": TEST_SECRET,
        "NURTURE_ROUTING_FILE": str(ROOT / "sequences" / "rules" / "routing.yaml"),
        "NURTURE_SEQUENCES_DIR": str(ROOT / "sequences"),
        "NURTURE_CURRENCY": "EUR",
        "NURTURE_SLA_HOURS": "24",
    }

    def run(*args: str) -> Result:
        with freeze_time(NOW):
            return CliRunner().invoke(cli, ["report", *args], env=env)

    return run


def march(report: Any, *args: str) -> dict[str, Any]:
    done = report(*args, "--from", "2026-03-01", "--to", "2026-03-31", "--format", "json")
    assert done.exit_code == 0, done.output
    result: dict[str, Any] = json.loads(done.output)
    return result


def rows_of(data: dict[str, Any], *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(row[c] for c in columns) for row in data["rows"]]


# --- funnel -----------------------------------------------------------------------------

STEP_COLUMNS = ("step", "leads", "% of previous step", "% of leads", "amount (EUR)")


def test_funnel_cohort_by_source(report: Any) -> None:
    """The leads created in March (all but L11), and how far each got, up to now."""
    data = march(report, "funnel")
    assert data["title"] == "Funnel, cohort view, 2026-03-01 to 2026-03-31 (UTC days), by source"
    assert any(note.startswith("cohort view:") for note in data["notes"])
    by_source: dict[str, list[tuple[Any, ...]]] = {}
    for row in data["rows"]:
        by_source.setdefault(row["source"], []).append(tuple(row[c] for c in STEP_COLUMNS))
    assert list(by_source) == ["(none)", HYPERLINK, "google", "linkedin", "salon", "(all)"]
    # linkedin: L1, L2, L3 (L8 has no source, L11 was created in February). All three
    # became MQL; L1 and L2 were promoted; only L1 accepted (L2 rejected), L1 won 12000.
    assert by_source["linkedin"] == [
        ("leads", 3, None, None, None),
        ("MQL", 3, 100.0, 100.0, None),
        ("SQL (promoted)", 2, 66.7, 66.7, None),
        ("accepted", 1, 50.0, 33.3, None),
        ("opportunity", 1, 100.0, 33.3, 12000.0),
        ("won", 1, 100.0, 33.3, 12000.0),
    ]
    # salon: L4 (promoted straight to sql: still an MQL), L5, L6 (promoted, unanswered);
    # L4 became a 5000 opportunity, then was lost.
    assert by_source["salon"] == [
        ("leads", 3, None, None, None),
        ("MQL", 2, 66.7, 66.7, None),
        ("SQL (promoted)", 2, 100.0, 66.7, None),
        ("accepted", 1, 50.0, 33.3, None),
        ("opportunity", 1, 100.0, 33.3, 5000.0),
        ("won", 0, 0.0, 0.0, 0.0),
    ]
    assert by_source["(none)"][1] == ("MQL", 0, 0.0, 0.0, None)  # L8, L12
    assert by_source["(none)"][2] == ("SQL (promoted)", 0, None, 0.0, None)  # 0 of 0 MQL
    # Everyone: 11 leads; MQL L1 L2 L3 L4 L6 L9 L10; promoted L1 L2 L4 L6 L9 L10;
    # accepted L1 L4 L10; opportunities L1 12000, L4 5000, L10 8000; won L1, L10.
    assert by_source["(all)"] == [
        ("leads", 11, None, None, None),
        ("MQL", 7, 63.6, 63.6, None),
        ("SQL (promoted)", 6, 85.7, 54.5, None),
        ("accepted", 3, 50.0, 27.3, None),
        ("opportunity", 3, 100.0, 27.3, 25000.0),
        ("won", 2, 66.7, 18.2, 20000.0),
    ]


def test_funnel_period_counts_what_happened_in_march(report: Any) -> None:
    """L11 (created in February) was promoted, accepted and made an opportunity in March:
    the period view counts it, the cohort view does not."""
    data = march(report, "funnel", "--view", "period")
    assert data["title"].startswith("Funnel, period view,")
    total = [r for r in rows_of(data, "source", *STEP_COLUMNS) if r[0] == "(all)"]
    assert [r[1:] for r in total] == [
        ("leads", 11, None, None, None),
        ("MQL", 7, 63.6, 63.6, None),  # L11 crossed in February
        ("SQL (promoted)", 7, 100.0, 63.6, None),
        ("accepted", 4, 57.1, 36.4, None),
        ("opportunity", 4, 100.0, 36.4, 28000.0),  # with L11's 3000
        ("won", 2, 50.0, 18.2, 20000.0),
    ]
    linkedin = [r[1:3] for r in rows_of(data, "source", "step", "leads") if r[0] == "linkedin"]
    assert linkedin == [("leads", 3), ("MQL", 3), ("SQL (promoted)", 3), ("accepted", 2),
                        ("opportunity", 2), ("won", 1)]  # fmt: skip


def test_funnel_by_sequence_counts_a_lead_in_each_of_its_sequences(report: Any) -> None:
    data = march(report, "funnel", "--by", "sequence")
    leads = {r[0]: r[2] for r in rows_of(data, "sequence", "step", "leads") if r[1] == "leads"}
    # L1 L2 L3 L5 L8 in the whitepaper (L11 is February's); L6 L9 in the webinar.
    assert leads == {WP: 5, WB: 2, "(none)": 4, "(all)": 11}


def test_funnel_by_sequence_in_the_period_view_counts_what_each_sequence_led_to(
    report: Any,
) -> None:
    """March, period view: each step reached in March, per sequence of the lead's first
    cycle (L4 and L10 were in none; L11, February's lead, reached SQL and beyond in
    March in the whitepaper)."""
    data = march(report, "funnel", "--by", "sequence", "--view", "period")
    counts = {(r[0], r[1]): r[2] for r in rows_of(data, "sequence", "step", "leads")}
    expected = {
        "leads": {WP: 5, WB: 2, "(none)": 4, "(all)": 11},
        "MQL": {WP: 3, WB: 2, "(none)": 2, "(all)": 7},
        "SQL (promoted)": {WP: 3, WB: 2, "(none)": 2, "(all)": 7},
        "accepted": {WP: 2, "(none)": 2, "(all)": 4},
        "opportunity": {WP: 2, "(none)": 2, "(all)": 4},
        "won": {WP: 1, "(none)": 1, "(all)": 2},
    }
    found: dict[str, dict[str, int]] = {}
    for (group, step), count in counts.items():
        if count:
            found.setdefault(step, {})[group] = count
    assert found == expected


def test_funnel_by_month_in_the_period_view_is_the_month_reached(report: Any) -> None:
    done = report("funnel", "--from", "2026-02-01", "--to", "2026-03-31", "--view", "period",
                  "--by", "month", "--format", "json")  # fmt: skip
    rows = rows_of(json.loads(done.output), "month", "step", "leads")
    february = [(step, n) for month, step, n in rows if month == "2026-02"]
    assert february == [("leads", 1), ("MQL", 1), ("SQL (promoted)", 0), ("accepted", 0),
                        ("opportunity", 0), ("won", 0)]  # fmt: skip


# --- SLA --------------------------------------------------------------------------------


def test_sla_by_rep_in_business_hours(report: Any) -> None:
    """Julien (Paris) and Luc (Toronto), 24 business hours, run on 1 April 12:00 UTC.

    Julien: L1 Friday 19:00 -> Monday 09:30 Paris: 5 + 9.5 = 14.5 h, in time.
            L4 Monday 17:00 -> Wednesday 17:00: 7 + 24 + 17 = 48 h, late.
            L6 never answered, deadline long gone: overdue.
            L9 Tuesday 31st 22:00 Paris: 16 business hours so far: not yet due.
            L11 Monday 10:00 -> 14:00: 4 h, in time.
            Treatment 2 / (5 - 1) = 50 %: alarm. Accepted L1 L4 L11: 3 of 3.
            Answers 4, 14.5, 48 h: median 14.5, p90 14.5 + 0.8 x 33.5 = 41.3.
    Luc:    L2 Thursday 05:00 -> 10:00 Toronto (EST): 5 h; rejected.
            L10 Thursday 05:00 -> 11:00 Toronto (EDT since 8 March): 6 h; accepted.
            Treatment 2 / 2 = 100 %. Acceptance 1 / 2. Median 5.5, p90 5.9.
    """
    data = march(report, "sla")
    columns = ("rep", "name", "calendar", "sent", "in time", "late", "overdue", "not yet due",
               "treatment %", "accepted", "acceptance %", "median answer (h)",
               "p90 answer (h)", "breaches", "escalations", "alert")  # fmt: skip
    assert rows_of(data, *columns) == [
        (JULIEN, "Julien Moreau", "Europe/Paris FR", 5, 2, 1, 1, 1, 50.0, 3, 100.0,
         14.5, 41.3, 2, 4, "under 80%"),
        (LUC, "Luc Tremblay", "America/Toronto CA", 2, 2, 0, 0, 0, 100.0, 1, 50.0,
         5.5, 5.9, 0, 0, ""),
        ("(all)", None, None, 7, 4, 1, 1, 1, 66.7, 4, 80.0, 6.0, 34.6, 2, 4, "under 80%"),
    ]  # fmt: skip
    assert data["notes"][:2] == [
        "ALARM: treatment rate 50.0 % for julien.moreau@planifia.example is under 80%",
        "ALARM: treatment rate 66.7 % for everyone is under 80%",
    ]
    assert any("24 business hours" in note for note in data["notes"])


def test_sla_by_source(report: Any) -> None:
    data = march(report, "sla", "--by", "source")
    rows = rows_of(data, "source", "sent", "in time", "late", "treatment %")
    # google L9 (not yet due), L10 (in time); linkedin L1, L2, L11 (in time); salon L4
    # (late), L6 (overdue).
    assert rows == [("google", 2, 1, 0, 100.0), ("linkedin", 3, 3, 0, 100.0),
                    ("salon", 2, 0, 1, 0.0), ("(all)", 7, 4, 1, 66.7)]  # fmt: skip


def test_friday_evening_lead_answered_monday_morning_is_within_the_sla() -> None:
    """62.5 hours on the wall clock, 14.5 business hours on the rep's calendar."""
    paris = calendar_for("Europe/Paris", "UTC", [2026])
    friday = utc(2026, 3, 6, 18)  # 19:00 in Paris
    monday = utc(2026, 3, 9, 8, 30)  # 09:30 in Paris
    handoff = Handoff(1, ("x@example.com",), "x@example.com", "X", friday, monday, True)
    table = sla([handoff], {"x@example.com": paris}, paris, 24, utc(2026, 4, 1, 0), "rep",
                Period(date(2026, 3, 1), date(2026, 3, 31)))  # fmt: skip
    row = table.records()[0]
    assert (row["in time"], row["late"], row["treatment %"]) == (1, 0, Decimal("100.0"))
    assert row["median answer (h)"] == Decimal("14.5")
    assert (monday - friday).total_seconds() / 3600 == 62.5
    assert business_deadline(friday, 24, paris) == utc(2026, 3, 9, 18)  # Monday 19:00


# --- velocity ---------------------------------------------------------------------------


def test_velocity_over_everyone(report: Any) -> None:
    """Stays that ended in March, in days:
    subscriber  L12 1
    lead        L10 1/24, L4 2/24, L6 3/24, L1 1, L2 2, L9 2, L3 7 (L11's ended in February)
                median 1; p90 at rank 5.4: 2 + 0.4 x 5 = 4
    mql         L10 23/24, L2 1, L1 3.375, L11 5, L6 5.875, L9 19.458
                median (3.375 + 5) / 2 = 4.1875; p90 at 4.5: 5.875 + 0.5 x 13.583 = 12.667
    sql         L2 5/24, L10 6.208, L1 9.625, L4 17.75, L11 21.042
                median 9.625; p90 at 3.6: 17.75 + 0.6 x 3.292 = 19.725
    opportunity L4 7, L10 7, L1 14: median 7; p90 at 1.8: 7 + 0.8 x 7 = 12.6
    lead -> won L10 14.208, L1 28: median 21.104; p90 14.208 + 0.9 x 13.792 = 26.621
    """
    data = march(report, "velocity")
    total = [r[1:] for r in rows_of(data, "source", "stage", "count", "median (days)",
                                    "p90 (days)") if r[0] == "(all)"]  # fmt: skip
    assert total == [
        ("subscriber", 1, 1.0, 1.0),
        ("lead", 7, 1.0, 4.0),
        ("mql", 6, 4.19, 12.67),
        ("sql", 5, 9.63, 19.73),
        ("opportunity", 3, 7.0, 12.6),
        ("lead -> won", 2, 21.1, 26.62),
    ]
    linkedin = [r[1:] for r in rows_of(data, "source", "stage", "count", "median (days)")
                if r[0] == "linkedin"]  # fmt: skip
    # L1, L2, L3, L11: lead 1, 2, 7; mql 3.375, 1, 5; sql 9.625, 5/24, 21.042; won L1 28.
    assert linkedin == [("lead", 3, 2.0), ("mql", 3, 3.38), ("sql", 3, 9.63),
                        ("opportunity", 1, 14.0), ("lead -> won", 1, 28.0)]  # fmt: skip


def test_velocity_reads_each_stay_as_the_engine_recorded_it(make_runtime: Any) -> None:
    """Each stage change carries when its stay began (set_stage): the stays velocity
    counts are the lead's own, from its creation and from one change to the next."""
    from datetime import date

    from sqlalchemy import select

    from nurture.core.reports import Period
    from nurture.core.reports_velocity import velocity
    from nurture.enrollment import set_stage
    from nurture.reports import durations

    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        lead = Lead(email="stays@example.com", source="webinar", created_at=utc(2026, 3, 1, 9),
                    updated_at=utc(2026, 3, 1, 9))  # fmt: skip
        session.add(lead)
        session.flush()
        set_stage(session, runtime.content, lead, "mql", utc(2026, 3, 3, 9))
        set_stage(session, runtime.content, lead, "sql", utc(2026, 3, 10, 21))
    with runtime.sessions() as session:
        found = durations(session, Period(date(2026, 3, 1), date(2026, 3, 31)), "source")
        since = session.scalar(select(Lead.stage_since).where(Lead.email == "stays@example.com"))
    table = velocity(found, "source", Period(date(2026, 3, 1), date(2026, 3, 31)))
    days = {(r["source"], r["stage"]): (r["count"], r["median (days)"]) for r in table.records()}
    assert days == {
        ("webinar", "lead"): (1, Decimal("2.00")),
        ("webinar", "mql"): (1, Decimal("7.50")),
        ("(all)", "lead"): (1, Decimal("2.00")),
        ("(all)", "mql"): (1, Decimal("7.50")),
    }
    assert since == utc(2026, 3, 10, 21)


def test_velocity_by_sequence(report: Any) -> None:
    data = march(report, "velocity", "--by", "sequence")
    webinar = [r[1:] for r in rows_of(data, "sequence", "stage", "count", "median (days)")
               if r[0] == WB]  # fmt: skip
    # L6: lead 3/24, mql 5.875; L9: lead 2, mql 19.458.
    assert webinar == [("lead", 2, 1.06), ("mql", 2, 12.67)]


# --- sources ----------------------------------------------------------------------------

SOURCE_COLUMNS = ("leads", "MQL", "SQL", "won", "revenue (EUR)", "cost (EUR)", "per lead",
                  "per MQL", "per SQL", "ROI %")  # fmt: skip


def test_sources_first_touch(report: Any) -> None:
    """Costs of March: linkedin 600 + 900, salon 1500, google 400 (February's 200 is
    left out), webinar 300 with no lead."""
    data = march(report, "sources")
    assert data["title"].startswith("Sources, first-touch attribution,")
    assert rows_of(data, "source", *SOURCE_COLUMNS) == [
        ("(none)", 1, 0, 0, 0, 0.0, None, None, None, None, None),  # L12
        (HYPERLINK, 1, 0, 0, 0, 0.0, None, None, None, None, None),
        # L9, L10; L10 won 8000: ROI (8000 - 400) / 400
        ("google", 2, 2, 2, 1, 8000.0, 400.0, 200.0, 200.0, 200.0, 1900.0),
        # L1, L2, L3, and L8 by its utm_source; L1 won 12000.
        ("linkedin", 4, 3, 2, 1, 12000.0, 1500.0, 375.0, 500.0, 750.0, 700.0),
        ("salon", 3, 2, 2, 0, 0.0, 1500.0, 500.0, 750.0, 750.0, -100.0),
        ("webinar", 0, 0, 0, 0, 0.0, 300.0, None, None, None, -100.0),
        # 3700 / 11, / 7, / 6; (20000 - 3700) / 3700
        ("(all)", 11, 7, 6, 2, 20000.0, 3700.0, 336.36, 528.57, 616.67, 440.5),
    ]  # fmt: skip


def test_sources_last_touch_moves_l3_to_google(report: Any) -> None:
    data = march(report, "sources", "--attribution", "last")
    assert data["title"].startswith("Sources, last-touch attribution,")
    rows = {r[0]: r[1:] for r in rows_of(data, "source", "leads", "MQL", "per lead")}
    assert rows["google"] == (3, 3, 133.33)
    assert rows["linkedin"] == (3, 2, 500.0)


def test_sources_by_campaign(report: Any) -> None:
    data = march(report, "sources", "--by", "campaign")
    rows = rows_of(data, "source", "campaign", "leads", "won", "cost (EUR)", "per lead", "ROI %")
    assert rows == [
        ("(none)", "(none)", 1, 0, None, None, None),
        (HYPERLINK, "(none)", 1, 0, None, None, None),
        ("google", "search", 2, 1, 400.0, 200.0, 1900.0),
        ("linkedin", "(whole source)", 0, 0, 600.0, None, -100.0),
        ("linkedin", "brand", 1, 0, None, None, None),
        ("linkedin", "retargeting", 3, 1, 900.0, 300.0, 1233.3),  # L1, L2, L8
        ("salon", "(none)", 3, 0, None, None, None),
        ("salon", "(whole source)", 0, 0, 1500.0, None, -100.0),
        ("webinar", "(whole source)", 0, 0, 300.0, None, -100.0),
        ("(all)", "", 11, 2, 3700.0, 336.36, 440.5),
    ]


# --- sequences --------------------------------------------------------------------------


def test_sequences_per_step(report: Any) -> None:
    data = march(report, "sequences")
    columns = ("sequence", "step", "entered", "sent", "delivered", "opened", "clicked",
               "open %", "click %", "machine", "scanner", "unsubscribed", "bounced",
               "complained", "exits", "reached MQL", "reached SQL")  # fmt: skip
    assert rows_of(data, *columns) == [
        # L6 and L9: each opened (D12) or complained (D13), then was promoted.
        (WB, "(all)", 2, 2, 2, 1, 0, 50.0, 0.0, 0, 0, 0, 0, 1, "promoted to sales 2", 2, 2),
        (WB, "recording", None, 2, 2, 1, 0, 50.0, 0.0, 0, 0, 0, 0, 1, "promoted to sales 2",
         None, None),
        # Entered: E1-E5 (E8 entered in February). 10 emails sent (D6 is February's, D14
        # never left), D10 refused and D11 bounced later. Reached MQL while inside: L1,
        # L2, L3; SQL: L1, L2, and L11 (promoted on 2 March, its last day inside).
        (WP, "(all)", 5, 10, 8, 3, 2, 37.5, 25.0, 1, 1, 1, 2, 0,
         "promoted to sales 3, bounced 2, unsubscribed 1", 3, 3),
        # In file order. D1 opened twice and clicked, D3 opened (and scanned), D5 opened;
        # D2 only by a machine; L8 unsubscribed from D5.
        (WP, "testimonial", None, 5, 5, 3, 1, 60.0, 20.0, 1, 1, 1, 0, 0, "unsubscribed 1",
         None, None),
        (WP, "guide", None, 4, 3, 0, 1, 0.0, 33.3, 0, 0, 0, 1, 0,
         "promoted to sales 3, bounced 1", None, None),
        (WP, "comparison", None, 1, 0, 0, 0, None, None, 0, 0, 0, 1, 0, "bounced 1",
         None, None),
    ]  # fmt: skip


# --- deliverability ---------------------------------------------------------------------


def test_deliverability_per_day(report: Any) -> None:
    data = march(report, "deliverability")
    columns = ("day", "sent", "bounced", "bounce %", "complained", "complaint %", "alert")
    assert rows_of(data, *columns) == [
        ("2026-03-02", 2, 0, 0.0, 0, 0.0, ""),
        ("2026-03-03", 1, 0, 0.0, 0, 0.0, ""),
        ("2026-03-04", 3, 0, 0.0, 0, 0.0, ""),
        ("2026-03-05", 1, 0, 0.0, 0, 0.0, ""),
        # D12, and D10 refused: one bounce, not two (its later report is the same one)
        ("2026-03-06", 2, 1, 50.0, 0, 0.0, "bounces >= 0.3 %"),
        ("2026-03-09", 1, 0, 0.0, 0, 0.0, ""),
        ("2026-03-12", 2, 1, 50.0, 1, 50.0, "bounces >= 0.3 %; complaints >= 0.3 %"),
        ("2026-03-20", 0, 1, None, 0, None, ""),  # a bounce reported for no known email
        ("(all)", 12, 3, 25.0, 1, 8.333, "bounces >= 0.3 %; complaints >= 0.3 %"),
    ]
    assert (
        "WARNING: bounce rate 50.000 % on 2026-03-06, at or above 0.3 % (never reach it)"
        in (data["notes"])
    )


def test_deliverability_thresholds() -> None:
    rows = [
        DayCount("2026-03-02", "sent", 2000),
        DayCount("2026-03-02", "bounced", 1),  # 0.05 %: fine
        DayCount("2026-03-03", "sent", 1000),
        DayCount("2026-03-03", "complained", 2),  # 0.2 %: over 0.1
        DayCount("2026-03-04", "sent", 1000),
        DayCount("2026-03-04", "complained", 3),  # 0.3 %: reached the limit
    ]
    data = deliverability(rows, Period(date(2026, 3, 2), date(2026, 3, 4)))
    shown = [(r["day"], r["bounce %"], r["complaint %"], r["alert"]) for r in data.records()]
    assert shown == [
        ("2026-03-02", Decimal("0.050"), Decimal("0.000"), ""),
        ("2026-03-03", Decimal("0.000"), Decimal("0.200"), "complaints >= 0.1 %"),
        ("2026-03-04", Decimal("0.000"), Decimal("0.300"), "complaints >= 0.3 %"),
        ("(all)", Decimal("0.025"), Decimal("0.125"), "complaints >= 0.1 %"),
    ]
    assert data.notes[0] == (
        "WARNING: complaint rate 0.200 % on 2026-03-03, at or above 0.1 % (keep under it)"
    )


# --- every report, every grouping -------------------------------------------------------

COMBINATIONS = [
    (name, by, extra)
    for name, groupings in GROUPINGS.items()
    for by in groupings
    for extra in (
        (("--view", "cohort"), ("--view", "period")) if name == "funnel"
        else (("--attribution", "first"), ("--attribution", "last")) if name == "sources"
        else ((),)
    )
]  # fmt: skip


def test_every_report_runs_under_every_grouping_it_allows(report: Any) -> None:
    for name, by, extra in COMBINATIONS:
        done = report(name, "--from", "2026-03-01", "--to", "2026-03-31", "--by", by, *extra)
        asked = " ".join((name, by, *extra))
        assert done.exit_code == 0, f"{asked}: {done.output}"
        lines = done.output.splitlines()
        assert lines[0].startswith(name.capitalize() if name != "sla" else "Sales SLA"), asked
        assert any(line.startswith(("(all)", WB)) for line in lines), asked


# --- output and arguments ---------------------------------------------------------------


def test_a_source_named_like_a_formula_is_text_in_csv(report: Any) -> None:
    for name in ("funnel", "sources"):
        done = report(name, "--from", "2026-03-01", "--to", "2026-03-31", "--format", "csv")
        assert done.exit_code == 0, done.output
        cells = [row[0] for row in csv.reader(io.StringIO(done.output))]
        assert "'" + HYPERLINK in cells
        assert HYPERLINK not in cells


def test_the_text_table_states_its_definitions_above_the_figures(report: Any) -> None:
    done = report("sla", "--from", "2026-03-01", "--to", "2026-03-31")
    lines = done.output.splitlines()
    assert lines[0] == "Sales SLA, 2026-03-01 to 2026-03-31 (UTC days), by rep"
    assert lines[1].startswith("  ALARM: treatment rate 50.0 %")
    header = next(i for i, line in enumerate(lines) if line.startswith("rep "))
    assert any("business hours" in line for line in lines[1:header])
    assert "Julien Moreau" in lines[header + 2]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("churn", "--from", "2026-03-01", "--to", "2026-03-31"), "unknown report 'churn'"),
        ((), "which report?"),
        (("funnel", "--from", "2026-04-01", "--to", "2026-03-31"),
         "--from 2026-04-01 is after --to 2026-03-31"),
        (("funnel", "--from", "2026-02-30", "--to", "2026-03-31"),
         "--from: expected a day as YYYY-MM-DD"),
        (("funnel", "--from", "01/03/2026", "--to", "2026-03-31"),
         "--from: expected a day as YYYY-MM-DD"),
        (("funnel", "--to", "2026-03-31"), "--from is required"),
        (("sla", "--from", "2026-03-01", "--to", "2026-03-31", "--by", "week"),
         "sla cannot be grouped --by week"),
        (("sources", "--from", "2026-03-01", "--to", "2026-03-31", "--by", "rep"),
         "sources cannot be grouped --by rep"),
        (("funnel", "--from", "2026-03-01", "--to", "2026-03-31", "--format", "xlsx"),
         "--format xlsx: expected table, csv or json"),
        (("sla", "--from", "2026-03-01", "--to", "2026-03-31", "--view", "cohort"),
         "--view cohort: the funnel report takes"),
        (("funnel", "--from", "2026-03-01", "--to", "2026-03-31", "--colour"),
         "No such option '--colour'"),
    ],
)  # fmt: skip
def test_bad_arguments_give_one_line_and_exit_code_2(
    report: Any, args: tuple[str, ...], said: str
) -> None:
    done = report(*args)
    assert done.exit_code == 2
    assert len(done.output.splitlines()) == 1, done.output
    assert done.output.startswith("Error: ") and said in done.output


# --- pure: percentiles, business hours, requests -------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([7.0], 90, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # any order
        ([1.0, 2.0, 3.0, 4.0, 5.0], 50, 3.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 90, 4.6),
        ([10.0, 20.0], 90, 19.0),
        ([1.0, 2.0, 3.0], 0, 1.0),
        ([1.0, 2.0, 3.0], 100, 3.0),
    ],
)
def test_percentile(values: list[float], q: int, expected: float | None) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize("n", range(1, 12))
@pytest.mark.parametrize("q", [50, 90, 95])
def test_the_ranks_the_database_returns_are_enough(n: int, q: int) -> None:
    values = [float(v * v) for v in range(n)]  # sorted, uneven gaps
    at_ranks = {r: values[r] for r in percentile_ranks(n, q)}
    assert len(at_ranks) <= 2
    assert percentile_from_ranks(n, q, at_ranks) == pytest.approx(percentile(values, q))


def test_the_database_percentiles_are_the_reports_own(make_runtime: Any) -> None:
    """Velocity's percentiles, ranked in SQL (SQLite) or by percentile_cont
    (PostgreSQL), equal the pure percentile() of the same stays, per group and overall."""
    from nurture.core.reports_velocity import velocity
    from nurture.reports import durations

    rng = random.Random(7)
    stays: dict[str, list[float]] = {"webinar": [], "seo": []}
    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        for n in range(60):
            source = "webinar" if n % 3 else "seo"
            hours = rng.randint(1, 2000)
            created = utc(2026, 2, 1, 0) + timedelta(hours=n)
            lead = Lead(email=f"p{n}@example.com", source=source, stage="mql",
                        created_at=created, updated_at=created)  # fmt: skip
            session.add(lead)
            session.flush()
            ended = utc(2026, 3, 31, 0) - timedelta(hours=n)
            started = ended - timedelta(hours=hours)
            session.add(StageChange(lead_id=lead.id, from_stage="lead", to_stage="mql",
                                    cause="test", since=started, at=ended))  # fmt: skip
            stays[source].append(hours * 3600.0)
    period = Period(date(2026, 3, 1), date(2026, 3, 31))
    with runtime.sessions() as session:
        table = velocity(durations(session, period, "source"), "source", period)
    found = {r["source"]: (r["median (days)"], r["p90 (days)"]) for r in table.records()}
    every = stays["webinar"] + stays["seo"]
    expected = {
        name: (days(percentile(values, 50)), days(percentile(values, 90)))
        for name, values in (("webinar", stays["webinar"]), ("seo", stays["seo"]), ("(all)", every))
    }
    assert found == expected


def test_percent_shows_what_it_rounds_to() -> None:
    assert percent(2, 3) == Decimal("66.7")
    assert percent(1, 8) == Decimal("12.5")
    assert percent(1, 0) is None
    assert percent(1, 2000, 3) == Decimal("0.050")


PARIS = calendar_for("Europe/Paris", "UTC", [2026])
TORONTO = calendar_for("America/Toronto", "UTC", [2026])
WEEKENDS_ONLY = calendar_for("Asia/Tbilisi", "UTC", [2026])  # a zone of no listed country


@pytest.mark.parametrize(
    ("calendar", "start", "end", "hours"),
    [
        # Friday 19:00 -> Monday 09:30 in Paris: 5 + 9.5
        (PARIS, utc(2026, 3, 6, 18), utc(2026, 3, 9, 8, 30), 14.5),
        # Within one working day
        (PARIS, utc(2026, 3, 2, 9), utc(2026, 3, 2, 13), 4.0),
        # Saturday to Sunday: nothing owed
        (PARIS, utc(2026, 3, 7, 9), utc(2026, 3, 8, 20), 0.0),
        # Thursday 30 April 18:00 -> Monday 4 May 10:00 (Paris, CEST): Friday 1 May is a
        # public holiday in France: 6 + 10
        (PARIS, utc(2026, 4, 30, 16), utc(2026, 5, 4, 8), 16.0),
        # Tuesday 30 June 20:00 -> Thursday 2 July 08:00 in Toronto: 1 July is Canada Day
        (TORONTO, utc(2026, 7, 1, 0), utc(2026, 7, 2, 12), 12.0),
        # Sunday 8 March, clocks go forward in Toronto: a Sunday, so still nothing
        (TORONTO, utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), 0.0),
        # Monday 30 March in Paris, the day after the change: 24 h of Monday
        (PARIS, utc(2026, 3, 29, 22), utc(2026, 3, 30, 22), 24.0),
        # The answer before the hand-off (clocks of two systems): nothing
        (PARIS, utc(2026, 3, 2, 13), utc(2026, 3, 2, 9), 0.0),
        # No holiday calendar: weekends only (1 May counts)
        (WEEKENDS_ONLY, utc(2026, 4, 30, 20), utc(2026, 5, 1, 20), 24.0),
    ],
)
def test_business_hours(
    calendar: WorkCalendar, start: datetime, end: datetime, hours: float
) -> None:
    assert business_seconds(start, end, calendar) / 3600 == pytest.approx(hours)


def test_business_deadline_skips_weekends_and_holidays() -> None:
    # Thursday 30 April 18:00 in Paris + 24 business hours: 6 on Thursday, 1 May off,
    # the weekend off, 18 on Monday 4 May: Monday 18:00 CEST.
    assert business_deadline(utc(2026, 4, 30, 16), 24, PARIS) == utc(2026, 5, 4, 16)
    # Thursday 23:00 in Paris + 1 hour: midnight, the end of Thursday, not Friday 01:00.
    assert business_deadline(utc(2026, 3, 5, 22), 1, PARIS) == utc(2026, 3, 5, 23)
    with pytest.raises(ValueError, match="naive"):
        business_deadline(datetime(2026, 3, 2, 9), 24, PARIS)


@pytest.mark.parametrize("calendar", [PARIS, TORONTO, WEEKENDS_ONLY], ids=str)
def test_a_laid_out_calendar_measures_as_the_walk_over_its_days(calendar: WorkCalendar) -> None:
    """The SLA report measures a year of hand-offs on a ledger: it must agree to the
    microsecond with the day-by-day walk, across clock changes, holidays, weekends, an
    answer on the day off right after the deadline, and instants outside its days."""
    rng = random.Random(7)
    ledger = Ledger(calendar, date(2026, 1, 1), date(2026, 12, 31))
    first = utc(2026, 1, 1, 0)
    starts = [first + timedelta(seconds=rng.randrange(400 * 86400)) for _ in range(300)]
    # Exact boundaries: local midnights, and a Friday-midnight hand-off whose deadline
    # is the end of that Friday (the answer on Saturday is at the deadline's count).
    starts += [utc(2026, 3, 5, 23), utc(2026, 3, 29, 22), utc(2026, 10, 24, 22)]
    starts.append(utc(2025, 12, 31, 0))  # before the laid-out days: the walk answers
    for start in starts:
        for hours in (1, 8.5, 24, 72):
            assert ledger.deadline(start, hours) == business_deadline(start, hours, calendar)
        for span in (0, 1, 3600, 86400 * 3 + 17, rng.randrange(20 * 86400)):
            end = start + timedelta(seconds=span, microseconds=rng.randrange(1_000_000))
            assert ledger.seconds(start, end) == pytest.approx(
                business_seconds(start, end, calendar), abs=1e-6
            )


def test_the_sla_state_at_the_deadline_instant_is_in_time() -> None:
    """Answered at the very instant of the deadline: in time; a microsecond after: late;
    on the weekend that follows a deadline at Friday's end: late, though no business
    time passed (the deadline is an instant, as the engine's escalation reads it)."""
    friday_end = utc(2026, 3, 6, 23)  # midnight in Paris, Friday -> Saturday
    sent = friday_end - timedelta(hours=24)  # Friday 00:00 in Paris
    period = Period(date(2026, 3, 1), date(2026, 3, 31))
    answers = {
        1: friday_end,
        2: friday_end + timedelta(microseconds=1),
        3: friday_end + timedelta(hours=30),  # Saturday
    }
    handoffs = [Handoff(n, ("rep@x",), "rep@x", "Rep", sent, at, True) for n, at in answers.items()]
    data = sla(handoffs, {"rep@x": PARIS}, PARIS, 24, utc(2026, 4, 1, 0), "rep", period)
    row = dict(zip(data.columns, data.rows[0], strict=True))
    assert (row["in time"], row["late"]) == (1, 2)


def test_a_calendar_names_its_zone_and_country() -> None:
    assert str(PARIS) == "Europe/Paris FR"
    assert str(calendar_for("Europe/London", "UTC", [2026])) == "Europe/London GB"
    assert str(calendar_for("Not/AZone", "Europe/Berlin", [2026])) == "Europe/Berlin DE"
    assert str(WEEKENDS_ONLY) == "Asia/Tbilisi (no holidays)"


def test_a_request_defaults_to_the_reports_first_grouping() -> None:
    request = parse_request("sla", "2026-03-01", "2026-03-31")
    assert (request.by, request.form, request.period.months) == ("rep", "table", ("2026-03",))
    assert parse_request("funnel", "2025-12-15", "2026-02-01").period.months == (
        "2025-12", "2026-01", "2026-02",
    )  # fmt: skip
    with pytest.raises(ReportError, match="--attribution last: the sources report"):
        parse_request("funnel", "2026-03-01", "2026-03-31", attribution="last")
