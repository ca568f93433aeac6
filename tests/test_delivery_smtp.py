"""Real messages to a real SMTP server: MIME parts, inlined styles, headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from freezegun import freeze_time

from nurture.apikeys import create_key
from nurture.app import create_app

pytest_plugins = ["smtp_server"]

MONDAY_10_PARIS = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)


def test_the_first_email_of_the_evaluation_sequence_arrives_complete(
    make_runtime: Any, smtp_server: Any
) -> None:
    runtime = make_runtime(
        smtp_url=smtp_server.url, unsubscribe_mailto="unsubscribe@planifia.example"
    )
    with runtime.sessions.begin() as session:
        key = create_key(session, "test", MONDAY_10_PARIS)
    client = create_app(runtime=runtime).test_client()
    headers = {"Authorization": f"Bearer {key}"}
    with freeze_time(MONDAY_10_PARIS):
        client.post(
            "/api/v1/leads",
            json={
                "email": "helene.roux@plasturgie-roux.example",
                "first_name": "Hélène",
                "last_name": "Roux",
                "company": "Plasturgie Roux",
                "company_size": 180,
                "country": "FR",
                "locale": "fr",
                "rep": {"name": "Julien Moreau", "email": "julien.moreau@planifia.example"},
            },
            headers=headers,
        )
        client.post(
            "/api/v1/leads/helene.roux@plasturgie-roux.example/events",
            json={"name": "form_submitted", "properties": {"form": "whitepaper-planning-roi"}},
            headers=headers,
        )
    report = runtime.dispatcher.tick(MONDAY_10_PARIS)
    assert report.sent == 1, report

    [received] = smtp_server.received
    assert received.recipients == ("helene.roux@plasturgie-roux.example",)
    assert received.mail_from == "bonjour@planifia.example"
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]

    assert message["From"] == "Planifia <bonjour@planifia.example>"
    assert message["To"] == "Hélène Roux <helene.roux@plasturgie-roux.example>"
    assert message["Reply-To"] == "julien.moreau@planifia.example"  # the assigned rep
    assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith(
        "@planifia.example>"
    )
    assert message["Date"] is not None
    # Nothing a reader or a relay sees counts deliveries: no header names the row.
    assert message["X-Nurture-Delivery"] is None
    assert all(not k.lower().startswith("x-nurture") for k in message)
    assert (
        message["List-Id"].strip()
        == "White-paper downloaders in evaluation <whitepaper-evaluation.nurture.test>"
    )
    unsubscribe = message["List-Unsubscribe"]
    assert "<https://nurture.test/u/" in unsubscribe
    assert "<mailto:unsubscribe@planifia.example" in unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hélène" in text and "Hélène" in html  # personalised, in French
    assert "12 rue des Tisserands" in text and "12 rue des Tisserands" in html  # the footer
    # CSS inlined: the call-to-action button carries its style on the element itself.
    button = re.search(r'<a class="button"[^>]*>', html)
    assert button is not None and "background-color:#1d4ed8" in button.group(0)
    # Links are tracked: they point at our click route, and a pixel reports opens.
    assert 'href="https://nurture.test/c/' in button.group(0)
    assert re.search(r'<img src="https://nurture.test/o/[^"]+\.gif" width="1"', html)
    assert "https://nurture.test/c/" in text and "planifia.example/fr/" not in text

    # The delivery row records what left.
    lead = client.get(
        "/api/v1/leads/helene.roux@plasturgie-roux.example", headers=headers
    ).get_json()
    sent = [t for t in lead["timeline"] if t.get("delivery") == "sent"]
    assert sent and sent[0]["step"] == "testimonial" and sent[0]["subject"] == message["Subject"]
