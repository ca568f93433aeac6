"""Qualification routes each lead: disqualified (never mailed, never promoted, with the
reason), sales-ready (promoted at once), or long-term nurture (the sequences)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from nurture.apikeys import create_key
from nurture.app import create_app
from nurture.models import CrmPush, Enrollment, Lead, Promotion


@pytest.fixture
def api(make_runtime: Any) -> tuple[FlaskClient, dict[str, str], Any]:
    runtime = make_runtime()  # the shipped sequences and rules
    assert runtime.content.qualification is not None
    with runtime.sessions.begin() as session:
        key = create_key(session, "test", datetime(2026, 1, 1, tzinfo=UTC))
    return create_app(runtime=runtime).test_client(), {"Authorization": f"Bearer {key}"}, runtime


TARGET = {"company_size": 300, "country": "FR", "job_title": "Directeur industriel"}


@pytest.mark.parametrize(
    ("lead", "code"),
    [
        ({"email": "jean.dupont@gmail.com"}, "free_mail"),
        ({"email": "contact@usine-martin.example"}, "role_address"),
        ({"email": "paul@asprova.example"}, "competitor"),
        ({"email": "anne@lyon.integrateur-lyon.example"}, "partner"),
        ({"email": "lea@usine.example", "job_title": "Étudiante en génie industriel"}, "student"),
        ({"email": "max@client.example", "fields": {"open_deal": "yes"}}, "open_deal"),
        ({"email": "tom@micro.example", "company_size": 4}, "too_small"),
    ],
)
def test_each_disqualifier_keeps_the_lead_away_with_its_reason(
    api: Any, lead: dict[str, Any], code: str
) -> None:
    client, headers, runtime = api
    response = client.post("/api/v1/leads", headers=headers, json={**TARGET, **lead})
    body = response.get_json()
    assert body["category"] == "no_interest"
    assert body["reasons"][0]["code"] == code and body["reasons"][0]["message"]
    assert body["stage"] == "disqualified"
    # It may do anything: it never enters a sequence and is never promoted.
    for name, props in (("form_submitted", {"form": "whitepaper-planning-roi"}),
                        ("demo_requested", {})):  # fmt: skip
        client.post(f"/api/v1/leads/{body['email']}/events", headers=headers,
                    json={"name": name, "properties": props})  # fmt: skip
    with runtime.sessions() as session:
        assert session.scalars(select(Enrollment)).all() == []
        assert session.scalars(select(Promotion)).all() == []


def test_a_sales_ready_lead_is_promoted_at_once(api: Any) -> None:
    client, headers, runtime = api
    body = client.post("/api/v1/leads", headers=headers, json={
        **TARGET, "email": "claire@fonderie-roche.example",
        "fields": {"project_timeline": "this quarter", "industry": "manufacturing"}},
    ).get_json()  # fmt: skip
    assert body["category"] == "sales_ready"
    assert body["stage"] == "sql"
    with runtime.sessions() as session:
        promotion = session.scalars(select(Promotion)).one()
        assert promotion.reason.startswith("qualified sales-ready")
        # Sales get the grade its rules saw and the fit rules behind it, before any
        # scored event: not `grade: null` with an empty breakdown.
        push = session.scalars(select(CrmPush)).one()
        lead = session.scalars(select(Lead)).one()
    score = push.payload["data"]["score"]
    assert lead.grade == score["grade"] == "A"
    assert "+10 in a country we sell to" in score["fit"]
    assert sum(int(line.split()[0]) for line in score["fit"]) >= 45  # grade A's least points


def test_long_term_nurture_goes_to_the_sequences(api: Any) -> None:
    client, headers, _ = api
    email = "hugo@plasturgie-nord.example"
    body = client.post("/api/v1/leads", headers=headers, json={**TARGET, "email": email}).get_json()
    assert body["category"] == "long_term_nurture" and body["stage"] == "lead"
    event = {"name": "form_submitted", "properties": {"form": "whitepaper-planning-roi"}}
    entered = client.post(f"/api/v1/leads/{email}/events", headers=headers, json=event).get_json()
    assert entered["enrolled"] == ["whitepaper-evaluation"]
