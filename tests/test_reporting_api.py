"""Reports, costs, the daily list and the decision log over the JSON API, as a CRM or a
dashboard calls them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from nurture.apikeys import create_key
from nurture.app import create_app
from nurture.core.intake import parse_lead
from nurture.enrollment import on_event
from nurture.intake import take
from nurture.leads import find_lead

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
BELGIUM = """\
id: belgium
name: Belgium
locales: [en]
entry:
  triggers:
    - event: {name: start}
  audience:
    country: [BE]
steps:
  - id: first
    email: {template: example, kind: guide}
"""


@pytest.fixture
def api(make_runtime: Any, content_dirs: tuple[Path, Path]) -> Any:
    sequences, templates = content_dirs
    (sequences / "belgium.yaml").write_text(BELGIUM)
    # The shipped reps, for the daily list (the test's sequences folder has no rules).
    routing = Path(__file__).resolve().parent.parent / "sequences" / "rules" / "routing.yaml"
    runtime = make_runtime(sequences_dir=sequences, templates_dir=templates, routing_file=routing)
    with runtime.sessions.begin() as session:
        keys = {
            scope: create_key(session, scope, NOW, (scope,))
            for scope in ("read", "admin", "intake")
        }
    client = create_app(runtime=runtime).test_client()

    def call(method: str, path: str, scope: str = "read", **kwargs: Any) -> Any:
        with freeze_time(NOW):
            return client.open(
                path, method=method, headers={"Authorization": f"Bearer {keys[scope]}"}, **kwargs
            )

    call.runtime = runtime  # type: ignore[attr-defined]
    return call


def test_deliverability_is_grouped_by_day(api: Any) -> None:
    answer = api("GET", "/api/v1/reports/deliverability?from=2026-03-01&to=2026-03-02&by=day")
    assert answer.status_code == 200, answer.json


def test_a_report_is_served_as_json_with_its_definitions(api: Any) -> None:
    with api.runtime.sessions.begin() as session:
        take(session, api.runtime.content, api.runtime.settings,
             parse_lead({"email": "a@example.com", "source": "salon"}), NOW)  # fmt: skip
    answer = api("GET", "/api/v1/reports/funnel?from=2026-03-01&to=2026-03-31&by=source")
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["title"].startswith("Funnel")
    assert body["notes"] and body["columns"][0] == "source"
    salon = next(row for row in body["rows"] if row["source"] == "salon")
    assert salon["leads"] == 1


@pytest.mark.parametrize(
    ("path", "status", "said"),
    [
        ("/api/v1/reports/funnel?from=2026-03-31&to=2026-03-01", 422, "from 2026-03-31 is after"),
        ("/api/v1/reports/funnel?from=March&to=2026-03-01", 422, "query.from"),
        ("/api/v1/reports/funnel?from=2026-03-01&to=2026-03-02&by=planet", 422, "query.by"),
        ("/api/v1/reports/funnel?from=2026-03-01&to=2026-03-02&colour=red", 422, "query.colour"),
        ("/api/v1/reports/sources?from=2026-03-01&to=2026-03-02&by=rep", 422, "cannot be grouped"),
        ("/api/v1/reports/profit?from=2026-03-01&to=2026-03-02", 404, "unknown report 'profit'"),
    ],
)
def test_a_report_asked_wrongly_says_what_to_give(
    api: Any, path: str, status: int, said: str
) -> None:
    answer = api("GET", path)
    assert answer.status_code == status
    assert said in answer.get_data(as_text=True)


def test_costs_are_written_with_admin_and_read_with_read(api: Any) -> None:
    body = {"source": "salon-industrie", "month": "2026-11", "amount": 1200}
    assert api("POST", "/api/v1/costs", "read", json=body).status_code == 403
    first = api("POST", "/api/v1/costs", "admin", json=body)
    assert first.status_code == 200, first.json
    assert first.json == {"source": "salon-industrie", "campaign": None, "month": "2026-11",
                          "amount": 1200.0, "currency": "EUR", "replaced": None}  # fmt: skip
    again = api("POST", "/api/v1/costs", "admin", json={**body, "amount": 1350.5})
    assert again.json["replaced"] == 1200.0
    listed = api("GET", "/api/v1/costs?from=2026-11")
    assert listed.json["rows"] == [
        {"month": "2026-11", "source": "salon-industrie", "campaign": None,
         "amount (EUR)": 1350.5},
    ]  # fmt: skip
    assert api("GET", "/api/v1/costs", "intake").status_code == 403


@pytest.mark.parametrize(
    ("body", "path", "said"),
    [
        ({"source": "x", "month": "2026-13", "amount": 1}, "month", "expected a month"),
        ({"source": "x", "month": "2026-11", "amount": -1}, "amount", "must not be negative"),
        ({"source": "", "month": "2026-11", "amount": 1}, "source", ""),
        ({"source": "x", "month": "2026-11", "amount": 1, "currency": "USD"}, "currency",
         "costs are kept in EUR"),
        ({"source": "x\u0000", "month": "2026-11", "amount": 1}, "source", "control"),
    ],
)  # fmt: skip
def test_a_bad_cost_is_refused_with_its_field_and_nothing_is_kept(
    api: Any, body: dict[str, Any], path: str, said: str
) -> None:
    answer = api("POST", "/api/v1/costs", "admin", json=body)
    assert answer.status_code == 422, answer.json
    [problem] = answer.json["error"]["fields"]
    assert problem["path"] == path and said in problem["message"]
    assert api("GET", "/api/v1/costs").json["rows"] == []


def test_the_decision_log_answers_why_by_the_leads_public_id(api: Any) -> None:
    runtime = api.runtime
    with runtime.sessions.begin() as session:
        lead, _ = take(session, runtime.content, runtime.settings,
                       parse_lead({"email": "jean@example.fr", "country": "FR"}), NOW)  # fmt: skip
        on_event(session, runtime.content, lead, "start", {}, NOW)
    with runtime.sessions() as session:
        found = find_lead(session, "jean@example.fr")
        assert found is not None
        public_id = found.public_id
    answer = api("GET", f"/api/v1/leads/{public_id}/decisions?sequence=belgium")
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["lead"] == public_id
    [decision] = body["decisions"]
    assert decision["kind"] == "not_enrolled" and decision["sequence"] == "belgium"
    assert "country must be one of BE (is FR)" in decision["reason"]
    assert "belgium: not entered on event start" in body["sentences"][0]
    lonely = api("GET", f"/api/v1/leads/{public_id}/decisions?step=first")
    assert lonely.status_code == 422
    assert api("GET", "/api/v1/leads/ld_AAAAAAAAAAAAAAAAAAAA/decisions").status_code == 404


def test_the_daily_list_needs_a_known_rep(api: Any) -> None:
    assert api("GET", "/api/v1/top-leads").status_code == 200
    unknown = api("GET", "/api/v1/top-leads?rep=nobody@example.com")
    assert unknown.status_code == 422
    assert "no rep nobody@example.com" in unknown.get_data(as_text=True)
