"""The Operations section in a real browser (headless Chromium, with the fixtures of
tests/test_console_browser.py): an admin replays a dead letter by pressing its button,
creates an API key and sees its secret once, and revokes it; no page breaks the
console's Content-Security-Policy or raises an error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from test_console_browser import Opened, Site, Visitor
from test_console_browser import browser as browser  # the module's Chromium, reused
from test_console_browser import cheap_hashes as cheap_hashes  # autouse: cheap Argon2
from test_console_browser import site as site
from test_console_browser import visitor as visitor

from nurture.crm import CrmPusher, enqueue
from nurture.models import CrmPush, Lead, Promotion

if TYPE_CHECKING:
    from http_receiver import HttpReceiver

pytest_plugins = ["http_receiver"]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the receiver's (tests/http_receiver.py)
ADMIN = "claire@planifia.example"


def pusher(site: Site, receiver: HttpReceiver) -> CrmPusher:
    """The worker's CRM pusher, pointed at the receiver (the site itself needs no URL)."""
    settings = replace(
        site.runtime.settings, crm_webhook_url=receiver.url, crm_webhook_secret=SECRET
    )
    return CrmPusher(settings, site.runtime.sessions)


def dead_letter(site: Site, receiver: HttpReceiver) -> int:
    """A lead promoted five days ago whose push the CRM answered 500 to, until dead."""
    start = datetime.now(UTC) - timedelta(days=5)
    with site.runtime.sessions.begin() as session:
        lead = Lead(email="dead@client.example", created_at=start, updated_at=start)
        session.add(lead)
        session.flush()
        promotion = Promotion(lead_id=lead.id, cycle=1, reason="score 80", status_at=start,
                              created_at=start)  # fmt: skip
        session.add(promotion)
        session.flush()
        push_id = enqueue(session, "lead.promoted", {"lead": {}}, start, promotion.id).id
    receiver.default = receiver.answer(500, body=b"<b>database down</b>")
    worker = pusher(site, receiver)
    while True:
        with site.runtime.sessions() as session:
            push = session.get(CrmPush, push_id)
            assert push is not None
            if push.next_attempt_at is None:
                assert push.status == "dead"
                return push_id
        worker.deliver_due(push.next_attempt_at)


def clean(opened: Opened) -> None:
    assert opened.status == 200, opened.page.url
    assert opened.violations() == [], opened.page.url
    assert [m for m in opened.console if m.startswith("page error")] == [], opened.page.url


def test_an_admin_replays_a_dead_letter_by_pressing_its_button(
    site: Site, visitor: Callable[[], Visitor], http_receiver: HttpReceiver
) -> None:
    push_id = dead_letter(site, http_receiver)
    site.add_user(ADMIN, "admin")
    claire = visitor()
    clean(claire.sign_in(ADMIN))
    page = claire.open("/console/operations")
    clean(page)
    row = page.page.locator(f"#dead-{push_id}")
    assert "dead@client.example" in row.inner_text()
    assert "<b>database down</b>" in row.inner_text()  # the CRM's body, as text
    assert page.page.evaluate("getComputedStyle(document.querySelector('.ops-tabs')).display") == (
        "flex"  # the section's style sheet applies
    )

    replayed = claire.click(page, f"#dead-{push_id} button")
    clean(replayed)
    assert replayed.page.url == f"{site.origin}/console/operations#crm"
    assert f"Push {push_id} queued again: pending, due now" in replayed.text()
    assert replayed.page.locator(f"#pending-{push_id}").count() == 1
    assert replayed.page.locator(f"#dead-{push_id}").count() == 0
    assert replayed.page.locator("#no-dead-letters").count() == 1

    http_receiver.default = http_receiver.answer(200)
    assert pusher(site, http_receiver).deliver_due(datetime.now(UTC)).delivered == 1
    assert len(http_receiver.accepted_ids()) == 1


def test_an_admin_creates_a_key_sees_its_secret_once_and_revokes_it(
    site: Site, visitor: Callable[[], Visitor]
) -> None:
    site.add_user(ADMIN, "admin")
    site.add_lead("paul@example.com")
    claire = visitor()
    clean(claire.sign_in(ADMIN))
    form = claire.open("/console/operations/keys")
    clean(form)
    form.page.fill("#key-name", "Dashboard")
    form.page.uncheck("#scope-intake")
    form.page.uncheck("#scope-events")
    made = claire.click(form, "#create-key")
    clean(made)
    secret = made.page.inner_text("#secret")
    assert secret.startswith("nk_") and "Copy the key now" in made.text()
    prefix = secret.removeprefix("nk_").split(".")[0]

    api = made.page.request
    bearer = {"Authorization": f"Bearer {secret}"}
    assert api.get(f"{site.origin}/api/v1/leads/paul@example.com", headers=bearer).ok

    made.page.reload()  # the form is sent again: no second key, no secret
    made.page.wait_for_load_state("load")
    assert secret not in made.text()
    assert "That form was sent already" in made.text()
    listing = claire.open("/console/operations/keys")
    clean(listing)
    assert secret not in listing.page.content()
    assert listing.page.locator("#keys tbody tr").count() == 1
    assert "read" in listing.page.inner_text(f"#key-{prefix}")

    confirm = claire.click(listing, f"#key-{prefix} a")
    clean(confirm)
    assert f"Revoke key nk_{prefix}?" in confirm.text()
    revoked = claire.click(confirm, "#revoke")
    clean(revoked)
    assert f"Key nk_{prefix} revoked" in revoked.text()
    assert revoked.page.locator(f"#key-{prefix} a").count() == 0  # no second revoke
    refused = api.get(f"{site.origin}/api/v1/leads/paul@example.com", headers=bearer)
    assert refused.status == 401
