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
from nurture.core.payloads import PROPERTIES
from nurture.identifiers import is_lead_id
from nurture.models import Event, Lead
from nurture.web.api import PARSED_DEPTH


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


def test_a_keys_last_use_is_noted_to_the_minute_and_listed(api: Any) -> None:
    from click.testing import CliRunner

    from nurture.cli import cli
    from nurture.models import ApiKey

    client, headers, runtime = api

    def last_used() -> datetime | None:
        with runtime.sessions() as session:
            return session.scalars(select(ApiKey.last_used_at)).one()

    assert last_used() is None
    with freeze_time("2026-03-02 09:00:10"):
        assert client.get("/api/v1/leads/a@example.com", headers=headers).status_code == 404
    assert last_used() == datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC)
    with freeze_time("2026-03-02 09:00:50"):  # within the minute: no write
        client.get("/api/v1/leads/a@example.com", headers=headers)
    assert last_used() == datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC)
    with freeze_time("2026-03-02 09:01:20"):
        client.get("/api/v1/leads/a@example.com", headers=headers)
    assert last_used() == datetime(2026, 3, 2, 9, 1, 20, tzinfo=UTC)
    with freeze_time("2026-03-02 10:00:00"):  # a refused key is not a use
        client.get("/api/v1/leads/a@example.com", headers={"Authorization": "Bearer nk_x.y"})
    assert last_used() == datetime(2026, 3, 2, 9, 1, 20, tzinfo=UTC)
    env = {"NURTURE_DATABASE_URL": runtime.settings.database_url, "NURTURE_SECRET_KEY": "x" * 32}
    listed = CliRunner().invoke(cli, ["keys", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "  test  [admin]  created 2026-01-01 00:00  last used 2026-03-02 09:01" in listed.output


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


def test_lead_answers_carry_the_opaque_id_and_urls_take_it(api: Any) -> None:
    client, headers, _ = api
    created = client.post("/api/v1/leads", json={"email": "ida@example.com"}, headers=headers)
    lead_id = created.get_json()["id"]
    assert is_lead_id(lead_id)
    again = client.post("/api/v1/leads", json={"email": "IDA@example.com"}, headers=headers)
    assert again.get_json()["id"] == lead_id
    batch = client.post(
        "/api/v1/leads/batch",
        json={"leads": [{"email": "ida@example.com"}, {"email": "jo@example.com"}]},
        headers=headers,
    ).get_json()
    assert [r["id"] == lead_id for r in batch["results"]] == [True, False]
    event = client.post(
        f"/api/v1/leads/{lead_id}/events", json={"name": "page_visited"}, headers=headers
    )
    assert event.status_code == 201
    read = client.get(f"/api/v1/leads/{lead_id}", headers=headers).get_json()
    assert read["email"] == "ida@example.com" and read["timeline"][0]["event"] == "page_visited"
    unknown = "ld_" + "A" * 20
    missing = client.get(f"/api/v1/leads/{unknown}", headers=headers)
    assert missing.status_code == 404 and unknown in missing.get_json()["error"]["message"]


def test_lookup_finds_a_lead_by_the_address_in_its_body(make_runtime: Any) -> None:
    runtime = make_runtime(fold_subaddress=True)
    with runtime.sessions.begin() as session:
        site = create_key(session, "site", datetime(2026, 1, 1, tzinfo=UTC), ("intake",))
        reader = create_key(session, "crm", datetime(2026, 1, 1, tzinfo=UTC), ("read",))
    client = create_app(runtime=runtime).test_client()
    as_site = {"Authorization": f"Bearer {site}"}
    as_reader = {"Authorization": f"Bearer {reader}"}
    created = client.post("/api/v1/leads", json={"email": "anna@example.com"}, headers=as_site)
    found = client.post(
        "/api/v1/leads/lookup", json={"email": " Anna+News@Example.com"}, headers=as_reader
    )
    assert found.status_code == 200
    assert found.get_json()["id"] == created.get_json()["id"]
    assert found.get_json()["email"] == "anna@example.com"
    nobody = client.post(
        "/api/v1/leads/lookup", json={"email": "nobody@example.com"}, headers=as_reader
    )
    assert nobody.status_code == 404 and "nobody" not in nobody.get_data(as_text=True)
    bad = client.post("/api/v1/leads/lookup", json={"email": "anna"}, headers=as_reader)
    assert bad.status_code == 422 and bad.get_json()["error"]["fields"][0]["path"] == "email"
    unknown = client.post("/api/v1/leads/lookup", json={"mail": "a@b.example"}, headers=as_reader)
    assert {f["path"] for f in unknown.get_json()["error"]["fields"]} == {"email", "mail"}
    refused = client.post(
        "/api/v1/leads/lookup", json={"email": "anna@example.com"}, headers=as_site
    )
    assert refused.status_code == 403  # reading needs the read scope


def _raw(client: FlaskClient, path: str, body: str, headers: dict[str, str]) -> Any:
    return client.post(path, data=body, headers={**headers, "Content-Type": "application/json"})


def _fields(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.get_json()
    return [(f["path"], f["message"]) for f in response.get_json()["error"]["fields"]]


def test_deep_nesting_is_refused_with_its_path_never_a_server_error(api: Any) -> None:
    # Bodies are cut deeper than any format allows (a batch's custom fields sit at 4).
    assert 4 + PROPERTIES.depth < PARSED_DEPTH
    client, headers, runtime = api
    client.post("/api/v1/leads", json={"email": "deep@example.com"}, headers=headers)
    events = "/api/v1/leads/deep@example.com/events"
    brackets = "[" * 5000 + "]" * 5000
    in_fields = '{"email": "deep@example.com", "fields": {"x": ' + brackets + "}}"
    assert _fields(_raw(client, "/api/v1/leads", in_fields, headers)) == [
        ("fields.x", "expected a scalar value")
    ]
    in_properties = '{"name": "page_visited", "properties": {"a": ' + brackets + "}}"
    assert _fields(_raw(client, events, in_properties, headers)) == [
        ("properties.a" + "[0]" * 7, "nested more than 8 levels deep")
    ]
    objects = '{"a": ' * 5000 + "1" + "}" * 5000
    as_properties = '{"properties": ' + objects + ', "name": "page_visited"}'
    assert _fields(_raw(client, events, as_properties, headers)) == [
        ("properties" + ".a" * 8, "nested more than 8 levels deep")
    ]
    in_a_batch = '{"leads": [{"email": "a@example.com"}, ' + brackets + "]}"
    assert _fields(_raw(client, "/api/v1/leads/batch", in_a_batch, headers)) == [
        ("leads[1]", "expected a JSON object")
    ]
    never_closed = _raw(client, events, '{"name": "x", "properties": ' + "[" * 5000, headers)
    assert never_closed.status_code == 400
    assert never_closed.get_json()["error"]["code"] == "bad_json"
    # A string never closed, full of escaped quotes, is read once, not once per quote.
    escapes = '{"properties": ' + "[" * 5000 + '"' + '\\"' * 400_000
    assert _raw(client, events, escapes, headers).status_code == 400
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0


def test_key_count_key_size_and_control_characters_are_refused_with_a_path(api: Any) -> None:
    client, headers, runtime = api
    many = {"email": "k@example.com", "fields": {str(n): n for n in range(60_000)}}
    assert _fields(client.post("/api/v1/leads", json=many, headers=headers)) == [
        ("fields", "at most 200 keys")
    ]
    long_key = {"email": "k@example.com", "fields": {"k" * 500_000: 1}}
    [(path, message)] = _fields(client.post("/api/v1/leads", json=long_key, headers=headers))
    assert path.startswith("fields.kkk") and len(path) < 100
    assert message == "key: at most 100 characters"
    controls = {
        "email": "k@example.com",
        "first_name": "K\x00",
        "tags": ["a\r\nb"],
        "fields": {"x\r\ny": "z", "ok": "nul\x00"},
    }
    assert _fields(client.post("/api/v1/leads", json=controls, headers=headers)) == [
        ("first_name", "control characters are not allowed"),
        ("tags[0]", "control characters are not allowed"),
        ("fields.x\\x0d\\x0ay", "key: control characters are not allowed"),
        ("fields.ok", "control characters are not allowed"),
    ]
    assert lead_count(runtime) == 0
    client.post("/api/v1/leads", json={"email": "k@example.com"}, headers=headers)
    event = {"name": "page\nvisited", "properties": {"a\x00": 1, "b": ["\r"]}}
    refused = client.post("/api/v1/leads/k@example.com/events", json=event, headers=headers)
    assert _fields(refused) == [
        ("name", "expected an event name such as form_submitted"),
        ("properties.a\\x00", "key: control characters are not allowed"),
        ("properties.b[0]", "control characters are not allowed"),
    ]


def test_numbers_are_finite(api: Any) -> None:
    client, headers, _ = api
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = '{"status": "won", "amount": ' + constant + "}"
        refused = _raw(client, "/api/v1/promotions/1/feedback", body, headers)
        assert refused.status_code == 400 and constant in refused.get_json()["error"]["message"]
    too_big = _raw(
        client, "/api/v1/promotions/1/feedback", '{"status": "won", "amount": 1e400}', headers
    )
    assert _fields(too_big) == [("amount", "expected a finite number")]
    client.post("/api/v1/leads", json={"email": "n@example.com"}, headers=headers)
    in_properties = '{"name": "x", "properties": {"n": [1, -1e999]}}'
    refused = _raw(client, "/api/v1/leads/n@example.com/events", in_properties, headers)
    assert _fields(refused) == [("properties.n[1]", "expected a finite number")]
