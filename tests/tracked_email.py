"""A real email with tracking, sent by the real dispatcher, and the app that answers it.

Use with `pytest_plugins = ["tracked_email"]` for the `tracked` fixture: a lead, one
email with three links (plus the honeypot and the pixel) delivered at `SENT`, the
paths of its links as the email carries them, and a Flask test client.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from nurture.app import create_app
from nurture.core.intake import parse_lead
from nurture.enrollment import on_event
from nurture.leads import upsert_lead
from nurture.mail import MemoryMailer
from nurture.models import Delivery, Event, Lead, TrackingHit
from nurture.runtime import Runtime
from nurture.tracking import tokens_for

ROOT = Path(__file__).resolve().parent.parent
SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(hours=1)  # a reader's time: nothing "too soon" about it
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)
SEQUENCE = """\
id: news
name: News
locales: [en]
entry:
  triggers:
    - event: {name: start}
steps:
  - id: one
    email: {template: three, kind: newsletter}
"""
LINKS = ("guide", "pricing", "customers")


@dataclass
class Tracked:
    runtime: Runtime
    client: Any
    links: list[str]  # the visible links' paths: the layout's website link, then guide, …
    honeypot: str
    pixel: str
    sent: datetime = SENT
    later: datetime = LATER
    lead_email: str = "reader@example.com"

    def click(self, index: int, agent: str = CHROME, method: str = "GET") -> Any:
        return self.client.open(self.links[index], method=method, headers={"User-Agent": agent})

    def score(self) -> int:
        with self.runtime.sessions() as session:
            return session.scalars(select(Lead.score)).one()

    def stored_link(self, index: int) -> str:
        """The path of link `index` as emails carried it before links carried their
        target (`/c/<delivery token>/<index>`): the route looks the target up."""
        with self.runtime.sessions() as session:
            delivery_id = session.scalars(select(Delivery.id)).one()
        token = tokens_for(self.runtime.secret_key).click(delivery_id)
        return f"/c/{token}/{index}"

    def engagement(self) -> dict[str, datetime | None]:
        """The email's engagement as the sequence report reads it (its own row)."""
        with self.runtime.sessions() as session:
            delivery = session.scalars(select(Delivery)).one()
            return {
                name: getattr(delivery, name)
                for name in ("opened_at", "clicked_at", "machine_opened_at", "scanned_at")
            }

    def hits(self) -> list[TrackingHit]:
        with self.runtime.sessions() as session:
            return list(session.scalars(select(TrackingHit).order_by(TrackingHit.id)))

    def events(self) -> list[Event]:
        with self.runtime.sessions() as session:
            return list(
                session.scalars(
                    select(Event)
                    .where(Event.name.in_(("email_opened", "email_clicked")))
                    .order_by(Event.id)
                )
            )


@pytest.fixture
def tracked(make_runtime: Any, content_dirs: tuple[Path, Path]) -> Tracked:
    sequences, templates = content_dirs
    (sequences / "news.yaml").write_text(SEQUENCE)
    three = templates / "emails" / "three"
    shutil.copytree(templates / "emails" / "example", three)
    for part in ("body.html", "body.txt"):
        body = three / "en" / part
        extra = "".join(
            f'\n<p><a href="https://www.planifia.example/{name}">{name}</a></p>'
            if part == "body.html"
            else f"\nhttps://www.planifia.example/{name}\n"
            for name in LINKS[1:]
        )
        body.write_text(body.read_text() + extra)
    mailer = MemoryMailer()
    runtime = make_runtime(
        mailer_factory=lambda: mailer,
        sequences_dir=sequences,
        templates_dir=templates,
        scoring_file=ROOT / "sequences" / "rules" / "scoring.yaml",
        routing_file=ROOT / "sequences" / "rules" / "routing.yaml",
    )
    with runtime.sessions.begin() as session:
        lead, _, _ = upsert_lead(session, parse_lead({"email": "reader@example.com"}), SENT)
        on_event(session, runtime.content, lead, "start", {}, SENT)
    assert runtime.dispatcher.tick(SENT).sent == 1
    html = mailer.messages[0].get_body(("html",)).get_content()
    hidden = re.search(r'display:none[^>]*>\s*<a href="([^"]+)"', html)
    pixel = re.search(r'<img src="([^"]+\.gif)"', html)
    assert hidden and pixel
    links = [
        urlsplit(url).path
        for url in dict.fromkeys(re.findall(r'href="(https://nurture\.test/c/[^"]+)"', html))
        if url != hidden.group(1)
    ]
    assert len(links) == 4  # the layout's link to the website, then the three of the body
    return Tracked(
        runtime,
        create_app(runtime=runtime).test_client(),
        links,
        urlsplit(hidden.group(1)).path,
        urlsplit(pixel.group(1)).path,
    )
