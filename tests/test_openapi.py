"""The OpenAPI document: valid, complete, and true of the running app's answers."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.test import TestResponse

from nurture.apikeys import create_key
from nurture.app import create_app
from nurture.core.payloads import LeadPayload, TouchPayload, limits, text_limits
from nurture.core.profile import SAMPLE_LEAD
from nurture.mail import MemoryMailer
from nurture.models import Lead
from nurture.promotion import promote
from nurture.web import answers
from nurture.web.api import IDEMPOTENCY_KEY_LENGTH, OPERATIONS, SCOPE_OF
from nurture.web.openapi import EXAMPLE_LEAD_ID, document, path_of

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT_URI = "urn:nurture:openapi"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday, 09:00 in Paris
LEADS = "/api/v1/leads"
BATCH = "/api/v1/leads/batch"
LOOKUP = "/api/v1/leads/lookup"
LEAD = "/api/v1/leads/{lead}"
EVENTS = "/api/v1/leads/{lead}/events"
FEEDBACK = "/api/v1/promotions/{promotion_id}/feedback"


class Api:
    """The app on a fresh database, an API key, and a client that checks every answer."""

    def __init__(self, make_runtime: Any) -> None:
        self.mailer = MemoryMailer()
        self.runtime = make_runtime(
            mailer_factory=lambda: self.mailer,
            scoring_file=ROOT / "sequences" / "rules" / "scoring.yaml",
            routing_file=ROOT / "sequences" / "rules" / "routing.yaml",
        )
        with self.runtime.sessions.begin() as session:
            key = create_key(session, "openapi", datetime(2026, 1, 1, tzinfo=UTC), ("admin",))
        self.key = key
        self.app: Flask = create_app(runtime=self.runtime)
        self.client: FlaskClient = self.app.test_client()
        self.headers = {"Authorization": f"Bearer {key}"}

    def call(
        self, method: str, path: str, template: str, auth: bool = True, **kwargs: Any
    ) -> TestResponse:
        """Send the request, then check the answer against what `template` documents."""
        headers = {**(self.headers if auth else {}), **kwargs.pop("headers", {})}
        response = self.client.open(path, method=method, headers=headers, **kwargs)
        conforms(response, template, method.lower())
        return response


@pytest.fixture
def api(make_runtime: Any) -> Api:
    return Api(make_runtime)


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def conforms(response: TestResponse, template: str, method: str) -> None:
    """The status is documented for the operation and the body matches its schema."""
    spec = document()
    responses = spec["paths"][template][method]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{method.upper()} {template} answered undocumented {status}"
    declared = responses[status]
    if "$ref" in declared:
        declared = spec["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
    assert response.mimetype == "application/json"
    assert "schema" in declared["content"]["application/json"]
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    # Resolve the schema where it sits, so its "#/components/..." references resolve too.
    where = (
        _pointer("paths", template, method, "responses", status)
        if "$ref" not in responses[status]
        else responses[status]["$ref"]
    )
    validator = Draft202012Validator(
        {"$ref": DOCUMENT_URI + where + "/content/application~1json/schema"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = sorted(validator.iter_errors(response.get_json()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


# --- the document itself ------------------------------------------------------------


def test_the_served_document_is_valid_openapi_3_1_and_needs_no_key(api: Api) -> None:
    response = api.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    served = response.get_json()
    assert served == document()
    assert served["openapi"].startswith("3.1")
    validate(served)
    for schema in served["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def _template(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_every_api_route_is_documented_and_every_documented_operation_exists(api: Api) -> None:
    routes = {
        (_template(rule.rule), method.lower())
        for rule in api.app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    documented = {
        (path, method)
        for path, item in document()["paths"].items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete"}
    }
    assert routes == documented


def test_every_operation_is_documented_with_the_scope_its_route_checks() -> None:
    spec = document()
    for operation in OPERATIONS:
        documented = spec["paths"][path_of(operation)][operation.method.lower()]
        assert documented["security"] == [{"apiKey": [SCOPE_OF[operation.endpoint]]}]
        assert documented["summary"] and documented["operationId"]


def test_the_schemas_are_the_models() -> None:
    schemas = document()["components"]["schemas"]
    assert list(schemas["LeadPayload"]["properties"]) == list(LeadPayload.model_fields)
    assert schemas["LeadPayload"]["required"] == ["email"]
    # A lead's touch is answered with the keys it arrived with, and when.
    assert set(answers.Touch.model_fields) == {*TouchPayload.model_fields, "at"}
    lead = schemas["Lead"]
    assert set(lead["required"]) == set(answers.Lead.model_fields) - {"score_explained"}
    assert lead["additionalProperties"] is False


def test_documented_text_limits_are_the_ones_enforced(api: Api) -> None:
    limits = {path: n for path, n in text_limits(LeadPayload).items() if path != "timezone"}
    assert {"first_name", "rep.phone", "consent.purpose", "touch.utm_content"} <= set(limits)

    def body(extra: int) -> dict[str, Any]:
        lead: dict[str, Any] = {"email": "limits@example.com", "consent": {"granted": True}}
        for path, limit in limits.items():
            outer, _, inner = path.partition(".")
            if inner:
                lead.setdefault(outer, {})[inner] = "x" * (limit + extra)
            else:
                lead[outer] = "x" * (limit + extra)
        return lead

    refused = api.call("POST", LEADS, LEADS, json=body(1))
    assert refused.status_code == 422
    assert {f["path"] for f in refused.get_json()["error"]["fields"]} == set(limits)
    assert api.call("POST", LEADS, LEADS, json=body(0)).status_code == 201


def _table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| limit | value | answer beyond it |", "|---|---|---|"]
    return "\n".join(lines + [f"| {what} | {value} | {beyond} |" for what, value, beyond in rows])


def test_the_limits_table_in_the_docs_is_the_one_in_the_code() -> None:
    rows = [(limit.what, limit.value, limit.beyond) for limit in limits()]
    rows.append(
        ("`Idempotency-Key`", f"1 to {IDEMPOTENCY_KEY_LENGTH} printable characters", "`400`")
    )
    expected = _table(rows)
    docs = (ROOT / "docs" / "api.md").read_text()
    found = docs.split("<!-- limits: begin -->\n", 1)[1].split("\n<!-- limits: end -->", 1)[0]
    assert found == expected, f"docs/api.md's limits table should read:\n{expected}"


# --- real answers against the documented schemas -----------------------------------------


FULL_LEAD = {
    "email": SAMPLE_LEAD.email,
    "first_name": SAMPLE_LEAD.first_name,
    "last_name": SAMPLE_LEAD.last_name,
    "company": SAMPLE_LEAD.company,
    "job_title": SAMPLE_LEAD.job_title,
    "company_size": "240",
    "country": "fr",
    "timezone": "Europe/Paris",
    "locale": "fr",
    "source": "webinar",
    "campaign": "planifia-live-2026",
    "tags": ["webinar-2026"],
    "fields": {"industry": "plastics", "plants": 3, "iso9001": True},
    "rep": {"name": "Julie Morel", "email": "julie.morel@planifia.example"},
    "consent": {"purpose": "marketing", "granted": True, "text_version": "2026-01"},
    "touch": {"channel": "paid_search", "utm_source": "google", "utm_medium": "cpc"},
}


def test_a_lead_created_enriched_mailed_and_read_matches_the_document(api: Api) -> None:
    email = FULL_LEAD["email"]
    with freeze_time(T0):
        created = api.call("POST", LEADS, LEADS, json=FULL_LEAD)
        assert created.status_code == 201
        assert created.get_json()["first_touch"]["utm_source"] == "google"
        lead_id = created.get_json()["id"]
        event = api.call(
            "POST",
            f"/api/v1/leads/{lead_id}/events",
            EVENTS,
            json={"name": "form_submitted", "properties": {"form": "whitepaper-planning-roi"}},
        )
        assert event.status_code == 201
        assert event.get_json()["enrolled"] == ["whitepaper-evaluation"]
    assert api.runtime.dispatcher.tick(T0 + timedelta(hours=1)).sent == 1
    with freeze_time(T0 + timedelta(hours=2)):
        updated = api.call(
            "POST",
            LEADS,
            LEADS,
            json={"email": email.upper(), "stage": "mql", "consent": {"granted": False}},
        )
        assert updated.status_code == 200
        assert updated.get_json()["id"] == lead_id
        lead = api.call("GET", f"/api/v1/leads/{lead_id}", LEAD).get_json()
        found = api.call("POST", LOOKUP, LOOKUP, json={"email": email.upper()}).get_json()
        by_address = api.call("GET", f"/api/v1/leads/{email}", LEAD).get_json()  # deprecated
    assert lead == found == by_address
    assert {"delivery", "event"} <= {key for item in lead["timeline"] for key in item}
    assert lead["score_explained"] and lead["stage_history"][-1]["to"] == "mql"
    assert [c["granted"] for c in lead["consents"]] == [True, False]


def test_a_batch_and_its_refusal_match_the_document(api: Api) -> None:
    leads = [{"email": f"batch{n}@example.com", "company_size": n} for n in range(3)]
    taken = api.call("POST", BATCH, BATCH, json={"leads": leads})
    assert taken.get_json()["created"] == 3
    for result, lead in zip(taken.get_json()["results"], leads, strict=True):
        assert result["email"] == lead["email"] and result["id"].startswith("ld_")
    leads[1]["email"] = "not an address"
    refused = api.call("POST", BATCH, BATCH, json={"leads": leads})
    assert refused.status_code == 422
    assert [f["path"] for f in refused.get_json()["error"]["fields"]] == ["leads[1].email"]


def test_idempotency_keys_answer_as_documented(api: Api) -> None:
    key = {"Idempotency-Key": "order-4411"}
    first = api.call("POST", LEADS, LEADS, json={"email": "i@example.com"}, headers=key)
    again = api.call("POST", LEADS, LEADS, json={"email": "i@example.com"}, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.call("POST", LEADS, LEADS, json={"email": "j@example.com"}, headers=key)
    assert other.status_code == 409
    bad = api.call(
        "POST",
        BATCH,
        BATCH,
        json={"leads": [{"email": "k@example.com"}]},
        headers={"Idempotency-Key": "x" * 256},
    )
    assert bad.status_code == 400


def test_sales_feedback_and_its_refusals_match_the_document(api: Api) -> None:
    api.call("POST", LEADS, LEADS, json=FULL_LEAD)
    with api.runtime.sessions.begin() as session:
        lead = session.query(Lead).one()
        promotion = promote(
            session, api.runtime.content, lead, "demo requested", lead.created_at, timedelta(1)
        )
        assert promotion is not None
        number = promotion.id
    won = api.call(
        "POST",
        f"/api/v1/promotions/{number}/feedback",
        FEEDBACK,
        json={"status": "won", "amount": 36000, "external_id": "deal-4411-won"},
    )
    assert won.get_json()["status"] == "won"
    missing = api.call(
        "POST", f"/api/v1/promotions/{number + 1}/feedback", FEEDBACK, json={"status": "won"}
    )
    assert missing.status_code == 404
    refused = api.call(
        "POST",
        f"/api/v1/promotions/{number}/feedback",
        FEEDBACK,
        json={"status": "maybe", "amount": -1},
    )
    assert {f["path"] for f in refused.get_json()["error"]["fields"]} == {"status", "amount"}


@pytest.mark.parametrize(
    ("method", "path", "template", "kwargs", "status"),
    [
        ("GET", "/api/v1/leads/nobody@example.com", LEAD, {}, 404),
        ("GET", f"/api/v1/leads/{EXAMPLE_LEAD_ID}", LEAD, {}, 404),
        ("POST", LOOKUP, LOOKUP, {"json": {"email": "nobody@example.com"}}, 404),
        ("POST", LOOKUP, LOOKUP, {"json": {"email": "nobody"}}, 422),
        (
            "POST",
            "/api/v1/leads/nobody@example.com/events",
            EVENTS,
            {"json": {"name": "page_visited"}},
            404,
        ),
        ("POST", LEADS, LEADS, {"json": {"emial": "a@b.example"}}, 422),
        (
            "POST",
            LEADS,
            LEADS,
            {"data": "{not json", "content_type": "application/json"},
            400,
        ),
        (
            "POST",
            BATCH,
            BATCH,
            {"json": {"leads": [{"email": "a@example.com", "notes": "x" * (1024 * 1024)}]}},
            413,
        ),
    ],
)
def test_refusals_match_the_document(
    api: Api, method: str, path: str, template: str, kwargs: dict[str, Any], status: int
) -> None:
    assert api.call(method, path, template, **kwargs).status_code == status


@pytest.mark.parametrize(
    ("path", "template", "body", "status"),
    [
        (LEADS, LEADS, {"email": "e@example.com", "timezone": "America"}, 422),  # a folder
        (LEADS, LEADS, {"email": "e@example.com", "company_size": "²"}, 422),  # "²".isdigit()
        (LEADS, LEADS, {"email": "e@example.com", "company_size": 2**63}, 422),
        (
            "/api/v1/leads/e@example.com/events",
            EVENTS,
            {"name": "page_visited", "occurred_at": "9999-12-31T23:00:00-05:00"},  # past 9999
            422,
        ),
        ("/api/v1/leads/e@example.com/events", EVENTS, {"name": "page_visited\n"}, 422),
        (
            "/api/v1/promotions/1/feedback",
            FEEDBACK,
            {"status": "won", "occurred_at": "0001-01-01T00:00:00+05:00"},  # before year 1
            422,
        ),
        (f"/api/v1/promotions/{2**63}/feedback", FEEDBACK, {"status": "won"}, 404),
    ],
)
def test_edge_values_get_a_documented_answer(
    api: Api, path: str, template: str, body: dict[str, Any], status: int
) -> None:
    api.call("POST", LEADS, LEADS, json={"email": "e@example.com"})
    assert api.call("POST", path, template, json=body).status_code == status


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/api/v1/leads/a@example.com", LEAD),
        ("POST", LEADS, LEADS),
        ("POST", BATCH, BATCH),
        ("POST", LOOKUP, LOOKUP),
        ("POST", f"/api/v1/leads/{EXAMPLE_LEAD_ID}/events", EVENTS),
        ("POST", "/api/v1/promotions/1/feedback", FEEDBACK),
    ],
)
def test_every_operation_but_the_document_needs_a_key_with_the_scope_it_names(
    api: Api, method: str, path: str, template: str
) -> None:
    [requirement] = document()["paths"][template][method.lower()]["security"]
    [scope] = requirement["apiKey"]
    response = api.call(method, path, template, auth=False, json={})
    assert response.status_code == 401
    # The document says what the route checks.
    app = api.client.application
    adapter = app.url_map.bind("nurture.test")
    endpoint, _ = adapter.match(path, method=method)
    assert SCOPE_OF[endpoint] == scope


# --- fuzzing -----------------------------------------------------------------------------


fuzzed = schemathesis.openapi.from_dict(
    document(), config=SchemathesisConfig.from_dict({"seed": 20260301})
)
KEYS = itertools.count()


@pytest.fixture
def seeded(api: Api) -> Api:
    """The lead and the promotion the document's examples name, so examples hit real rows."""
    [example] = document()["components"]["schemas"]["LeadPayload"]["examples"]
    assert api.client.post(LEADS, json=example, headers=api.headers).status_code == 201
    with api.runtime.sessions.begin() as session:
        lead = session.query(Lead).one()
        lead.public_id = EXAMPLE_LEAD_ID
        made = promote(session, api.runtime.content, lead, "fuzzing", lead.created_at, timedelta(1))
        assert made is not None and made.id == 1
    return api


@pytest.mark.slow
@fuzzed.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    # One app and database per operation, shared by its examples on purpose: data piles up.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_fuzzed_requests_get_no_server_error_and_documented_answers(seeded: Api, case: Any) -> None:
    if case.headers and "Idempotency-Key" in case.headers:
        # Generated keys repeat across bodies and would make most requests a 409; replays
        # and conflicts have their own test above.
        key = f"{next(KEYS)}-{case.headers['Idempotency-Key']}"
        case.headers["Idempotency-Key"] = key[:IDEMPOTENCY_KEY_LENGTH]
    case.call_and_validate(
        app=seeded.app,
        headers=seeded.headers,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )
