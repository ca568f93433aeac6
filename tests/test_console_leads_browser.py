"""The Leads section in a real browser (headless Chromium, with the fixtures of
tests/test_console_browser.py): a user signs in, searches for a lead, opens its page and
finds why its first email was deferred; a sales user cannot open another rep's lead;
no page breaks the console's Content-Security-Policy or raises an error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from test_browser_pages import Opened
from test_browser_pages import browser as browser  # the module's Chromium, reused
from test_console_browser import PASSWORD, Site, Visitor
from test_console_browser import cheap_hashes as cheap_hashes  # autouse
from test_console_browser import site as site
from test_console_browser import visitor as visitor

from nurture.console import users
from nurture.core.intake import parse_lead
from nurture.evidence import record
from nurture.intake import take
from nurture.models import Lead

SATURDAY = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)  # 11:00 in Paris: no office hours


def arrive(site: Site, email: str, rep: str | None = None, **values: object) -> str:
    """A lead who downloads the white paper on a Saturday (the shipped sequence enrols
    her; a worker's tick then defers her first email to Monday). Her id, as URLs say."""
    runtime = site.runtime
    with runtime.sessions.begin() as session:
        data = parse_lead({"email": email, "country": "FR", "company_size": 200, **values})
        lead, _ = take(session, runtime.content, runtime.settings, data, SATURDAY)
        lead.rep_email = rep
        record(
            session,
            runtime.content,
            runtime.settings,
            lead,
            "form_submitted",
            {"form": "whitepaper-planning-roi"},
            SATURDAY,
        )
    assert runtime.dispatcher.tick(SATURDAY).sent == 0
    with runtime.sessions() as session:
        public_id: str = session.scalars(select(Lead.public_id).where(Lead.email == email)).one()
    return public_id


def clean(opened: Opened) -> None:
    assert opened.violations() == [], opened.page.url
    assert [m for m in opened.console if m.startswith("page error")] == [], opened.page.url


def test_a_user_finds_a_lead_and_why_its_email_was_deferred(
    site: Site, visitor: Callable[[], Visitor]
) -> None:
    site.add_user("ana@example.com", "viewer")
    arrive(site, "claire.dupont@usine.example", first_name="Claire", last_name="Dupont")
    arrive(site, "other@usine.example", first_name="Odile", last_name="Martin")
    ana = visitor()
    clean(ana.sign_in("ana@example.com"))
    listed = ana.open("/console/leads")
    assert listed.status == 200
    assert listed.page.locator("table.lead-list tbody tr").count() == 2
    clean(listed)

    listed.page.fill("#q", "dup")
    found = ana.click(listed, "form.lead-search button[type=submit]")
    assert found.page.url.endswith("/console/leads?q=dup") or "q=dup" in found.page.url
    rows = found.page.locator("table.lead-list tbody tr")
    assert rows.count() == 1 and "claire.dupont@usine.example" in rows.inner_text()
    clean(found)

    with found.page.expect_navigation():
        found.page.click("text=claire.dupont@usine.example")
    found.page.wait_for_load_state("load")
    lead = Opened(found.page, found.console, 200)
    assert "/console/leads/" in lead.page.url
    deferred = lead.page.locator("#timeline li[data-kind=deferred]")
    assert deferred.count() == 1
    said = deferred.inner_text()
    assert "Deferred" in said and "outside the send window (Europe/Paris)" in said
    assert "whitepaper-evaluation / testimonial" in said
    entered = lead.page.locator("#timeline li[data-kind=enrolled]").inner_text()
    assert "Entered sequence" in entered
    first = lead.page.locator("#emails li[data-step=testimonial] .reason").inner_text()
    assert first.startswith("Not sent yet:") and "outside the send window" in first
    clean(lead)


def test_a_sales_user_cannot_open_another_reps_lead(
    site: Site, visitor: Callable[[], Visitor]
) -> None:
    with site.runtime.sessions.begin() as session:
        users.create_user(
            session, "rep@planifia.example", "sales", PASSWORD, SATURDAY, "rep@planifia.example"
        )
    mine = arrive(site, "mine@usine.example", "rep@planifia.example", first_name="Mine")
    theirs = arrive(site, "theirs@usine.example", "other@planifia.example", first_name="Theirs")
    rep = visitor()
    clean(rep.sign_in("rep@planifia.example"))
    listed = rep.open("/console/leads")
    assert "Mine" in listed.text() and "Theirs" not in listed.text()
    clean(listed)
    own = rep.open(f"/console/leads/{mine}")
    assert own.status == 200 and "mine@usine.example" in own.text()
    clean(own)
    refused = rep.open(f"/console/leads/{theirs}")
    assert refused.status == 404 and "No such lead" in refused.text()
    assert "theirs@usine.example" not in refused.text() and "Theirs" not in refused.text()
    clean(refused)
