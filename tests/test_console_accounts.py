"""The console's Accounts section through Flask's test client: the companies whose
people engage most, an account's people and figures, and who may see them."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from freezegun import freeze_time

from nurture.app import create_app
from nurture.console import users
from nurture.core.intake import parse_lead
from nurture.intake import take
from nurture.leads import add_event, find_lead
from nurture.runtime import Runtime

PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def runtime(make_runtime: Any) -> Runtime:
    made: Runtime = make_runtime()
    people = [
        ("ana@acme.example", "Acme <Industries>", "Plant manager"),
        ("ben@acme.example", "Acme <Industries>", "Buyer"),
        ("cy@acme.example", "Acme <Industries>", None),
        ("dee@globex.example", "Globex", None),
        ("fay@gmail.com", None, None),
    ]
    with made.sessions.begin() as session:
        for email, company, title in people:
            values = {"email": email, "country": "FR", "company": company, "job_title": title}
            data = parse_lead({k: v for k, v in values.items() if v is not None})
            take(session, made.content, made.settings, data, NOW - timedelta(days=20))
        for email in ("ana@acme.example", "ben@acme.example", "dee@globex.example"):
            lead = find_lead(session, email)
            assert lead is not None
            add_event(session, lead, "email_clicked", NOW - timedelta(days=2),
                      classification="human")  # fmt: skip
        cy = find_lead(session, "cy@acme.example")
        assert cy is not None  # a link scanner's click: not engagement
        add_event(session, cy, "email_clicked", NOW - timedelta(days=2), classification="scanner")
    return made


def signed_in(runtime: Runtime, email: str, role: str, rep: str | None = None) -> FlaskClient:
    """A client signed in as a new user; the app is made before any frozen clock."""
    client = create_app(runtime=runtime).test_client()
    with runtime.sessions.begin() as session:
        users.create_user(session, email, role, PASSWORD, NOW, rep)
    with freeze_time(NOW):
        page = client.get("/console/login").get_data(as_text=True)
        found = TOKEN.search(page)
        assert found
        data = {"email": email, "password": PASSWORD, "csrf_token": found.group(1)}
        assert client.post("/console/login", data=data).status_code == 303
    return client


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_the_list_puts_the_account_whose_people_engage_most_first(runtime: Runtime) -> None:
    client = signed_in(runtime, "marketer@planifia.example", "marketer")
    with freeze_time(NOW):
        page = client.get("/console/accounts")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'href="/console/accounts"' in body and 'aria-current="page">Accounts' in body
    rows = re.findall(r"<tr>\s*<td><a href=\"/console/accounts/(\d+)\">([^<]+)</a>", body)
    assert [domain for _, domain in rows] == ["acme.example", "globex.example"]  # no gmail.com
    shown = text_of(body)
    assert "Acme <Industries>" in shown  # escaped in the page, read back as typed
    assert "<Industries>" not in body
    acme = re.search(r"acme.example</a></td>(.*?)</tr>", body, re.S)
    assert acme is not None
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", acme.group(1))
    assert cells[1:3] == ["3", "2"]  # three people, two engaged: the scanner is no one


def test_an_account_page_shows_its_people_engaged_first(runtime: Runtime) -> None:
    client = signed_in(runtime, "viewer@planifia.example", "viewer")
    with freeze_time(NOW):
        page = client.get("/console/accounts/acme.example")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    emails = re.findall(r'<a href="/console/leads/[^"]+">([^<]+@acme\.example)</a>', body)
    assert emails[2] == "cy@acme.example" and set(emails[:2]) == {
        "ana@acme.example",
        "ben@acme.example",
    }
    assert re.search(r'<dd class="engaged">2</dd>', body)
    assert "Never: the scoring file's account rule" in body
    with freeze_time(NOW):
        missing = client.get("/console/accounts/nowhere.example")
    assert missing.status_code == 404
    assert "No account is known by “nowhere.example”" in missing.get_data(as_text=True)


def test_a_sales_user_sees_no_accounts_and_no_link_to_them(runtime: Runtime) -> None:
    client = signed_in(runtime, "rep@planifia.example", "sales", rep="rep@planifia.example")
    with freeze_time(NOW):
        assert client.get("/console/accounts").status_code == 403
        assert client.get("/console/accounts/acme.example").status_code == 403
        leads = client.get("/console/leads").get_data(as_text=True)
    assert 'href="/console/leads"' in leads and 'href="/console/accounts"' not in leads
