"""Double opt-in for website forms: nothing about the person is kept as a lead until
the link emailed by a worker (over real SMTP) is confirmed with a POST."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from freezegun import freeze_time
from itsdangerous import URLSafeSerializer
from sqlalchemy import func, select, update

from nurture.app import create_app
from nurture.cli import cli
from nurture.config import ConfigError, load_settings
from nurture.confirmation import SALT, link_token, send_due
from nurture.core.confirmation import (
    MAX_ATTEMPTS,
    ConfirmationEmail,
    ConfirmationTemplate,
    compose,
    confirmed_lead,
    needs_confirmation,
    retry_delay,
)
from nurture.core.rendering import SAMPLE_SENDER
from nurture.models import Consent, Enrollment, Event, FormConfirmation, Lead
from nurture.scheduler import work

pytest_plugins = ["smtp_server"]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
FORM = "whitepaper-planning-roi"  # the shipped evaluation sequence starts on it
ODILE = {"email": "Odile.Ferrand@Ferrand-Emballage.fr", "first_name": "Odile",
         "company_size": "180", "country": "FR", "locale": "fr", "consent": "yes",
         "consent_text": "livre-blanc-v2", "utm_source": "linkedin", "website": ""}  # fmt: skip
ADDRESS = "odile.ferrand@ferrand-emballage.fr"


# --- the pure part -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "forms", "expected"),
    [
        ("newsletter", frozenset({"newsletter", "webinar"}), True),
        ("contact", frozenset({"newsletter", "webinar"}), False),
        ("contact", frozenset({"*"}), True),
        ("contact", frozenset(), False),
    ],
)
def test_which_forms_need_confirmation(form: str, forms: frozenset[str], expected: bool) -> None:
    assert needs_confirmation(form, forms) is expected


def test_the_settings_name_forms_or_all_and_refuse_what_is_not_a_form() -> None:
    settings = load_settings(environ={"NURTURE_DOUBLE_OPT_IN_FORMS": "newsletter, webinar"})
    assert settings.double_opt_in_forms == frozenset({"newsletter", "webinar"})
    assert settings.double_opt_in_days == 7
    assert load_settings(environ={}).double_opt_in_forms == frozenset()
    every = load_settings(environ={"NURTURE_DOUBLE_OPT_IN_FORMS": "*"})
    assert needs_confirmation("anything", every.double_opt_in_forms)
    with pytest.raises(ConfigError, match=r"NURTURE_DOUBLE_OPT_IN_FORMS=.*not a form name"):
        load_settings(environ={"NURTURE_DOUBLE_OPT_IN_FORMS": "News Letter"})
    with pytest.raises(ConfigError, match="NURTURE_DOUBLE_OPT_IN_DAYS"):
        load_settings(environ={"NURTURE_DOUBLE_OPT_IN_DAYS": "0"})


@pytest.mark.parametrize(
    ("ticked", "granted", "version"),
    [
        (None, True, None),  # no box on the form: confirming is the consent
        (True, True, "v2"),
        (False, False, "v2"),  # the link proves the address, not a refused consent
    ],
)
def test_the_confirmation_proves_the_consent_given_and_never_grants_a_refused_one(
    ticked: bool | None, granted: bool, version: str | None
) -> None:
    body: dict[str, Any] = {"email": "a@example.com"}
    if ticked is not None:
        body["consent"] = {"purpose": "marketing", "granted": ticked, "text_version": "v2",
                           "source": "form news"}  # fmt: skip
    consent = confirmed_lead(body, "news")["consent"]
    assert consent["granted"] is granted and consent.get("text_version") == version
    assert consent["source"] == "double opt-in confirmed, form news"


def test_retries_are_spaced_then_given_up() -> None:
    delays = [retry_delay(n) for n in range(1, MAX_ATTEMPTS)]
    assert delays[0] == timedelta(minutes=1) and retry_delay(MAX_ATTEMPTS) is None
    assert all(a is not None and b is not None and a < b for a, b in pairwise(delays))


def test_the_email_escapes_what_the_visitor_typed() -> None:
    html = "<p>{{ first_name }} {{ confirm_url }}</p>"
    template = ConfirmationTemplate("en", "Confirm, {{ first_name }}", html, "{{ email }}")
    email = ConfirmationEmail(
        message_id="abc@example.com", to_email="a@example.com", first_name="<b>Bo</b>\r\nBcc: x",
        form="news", confirm_url="https://n.example/forms/confirm/t", days=7,
        sender=SAMPLE_SENDER, reply_to=None, date=T0,
    )  # fmt: skip
    message = compose(template, email)
    assert "&lt;b&gt;Bo&lt;/b&gt;" in message.get_body(("html",)).get_content()
    assert message["Bcc"] is None and "\n" not in str(message["Subject"])
    assert message["Auto-Submitted"] == "auto-generated" and message["List-Unsubscribe"] is None


# --- through the web, the worker and real SMTP -------------------------------------------


@pytest.fixture(autouse=True)
def fresh_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test posts at the same frozen time from the same address."""
    import nurture.web.forms as forms

    monkeypatch.setattr(forms, "LIMIT", forms.RateLimit(count=100))


@pytest.fixture
def site(make_runtime: Any, smtp_server: Any) -> Any:
    runtime = make_runtime(smtp_url=smtp_server.url, double_opt_in_forms=frozenset({FORM}))
    return runtime, create_app(runtime=runtime).test_client(), smtp_server


def count(runtime: Any, model: Any) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def pending(runtime: Any) -> FormConfirmation:
    with runtime.sessions() as session:
        return session.scalars(select(FormConfirmation)).one()


def confirmations_to(server: Any, address: str) -> list[EmailMessage]:
    return [r.message for r in server.received if r.recipients == (address,)]


def link_in(message: EmailMessage) -> str:
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    [url] = re.findall(r"https://nurture\.test/forms/confirm/\S+", text)
    assert f'href="{url}"' in html  # the same link in both parts
    return urlsplit(url).path


def submit(client: FlaskClient, at: datetime, **changes: str) -> Any:
    with freeze_time(at):
        return client.post(f"/forms/{FORM}", data={**ODILE, **changes})


def test_a_confirmed_submission_becomes_the_lead_with_proven_consent(site: Any) -> None:
    runtime, client, server = site
    answer = submit(client, T0)
    assert answer.status_code == 200 and "Check your inbox" in answer.get_data(as_text=True)
    assert count(runtime, Lead) == count(runtime, Consent) == count(runtime, Event) == 0
    row = pending(runtime)
    assert (row.email, row.form, row.send_state, row.locale) == (ADDRESS, FORM, "pending", "fr")
    assert row.expires_at == T0 + timedelta(days=7)
    assert not row.public_id.isdigit() and len(row.public_id) >= 32
    assert server.received == []  # the web request sends nothing

    lines = work(runtime, T0)
    assert "confirmations: sent 1, retried 0, failed 0" in lines
    [message] = confirmations_to(server, ADDRESS)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == "Confirmez votre adresse email pour Planifia SAS"  # locale fr
    assert message["From"] == "Planifia <bonjour@planifia.example>"
    path = link_in(message)
    token = path.rsplit("/", 1)[1]
    # The link carries the random id only: not the row's number, not the address.
    assert URLSafeSerializer(runtime.secret_key, salt=SALT).loads(token) == row.public_id
    assert "odile" not in token.lower()
    assert pending(runtime).send_state == "sent" and pending(runtime).attempts == 1
    work(runtime, T0 + timedelta(minutes=5))
    assert len(confirmations_to(server, ADDRESS)) == 1  # never twice

    confirmed_at = T0 + timedelta(hours=3)
    with freeze_time(confirmed_at):
        for _ in range(3):  # link scanners follow it, maybe several times
            page = client.get(path)
            assert page.status_code == 200 and ADDRESS in page.get_data(as_text=True)
            assert '<form method="post">' in page.get_data(as_text=True)
            assert "<script" not in page.get_data(as_text=True)
            assert "default-src 'none'" in page.headers["Content-Security-Policy"]
            assert page.headers["Cache-Control"] == "no-store"
        assert count(runtime, Lead) == count(runtime, Consent) == 0  # no consent yet
        done = client.post(path)
    assert done.status_code == 200 and "Thank you" in done.get_data(as_text=True)
    with runtime.sessions() as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.email == ADDRESS and lead.first_name == "Odile"
        assert lead.first_touch is not None and lead.first_touch["utm_source"] == "linkedin"
        consent = session.scalars(select(Consent)).one()
        assert consent.granted and consent.text_version == "livre-blanc-v2"
        assert consent.at == confirmed_at
        assert consent.source == f"double opt-in confirmed, form {FORM}"
        event = session.scalars(select(Event)).one()
        assert event.name == "form_submitted" and event.origin == "form"
        assert event.properties["form"] == FORM and event.properties["utm_source"] == "linkedin"
        assert event.properties["double_opt_in"] == "confirmed"
        assert event.properties["submitted_at"] == T0.isoformat()
        # The same intake as an ordinary form: the evaluation sequence starts.
        assert session.scalars(select(Enrollment.sequence_id)).all() == ["whitepaper-evaluation"]
    assert count(runtime, FormConfirmation) == 0

    with freeze_time(confirmed_at + timedelta(minutes=1)):
        again = client.post(path)  # a double click, a second tab
        page = client.get(path)
    assert again.status_code == 404 and "already confirmed" in again.get_data(as_text=True)
    assert page.status_code == 404
    assert (count(runtime, Lead), count(runtime, Consent), count(runtime, Event)) == (1, 1, 1)


def test_forms_without_double_opt_in_take_the_lead_at_once(site: Any) -> None:
    runtime, client, _ = site
    with freeze_time(T0):
        answer = client.post("/forms/contact", data={"email": "paul@example.com", "consent": "yes"})
    assert answer.status_code == 200 and "Thank you" in answer.get_data(as_text=True)
    assert count(runtime, Lead) == count(runtime, Consent) == count(runtime, Event) == 1
    assert count(runtime, FormConfirmation) == 0
    with runtime.sessions() as session:
        assert session.scalars(select(Consent.source)).one() == "form contact"


def test_every_form_with_a_star_and_the_english_email_by_locale(
    make_runtime: Any, smtp_server: Any
) -> None:
    runtime = make_runtime(smtp_url=smtp_server.url, double_opt_in_forms=frozenset({"*"}))
    client = create_app(runtime=runtime).test_client()
    with freeze_time(T0):
        client.post("/forms/newsletter", data={"email": "sam@example.org", "locale": "en-GB"})
        client.post("/forms/webinar", data={"email": "kim@example.org"})  # no locale: English
    assert count(runtime, Lead) == 0 and count(runtime, FormConfirmation) == 2
    report = send_due(runtime.sessions, runtime.settings, runtime.secret_key,
                      runtime.dispatcher.send_now, T0)  # fmt: skip
    assert str(report) == "sent 2, retried 0, failed 0"
    subjects = {r.recipients[0]: r.message["Subject"] for r in smtp_server.received}
    assert subjects == {
        "sam@example.org": "Please confirm your email address for Planifia SAS",
        "kim@example.org": "Please confirm your email address for Planifia SAS",
    }


def test_an_expired_link_is_refused_and_retention_purges_it(site: Any) -> None:
    runtime, client, server = site
    submit(client, T0)
    work(runtime, T0)
    path = link_in(confirmations_to(server, ADDRESS)[0])
    late = T0 + timedelta(days=7, minutes=1)
    with freeze_time(late):
        page, refused = client.get(path), client.post(path)
    for answer in (page, refused):
        assert answer.status_code == 404 and "expired" in answer.get_data(as_text=True)
    assert count(runtime, Lead) == 0 and count(runtime, FormConfirmation) == 1
    lines = work(runtime, late)
    assert any("1 unconfirmed form submissions expired" in line for line in lines), lines
    assert count(runtime, FormConfirmation) == 0
    with freeze_time(late):
        assert client.post(path).status_code == 404
    assert count(runtime, Lead) == 0


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-3],
        lambda t: t + "x",
        lambda t: t[:10],
        lambda t: "A" * 40,
        lambda t: t.replace(".", "%0d%0a"),
        lambda t: URLSafeSerializer("another-secret-key-0123456789", salt=SALT).dumps("x"),
        lambda t: "x" * 5000,
    ],
)
def test_tampered_links_are_refused_and_change_nothing(site: Any, mangle: Any) -> None:
    runtime, client, server = site
    submit(client, T0)
    work(runtime, T0)
    token = link_in(confirmations_to(server, ADDRESS)[0]).rsplit("/", 1)[1]
    bad = f"/forms/confirm/{mangle(token)}"
    with freeze_time(T0):
        page, refused = client.get(bad), client.post(bad)
    for answer in (page, refused):
        assert answer.status_code == 400 and "not recognised" in answer.get_data(as_text=True)
    assert count(runtime, Lead) == 0 and count(runtime, FormConfirmation) == 1


def test_a_genuine_link_to_nothing_we_hold_is_not_found(site: Any) -> None:
    runtime, client, _ = site
    path = f"/forms/confirm/{link_token(runtime.secret_key, 'never-issued')}"
    with freeze_time(T0):
        assert client.get(path).status_code == 404
        assert client.post(path).status_code == 404
    assert count(runtime, Lead) == 0


def test_a_refused_email_is_retried_then_sent_and_a_dead_end_is_left_visible(
    make_runtime: Any, smtp_server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server_factory(tempfail_mail=1, reject_rcpt={"gone@example.com"})
    runtime = make_runtime(smtp_url=server.url, double_opt_in_forms=frozenset({"news"}))
    client = create_app(runtime=runtime).test_client()
    with freeze_time(T0):
        client.post("/forms/news", data={"email": "anna@example.com"})

    def due(at: datetime) -> str:
        return str(send_due(runtime.sessions, runtime.settings, runtime.secret_key,
                            runtime.dispatcher.send_now, at))  # fmt: skip

    assert due(T0) == "sent 0, retried 1, failed 0"  # 451: try again later
    row = pending(runtime)
    assert (row.send_state, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == T0 + timedelta(minutes=1) and "451" in (row.last_error or "")
    assert due(T0 + timedelta(seconds=30)) == "sent 0, retried 0, failed 0"  # not yet due
    assert due(T0 + timedelta(minutes=1)) == "sent 1, retried 0, failed 0"
    assert pending(runtime).send_state == "sent" and pending(runtime).last_error is None
    assert [r.recipients for r in server.received] == [("anna@example.com",)]

    with runtime.sessions.begin() as session:
        session.execute(update(FormConfirmation).values(email="gone@example.com"))
        session.execute(
            update(FormConfirmation).values(send_state="pending", next_attempt_at=T0, attempts=0)
        )
    with caplog.at_level(logging.WARNING, logger="nurture.confirmation"):
        assert due(T0 + timedelta(minutes=2)) == "sent 0, retried 0, failed 1"  # 550: for good
    row = pending(runtime)
    assert row.send_state == "failed" and "550" in (row.last_error or "")
    assert f"confirmation email {row.id} not sent" in caplog.text


def test_a_relay_that_never_answers_spends_the_attempts_then_fails(
    make_runtime: Any, smtp_server: Any
) -> None:
    smtp_server.unavailable = True  # 421 to every message
    runtime = make_runtime(smtp_url=smtp_server.url, double_opt_in_forms=frozenset({"news"}))
    client = create_app(runtime=runtime).test_client()
    with freeze_time(T0):
        client.post("/forms/news", data={"email": "anna@example.com"})
    at = T0
    for _ in range(MAX_ATTEMPTS):
        send_due(runtime.sessions, runtime.settings, runtime.secret_key,
                 runtime.dispatcher.send_now, at)  # fmt: skip
        at = pending(runtime).next_attempt_at or at
    row = pending(runtime)
    assert row.send_state == "failed" and row.attempts == MAX_ATTEMPTS
    assert f"gave up after {MAX_ATTEMPTS} attempts" in (row.last_error or "")
    assert smtp_server.received == []


def test_an_unanswered_send_and_a_dead_worker_are_never_sent_twice(
    make_runtime: Any, smtp_server: Any
) -> None:
    smtp_server.drop_after_data = True  # the data arrives, the reply never does
    runtime = make_runtime(smtp_url=smtp_server.url, double_opt_in_forms=frozenset({"news"}))
    client = create_app(runtime=runtime).test_client()
    with freeze_time(T0):
        for address in ("anna@example.com", "bob@example.com"):
            assert client.post("/forms/news", data={"email": address}).status_code == 200
    with runtime.sessions.begin() as session:  # a worker died holding bob's
        session.execute(
            update(FormConfirmation)
            .where(FormConfirmation.email == "bob@example.com")
            .values(send_state="sending", attempts=1, lease_until=T0 + timedelta(minutes=5))
        )

    def due(at: datetime) -> str:
        return str(send_due(runtime.sessions, runtime.settings, runtime.secret_key,
                            runtime.dispatcher.send_now, at))  # fmt: skip

    assert due(T0) == "sent 1, retried 0, failed 0"
    assert due(T0 + timedelta(minutes=10)) == "sent 0, retried 0, failed 1"  # bob's lease ran out
    assert due(T0 + timedelta(hours=1)) == "sent 0, retried 0, failed 0"
    with runtime.sessions() as session:
        rows = {r.email: r for r in session.scalars(select(FormConfirmation))}
    assert rows["anna@example.com"].send_state == "sent"
    assert "unconfirmed by the relay" in (rows["anna@example.com"].last_error or "")
    assert rows["bob@example.com"].send_state == "failed"
    assert "not resent" in (rows["bob@example.com"].last_error or "")
    assert [r.recipients for r in smtp_server.received] == [("anna@example.com",)]


def test_submitting_again_updates_the_waiting_submission_and_resends_only_later(
    site: Any,
) -> None:
    runtime, client, server = site
    submit(client, T0)
    submit(client, T0 + timedelta(minutes=1), first_name="Odile-Marie")
    work(runtime, T0 + timedelta(minutes=1))
    submit(client, T0 + timedelta(minutes=5))  # too soon to send the link again
    work(runtime, T0 + timedelta(minutes=5))
    assert count(runtime, FormConfirmation) == 1
    assert len(confirmations_to(server, ADDRESS)) == 1
    later = T0 + timedelta(minutes=30)
    submit(client, later)  # the first email was lost: the same link again
    work(runtime, later)
    first, second = confirmations_to(server, ADDRESS)
    assert link_in(first) == link_in(second) and first["Message-ID"] != second["Message-ID"]
    assert pending(runtime).expires_at == later + timedelta(days=7)


def test_erasure_deletes_a_waiting_submission(site: Any) -> None:
    runtime, client, server = site
    submit(client, T0)
    work(runtime, T0)
    path = link_in(confirmations_to(server, ADDRESS)[0])
    env = {
        "NURTURE_DATABASE_URL": runtime.settings.database_url,
        "NURTURE_SECRET_KEY": runtime.secret_key,
    }
    with freeze_time(T0 + timedelta(hours=1)):
        erased = CliRunner().invoke(cli, ["gdpr", "erase", ADDRESS, "--yes"], env=env)
    assert erased.exit_code == 0, erased.output
    assert count(runtime, FormConfirmation) == 0
    with freeze_time(T0 + timedelta(hours=2)):
        assert client.post(path).status_code == 404
        again = submit(client, T0 + timedelta(hours=2))  # the address is suppressed now
    assert again.status_code == 200  # the same answer: nothing tells who is suppressed
    assert count(runtime, FormConfirmation) == 0 and count(runtime, Lead) == 0
    work(runtime, T0 + timedelta(hours=2))
    assert len(confirmations_to(server, ADDRESS)) == 1


def test_validate_checks_the_confirmation_email_when_a_form_needs_it(tmp_path: Any) -> None:
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    templates = tmp_path / "templates"
    shutil.copytree(root / "templates", templates)
    env = {
        "NURTURE_DATABASE_URL": f"sqlite:///{tmp_path / 'n.sqlite'}",
        "NURTURE_SECRET_KEY": "x" * 32,
        "NURTURE_TEMPLATES_DIR": str(templates),
        "NURTURE_SEQUENCES_DIR": str(root / "sequences"),
        "NURTURE_DOUBLE_OPT_IN_FORMS": "newsletter",
    }
    assert CliRunner().invoke(cli, ["validate"], env=env).exit_code == 0
    (templates / "forms" / "form_confirmation" / "fr" / "body.html").write_text("{{ oops(")
    broken = CliRunner().invoke(cli, ["validate"], env=env)
    assert broken.exit_code == 1
    assert "form_confirmation/fr:1: double opt-in email:" in broken.output
    shutil.rmtree(templates / "forms")
    missing = CliRunner().invoke(cli, ["validate"], env=env)
    assert missing.exit_code == 1
    assert "no confirmation email template" in missing.output
    without = {k: v for k, v in env.items() if k != "NURTURE_DOUBLE_OPT_IN_FORMS"}
    assert CliRunner().invoke(cli, ["validate"], env=without).exit_code == 0  # not asked for
