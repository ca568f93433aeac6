"""Lead intake: one lead per person, progressive profiling, batches, idempotency keys,
consent, attribution, clear refusals that store nothing."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.serving import make_server

from nurture.apikeys import create_key
from nurture.app import create_app
from nurture.models import Consent, FieldHistory, Lead


@pytest.fixture
def api(make_runtime: Any) -> tuple[FlaskClient, dict[str, str], Any]:
    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        key = create_key(session, "test", datetime(2026, 1, 1, tzinfo=UTC))
    return create_app(runtime=runtime).test_client(), {"Authorization": f"Bearer {key}"}, runtime


def count(runtime: Any, model: Any = Lead) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_arrivals_merge_into_one_lead_and_conflicts_keep_history(api: Any) -> None:
    client, headers, runtime = api
    first = {"email": "Paul.Henry@Exemple-Industrie.fr", "company": "Henry SA",
             "job_title": "Buyer", "source": "webinar",
             "touch": {"channel": "webinar", "utm_campaign": "spring"}}  # fmt: skip
    client.post("/api/v1/leads", headers=headers, json=first)
    client.post("/api/v1/leads", headers=headers, json={
        "email": "paul.henry@exemple-industrie.fr", "company": "", "job_title": "Head of planning",
        "company_size": 320, "touch": {"channel": "website", "utm_source": "google"}})  # fmt: skip
    lead = client.get("/api/v1/leads/paul.henry@exemple-industrie.fr", headers=headers).get_json()
    assert count(runtime) == 1
    assert lead["company"] == "Henry SA"  # a blank never erases what is known
    assert lead["job_title"] == "Head of planning"  # the newest non-empty value wins
    assert lead["company_size"] == 320
    assert lead["first_touch"]["channel"] == "webinar"  # attribution: first and latest
    assert lead["latest_touch"]["utm_source"] == "google"
    with runtime.sessions() as session:
        history = session.scalars(select(FieldHistory)).one()
        assert (history.field, history.old_value, history.new_value) == (
            "job_title",
            "Buyer",
            "Head of planning",
        )


def test_sub_addresses_fold_when_asked(make_runtime: Any) -> None:
    runtime = make_runtime(fold_subaddress=True)
    with runtime.sessions.begin() as session:
        key = create_key(session, "t", datetime(2026, 1, 1, tzinfo=UTC))
    client = create_app(runtime=runtime).test_client()
    headers = {"Authorization": f"Bearer {key}"}
    for email in ("anna+webinar@example.com", "Anna+news@EXAMPLE.com", "anna@example.com"):
        client.post("/api/v1/leads", headers=headers, json={"email": email})
    assert count(runtime) == 1


@pytest.mark.parametrize(
    ("second_body", "second_key", "status", "replayed"),
    [
        ({"email": "k@example.com", "company": "K"}, "key-1", 201, True),  # same key, same body
        ({"email": "k@example.com", "company": "Other"}, "key-1", 409, False),  # another body
        ({"email": "k@example.com", "company": "K"}, "key-2", 200, False),  # another key
        ({"email": "k@example.com", "company": "K"}, None, 200, False),  # no key
    ],
)
def test_idempotency_keys(
    api: Any, second_body: dict[str, Any], second_key: str | None, status: int, replayed: bool
) -> None:
    client, headers, runtime = api
    first = client.post(
        "/api/v1/leads", headers={**headers, "Idempotency-Key": "key-1"},
        json={"email": "k@example.com", "company": "K"},
    )  # fmt: skip
    assert first.status_code == 201
    extra = {"Idempotency-Key": second_key} if second_key else {}
    second = client.post("/api/v1/leads", headers={**headers, **extra}, json=second_body)
    assert second.status_code == status
    assert (second.headers.get("Idempotent-Replayed") == "true") is replayed
    if replayed:
        assert second.get_json() == first.get_json()
    assert count(runtime) == 1


def test_an_idempotent_refusal_is_refused_again_the_same_way(api: Any) -> None:
    client, headers, runtime = api
    keyed = {**headers, "Idempotency-Key": "bad-1"}
    first = client.post("/api/v1/leads", headers=keyed, json={"email": "nope"})
    second = client.post("/api/v1/leads", headers=keyed, json={"email": "nope"})
    assert first.status_code == second.status_code == 422
    assert second.get_json() == first.get_json()
    assert count(runtime) == 0


def test_batch_is_all_or_nothing(api: Any) -> None:
    client, headers, runtime = api
    bad = client.post("/api/v1/leads/batch", headers=headers, json={"leads": [
        {"email": "a@example.com"}, {"email": "not an email"}, {"email": "c@example.com",
         "company_size": -4}]})  # fmt: skip
    assert bad.status_code == 422
    paths = [f["path"] for f in bad.get_json()["error"]["fields"]]
    assert paths == ["leads[1].email", "leads[2].company_size"]
    assert count(runtime) == 0
    good = client.post("/api/v1/leads/batch", headers=headers, json={"leads": [
        {"email": "a@example.com"}, {"email": "b@example.com"}, {"email": "A@example.com",
         "first_name": "Ada"}]})  # fmt: skip
    assert good.status_code == 200
    assert (good.get_json()["created"], good.get_json()["updated"]) == (2, 1)
    assert count(runtime) == 2
    too_many = client.post(
        "/api/v1/leads/batch", headers=headers,
        json={"leads": [{"email": f"x{n}@example.com"} for n in range(1001)]},
    )  # fmt: skip
    assert too_many.status_code == 422 and count(runtime) == 2


def test_oversized_body_is_refused_before_parsing(api: Any) -> None:
    client, headers, runtime = api
    huge = '{"email": "big@example.com", "fields": {"x": "' + "a" * (1024 * 1024) + '"}}'
    response = client.post(
        "/api/v1/leads", data=huge, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert count(runtime) == 0


def test_consent_is_recorded_and_a_withdrawal_stops_sending(api: Any) -> None:
    client, headers, runtime = api
    client.post("/api/v1/leads", headers=headers, json={
        "email": "c@example.com", "consent": {"purpose": "marketing", "granted": True,
        "text_version": "form-2026-03", "source": "website form"}})  # fmt: skip
    client.post("/api/v1/leads", headers=headers, json={
        "email": "c@example.com", "consent": {"granted": False, "source": "call"}})  # fmt: skip
    lead = client.get("/api/v1/leads/c@example.com", headers=headers).get_json()
    assert [(c["granted"], c["text_version"]) for c in lead["consents"]] == [
        (True, "form-2026-03"),
        (False, None),
    ]
    from nurture.suppression import SUPPRESSION_COLUMNS, suppression_reason

    with runtime.sessions() as session:
        row = session.execute(select(*SUPPRESSION_COLUMNS)).one()
        assert row.consent is False
        assert suppression_reason(row, False) == "consent withdrawn"
    assert count(runtime, Consent) == 2


@pytest.mark.postgres
def test_concurrent_duplicate_posts_give_one_lead(postgres_url: str, make_runtime: Any) -> None:
    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        key = create_key(session, "race", datetime(2026, 1, 1, tzinfo=UTC))
    server = make_server("127.0.0.1", 0, create_app(runtime=runtime), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    import http.client

    statuses: list[int] = []
    start = threading.Barrier(8)

    def post(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        body = json.dumps({"email": "same@example.com", "fields": {f"from{number}": number}})
        start.wait()
        connection.request("POST", "/api/v1/leads", body=body, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"})  # fmt: skip
        statuses.append(connection.getresponse().status)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server.shutdown()
    assert sorted(statuses).count(201) == 1 and all(s in (200, 201) for s in statuses)
    with runtime.sessions() as session:
        lead = session.scalars(select(Lead)).one()  # exactly one
        assert len(lead.fields) == 8  # and every arrival enriched it


@pytest.fixture
def form_site(make_runtime: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[FlaskClient, Any]:
    import nurture.web.forms as forms

    monkeypatch.setattr(forms, "LIMIT", forms.RateLimit(count=5))
    runtime = make_runtime(form_redirect_url="https://www.planifia.example/merci")
    return create_app(runtime=runtime).test_client(), runtime


def test_website_form_creates_the_lead_and_redirects_to_the_thank_you_page(
    form_site: Any,
) -> None:
    client, runtime = form_site
    response = client.post("/forms/whitepaper-planning-roi", data={
        "email": "Odile.Ferrand@Ferrand-Emballage.fr", "first_name": "Odile",
        "company_size": "180", "country": "FR", "consent": "yes",
        "consent_text": "livre-blanc-v2", "utm_source": "linkedin", "website": ""})  # fmt: skip
    assert response.status_code == 303
    assert response.headers["Location"] == "https://www.planifia.example/merci"
    with runtime.sessions() as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.email == "odile.ferrand@ferrand-emballage.fr"
        assert lead.first_touch["utm_source"] == "linkedin"
        assert session.scalars(select(Consent.text_version)).one() == "livre-blanc-v2"
        from nurture.models import Enrollment, Event

        assert session.scalars(select(Event.name)).all() == ["form_submitted"]
        # The shipped evaluation sequence starts on this form.
        assert session.scalars(select(Enrollment.sequence_id)).all() == ["whitepaper-evaluation"]


def test_form_honeypot_rate_limit_and_errors(form_site: Any) -> None:
    client, runtime = form_site
    bot = client.post("/forms/contact", data={"email": "bot@example.com", "website": "http://x"})
    assert bot.status_code == 303 and count(runtime) == 0  # same answer, nothing stored
    bad = client.post("/forms/contact", data={"email": "not-an-address"})
    assert bad.status_code == 400 and "email" in bad.get_data(as_text=True)
    for n in range(3):
        assert client.post("/forms/contact", data={"email": f"p{n}@example.com"}).status_code == 303
    limited = client.post("/forms/contact", data={"email": "p9@example.com"})
    assert limited.status_code == 429 and count(runtime) == 3
    assert client.post("/forms/..%2fadmin", data={"email": "a@example.com"}).status_code == 404


@pytest.mark.postgres
def test_a_key_in_use_is_refused_while_its_first_request_works_and_nothing_changes(
    postgres_url: str, make_runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch with key K is at work; a single lead with the same K arrives meanwhile.
    It used to be committed too, and the batch answered 409 although its 1,000 leads
    were in: now the key is reserved first, and the latecomer is refused untouched."""
    import http.client

    import nurture.web.api as api_module

    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        key = create_key(session, "race", datetime(2026, 1, 1, tzinfo=UTC))
    started, latecomers_done = threading.Event(), threading.Event()
    real = api_module.take_batch

    def slow_take_batch(*args: Any, **kwargs: Any) -> Any:
        started.set()
        latecomers_done.wait(timeout=20)  # the batch is still at work meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(api_module, "take_batch", slow_take_batch)
    server = make_server("127.0.0.1", 0, create_app(runtime=runtime), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Idempotency-Key": "import-2026-12-02",
    }

    def post(path: str, body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
        connection.request("POST", path, body=json.dumps(body), headers=headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read()), dict(answer.getheaders())

    batch = {"leads": [{"email": f"lead{n}@usine.example"} for n in range(200)]}
    first: list[tuple[int, dict[str, Any], dict[str, str]]] = []
    worker = threading.Thread(target=lambda: first.append(post("/api/v1/leads/batch", batch)))
    worker.start()
    try:
        assert started.wait(timeout=20)
        other_body = post("/api/v1/leads", {"email": "late@usine.example"})
        same_body = post("/api/v1/leads/batch", batch)
        with runtime.sessions() as session:
            during = session.scalar(select(func.count()).select_from(Lead))
    finally:
        latecomers_done.set()
        worker.join(timeout=60)
        server.shutdown()

    assert other_body[0] == 409 and other_body[1]["error"]["code"] == "idempotency_conflict"
    assert same_body[0] == 409 and same_body[1]["error"]["code"] == "idempotency_in_progress"
    assert same_body[2]["Retry-After"] == "1"
    assert during == 0  # the latecomers changed nothing
    [(status, body, _)] = first
    assert status == 200 and body["created"] == 200
    with runtime.sessions() as session:
        emails = set(session.scalars(select(Lead.email)))
    assert len(emails) == 200 and "late@usine.example" not in emails
