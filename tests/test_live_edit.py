"""Editing a live sequence file never re-sends or silently skips steps for leads inside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from nurture.core.intake import parse_lead
from nurture.enrollment import on_event
from nurture.leads import upsert_lead
from nurture.mail import MemoryMailer
from nurture.models import Delivery, Enrollment, Lead
from nurture.runtime import Runtime

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

V1 = """\
id: onboarding
name: Onboarding
locales: [en]
entry:
  triggers:
    - event: {name: start}
steps:
  - id: hello
    email: {template: example, kind: onboarding}
  - id: long-pause
    wait: 3 days
  - id: tips
    email: {template: example, kind: guide}
"""

# v2 removes the wait the first lead is sitting in, and renames the last email.
V2 = """\
id: onboarding
name: Onboarding (shorter)
locales: [en]
entry:
  triggers:
    - event: {name: start}
steps:
  - id: hello
    email: {template: example, kind: onboarding}
  - id: short-pause
    wait: 1 day
  - id: tips-v2
    email: {template: example, kind: guide}
"""


def test_leads_inside_keep_their_version_new_leads_get_the_new_one(
    make_runtime: Any, content_dirs: tuple[Path, Path]
) -> None:
    sequences, templates = content_dirs
    path = sequences / "onboarding.yaml"
    path.write_text(V1)
    mailer = MemoryMailer()
    runtime: Runtime = make_runtime(
        mailer_factory=lambda: mailer, sequences_dir=sequences, templates_dir=templates
    )

    def enter(email: str, now: datetime) -> None:
        with runtime.sessions.begin() as session:
            lead, _, _ = upsert_lead(session, parse_lead({"email": email}), now)
            on_event(session, runtime.content, lead, "start", {}, now)

    enter("old@example.com", T0)
    assert runtime.dispatcher.tick(T0).sent == 1  # hello; now waiting in long-pause (v1)

    path.write_text(V2)  # the marketer edits the live file
    runtime.content.reload()
    enter("new@example.com", T0 + timedelta(hours=1))
    assert runtime.dispatcher.tick(T0 + timedelta(hours=1)).sent == 1

    # After 1 day only the new lead (v2, short pause) gets its second email.
    runtime.dispatcher.tick(T0 + timedelta(days=1, hours=1))
    # After 3 days the old lead finishes its own version's wait and gets v1's "tips".
    runtime.dispatcher.tick(T0 + timedelta(days=3))
    runtime.dispatcher.tick(T0 + timedelta(days=30))

    with runtime.sessions() as session:
        sent = {
            (d.to_email, d.step_id, d.version[:4], d.sent_at)
            for d in session.scalars(select(Delivery).where(Delivery.status == "sent"))
        }
        versions = dict(
            session.execute(
                select(Lead.email, Enrollment.version).join(Lead, Lead.id == Enrollment.lead_id)
            ).all()
        )
    v1, v2 = versions["old@example.com"], versions["new@example.com"]
    assert v1 != v2
    assert sent == {
        ("old@example.com", "hello", v1[:4], T0),
        ("old@example.com", "tips", v1[:4], T0 + timedelta(days=3)),
        ("new@example.com", "hello", v2[:4], T0 + timedelta(hours=1)),
        ("new@example.com", "tips-v2", v2[:4], T0 + timedelta(days=1, hours=1)),
    }
    assert len(mailer.messages) == 4  # nothing re-sent, nothing skipped


def test_pinned_version_survives_a_restart(
    make_runtime: Any, content_dirs: tuple[Path, Path]
) -> None:
    """A new process that never saw v1 reads it back from the database."""
    sequences, templates = content_dirs
    (sequences / "onboarding.yaml").write_text(V1)
    first: Runtime = make_runtime(
        mailer_factory=MemoryMailer, sequences_dir=sequences, templates_dir=templates
    )
    with first.sessions.begin() as session:
        lead, _, _ = upsert_lead(session, parse_lead({"email": "x@example.com"}), T0)
        on_event(session, first.content, lead, "start", {}, T0)
    first.dispatcher.tick(T0)
    (sequences / "onboarding.yaml").write_text(V2)
    mailer = MemoryMailer()
    second: Runtime = make_runtime(
        mailer_factory=lambda: mailer, sequences_dir=sequences, templates_dir=templates
    )
    assert second.dispatcher.tick(T0 + timedelta(days=3)).sent == 1
    assert mailer.messages[0]["List-Id"].startswith("Onboarding <onboarding.")
