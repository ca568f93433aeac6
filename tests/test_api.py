"""The JSON API: authentication, create-or-update by email, events, clear refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import func, select

from nurture.apikeys import create_key, revoke_key
from nurture.app import create_app
from nurture.models import Event, Lead


@pytest.fixture
def api(make_runtime: Any) -> tuple[FlaskClient, dict[str, str], Any]:
    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        key = create_key(session, "test", datetime(2026, 1, 1, tzinfo=UTC), ("admin",))
    client = create_app(runtime=runtime).test_client()
    return client, {"Authorization": f"Bearer {key}"}, runtime


def lead_count(runtime: Any) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Lead)) or 0)


def test_requests_without_a_valid_key_are_refused(api: Any) -> None:
    client, headers, runtime = api
    assert client.post("/api/v1/leads", json={"email": "a@example.com"}).status_code == 401
    wrong = {"Authorization": "Bearer nk_000000000000.guess"}
    assert (
        client.post("/api/v1/leads", json={"email": "a@example.com"}, headers=wrong).status_code
        == 401
    )
    prefix = headers["Authorization"].split("nk_")[1].split(".")[0]
    with runtime.sessions.begin() as session:
        assert revoke_key(session, prefix, datetime(2026, 1, 2, tzinfo=UTC))
    assert (
        client.post("/api/v1/leads", json={"email": "a@example.com"}, headers=headers).status_code
        == 401
    )
    assert lead_count(runtime) == 0


def test_create_then_update_by_email_never_blanks_known_values(api: Any) -> None:
    client, headers, runtime = api
    first = client.post(
        "/api/v1/leads",
        json={
            "email": "  Marie.Dupont@Example.COM ",
            "first_name": "Marie",
            "company": "Dupont SA",
            "company_size": 120,
            "country": "fr",
            "fields": {"industry": "food"},
        },
        headers=headers,
    )
    assert first.status_code == 201
    assert first.get_json()["email"] == "marie.dupont@example.com"
    assert first.get_json()["country"] == "FR"
    second = client.post(
        "/api/v1/leads",
        json={
            "email": "marie.dupont@example.com",
            "job_title": "COO",
            "first_name": None,
            "fields": {"plants": 3},
        },
        headers=headers,
    )
    assert second.status_code == 200
    body = second.get_json()
    assert body["first_name"] == "Marie" and body["job_title"] == "COO"
    assert body["fields"] == {"industry": "food", "plants": 3}
    assert lead_count(runtime) == 1


@pytest.mark.parametrize(
    ("payload", "path", "phrase"),
    [
        ({}, "email", "required"),
        ({"email": "nobody"}, "email", "@"),
        ({"email": "a@example.com", "company_size": "big"}, "company_size", "whole number"),
        ({"email": "a@example.com", "country": "France"}, "country", "ISO"),
        ({"email": "a@example.com", "timezone": "Paris"}, "timezone", "IANA"),
        (
            {"email": "a@example.com", "first_name": "Bob\r\nBcc: x@evil.example"},
            "first_name",
            "control",
        ),
        ({"email": "a@example.com", "favourite": 1}, "favourite", "unknown field"),
        ({"email": "a@example.com", "stage": "hot"}, "stage", "expected one of"),
        ({"email": "a@example.com", "tags": "vip"}, "tags", "list"),
        ({"email": "a@example.com", "fields": {"x": {"nested": 1}}}, "fields.x", "scalar"),
    ],
)
def test_bad_lead_input_names_the_field_and_stores_nothing(
    api: Any, payload: dict[str, Any], path: str, phrase: str
) -> None:
    client, headers, runtime = api
    response = client.post("/api/v1/leads", json=payload, headers=headers)
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert any(f["path"] == path and phrase in f["message"] for f in fields), fields
    assert lead_count(runtime) == 0


def test_malformed_json_is_a_400(api: Any) -> None:
    client, headers, _ = api
    response = client.post(
        "/api/v1/leads", data="{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_json"


def test_events_enrol_and_show_in_the_timeline(api: Any) -> None:
    client, headers, _runtime = api
    client.post(
        "/api/v1/leads",
        json={"email": "paul@example.com", "country": "BE", "company_size": 400, "locale": "fr"},
        headers=headers,
    )
    response = client.post(
        "/api/v1/leads/paul@example.com/events",
        json={"name": "form_submitted", "properties": {"form": "whitepaper-planning-roi"}},
        headers=headers,
    )
    assert response.status_code == 201
    assert response.get_json()["enrolled"] == ["whitepaper-evaluation"]
    lead = client.get("/api/v1/leads/paul@example.com", headers=headers).get_json()
    assert lead["enrollments"][0]["sequence"] == "whitepaper-evaluation"
    assert lead["enrollments"][0]["step"] == "testimonial"
    assert lead["timeline"][0]["event"] == "form_submitted"
    # The same event again does not enrol twice.
    again = client.post(
        "/api/v1/leads/paul@example.com/events",
        json={"name": "form_submitted", "properties": {"form": "whitepaper-planning-roi"}},
        headers=headers,
    )
    assert again.get_json()["enrolled"] == []


def test_event_for_unknown_lead_and_bad_event(api: Any) -> None:
    client, headers, runtime = api
    missing = client.post(
        "/api/v1/leads/ghost@example.com/events", json={"name": "x"}, headers=headers
    )
    assert missing.status_code == 404
    client.post("/api/v1/leads", json={"email": "r@example.com"}, headers=headers)
    bad = client.post(
        "/api/v1/leads/r@example.com/events",
        json={"name": "Form Submitted!", "occurred_at": "yesterday"},
        headers=headers,
    )
    assert bad.status_code == 422
    paths = {f["path"] for f in bad.get_json()["error"]["fields"]}
    assert paths == {"name", "occurred_at"}
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0


def test_stage_reached_enrols_customers(api: Any) -> None:
    client, headers, _ = api
    client.post("/api/v1/leads", json={"email": "c@example.com", "country": "CH"}, headers=headers)
    response = client.post(
        "/api/v1/leads", json={"email": "c@example.com", "stage": "customer"}, headers=headers
    )
    sequences = [e["sequence"] for e in response.get_json()["enrollments"]]
    assert sequences == ["customer-growth"]


def test_health_and_metrics(api: Any) -> None:
    client, _, _ = api
    assert client.get("/healthz").get_json() == {"status": "ok"}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "nurture_due_steps 0" in metrics


def test_unknown_api_urls_answer_json(api: Any) -> None:
    client, headers, _ = api
    missing = client.post("/api/v1/promotions/-1/feedback", headers=headers, json={})
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    wrong = client.delete("/api/v1/leads", headers=headers)
    assert wrong.status_code == 405 and "error" in wrong.get_json()


def test_a_key_does_only_what_its_scopes_allow(make_runtime: Any) -> None:
    """An intake key (a website's) cannot tell the engine a deal was won."""
    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        intake = create_key(session, "website", datetime(2026, 1, 1, tzinfo=UTC), ("intake",))
        reader = create_key(session, "dashboard", datetime(2026, 1, 1, tzinfo=UTC), ("read",))
    client = create_app(runtime=runtime).test_client()
    as_site = {"Authorization": f"Bearer {intake}"}
    as_reader = {"Authorization": f"Bearer {reader}"}
    assert (
        client.post("/api/v1/leads", json={"email": "a@example.com"}, headers=as_site).status_code
        == 201
    )
    won = client.post(
        "/api/v1/promotions/1/feedback",
        json={"status": "won", "amount": 36000, "external_id": "deal-1"},
        headers=as_site,
    )
    assert won.status_code == 403
    error = won.get_json()["error"]
    assert error["code"] == "insufficient_scope" and "`sales` scope" in error["message"]
    assert client.get("/api/v1/leads/a@example.com", headers=as_site).status_code == 403
    assert client.get("/api/v1/leads/a@example.com", headers=as_reader).status_code == 200
    refused = client.post("/api/v1/leads", json={"email": "b@example.com"}, headers=as_reader)
    assert refused.status_code == 403
    assert lead_count(runtime) == 1  # nothing changed


def test_repeated_wrong_keys_from_one_address_get_429_and_then_recover(
    make_runtime: Any,
) -> None:
    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        good = create_key(session, "site", datetime(2026, 1, 1, tzinfo=UTC))
    client = create_app(runtime=runtime).test_client()
    guessing = {"REMOTE_ADDR": "198.51.100.7"}
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with freeze_time(start) as clock:
        answers = [
            client.get(
                "/api/v1/leads/a@example.com",
                headers={"Authorization": f"Bearer nk_{n:012x}.guess"},
                environ_base=guessing,
            )
            for n in range(60)
        ]
        assert [a.status_code for a in answers] == [401] * 10 + [429] * 50
        assert answers[-1].get_json()["error"]["code"] == "too_many_failures"
        assert 1 <= int(answers[-1].headers["Retry-After"]) <= 61
        # Even the right key waits; another address is not affected.
        right = {"Authorization": f"Bearer {good}"}
        assert client.get("/api/v1/leads/x@example.com", headers=right,
                          environ_base=guessing).status_code == 429  # fmt: skip
        assert client.get("/api/v1/leads/x@example.com", headers=right).status_code == 404
        clock.tick(61)
        assert client.get("/api/v1/leads/x@example.com", headers=right,
                          environ_base=guessing).status_code == 404  # fmt: skip
