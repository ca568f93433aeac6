"""Broadcasts: an occurrence starts set-based once, each lead gets it at its own local
time through the real dispatcher and a real SMTP server, under the frequency cap it
shares with the sequences; the dry run counts who it would reach."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from nurture.broadcasts import broadcasts_of, dry_run, start
from nurture.cli import cli
from nurture.config import FrequencyCap
from nurture.core.intake import parse_lead
from nurture.enrollment import on_event, unsubscribe
from nurture.leads import find_lead, upsert_lead
from nurture.models import BroadcastOccurrence, DecisionLog, Enrollment, Lead
from nurture.runtime import Runtime
from nurture.scheduler import find_triggered
from nurture.suppression import list_key

pytest_plugins = ["smtp_server"]

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

NEWS = """\
id: news
name: Product news
priority: 50
locales: [en]
entry:
  triggers:
    - event: {name: news}
steps:
  - id: update
    email: {template: example, kind: product_update, subject: "News"}
"""

DECEMBER = """\
id: december
name: December newsletter
priority: 10
segment:
  stage: [lead, mql]
  tags: newsletter
send: {at: "2026-12-10 09:00"}
send_window: {days: mon-fri, hours: "08:00-18:00"}
email: {template: example, kind: newsletter, subject: "December"}
"""

MONTHLY = """\
id: monthly
name: Monthly digest
segment: {tags: digest}
send: {every: month, day: 1, at: "09:00"}
email: {template: example, kind: newsletter, subject: "Digest"}
"""

# Thursday 10 December 2026, 09:00: Tokyo first (00:00 UTC), then Paris, then New York.
TOKYO_9 = datetime(2026, 12, 10, 0, 0, tzinfo=UTC)
PARIS_9 = datetime(2026, 12, 10, 8, 0, tzinfo=UTC)
NEW_YORK_9 = datetime(2026, 12, 10, 14, 0, tzinfo=UTC)


@pytest.fixture
def runtime(make_runtime: Any, content_dirs: tuple[Path, Path], smtp_server: Any) -> Runtime:
    sequences, templates = content_dirs
    (sequences / "news.yaml").write_text(NEWS)
    (sequences / "broadcasts").mkdir()
    (sequences / "broadcasts" / "december.yaml").write_text(DECEMBER)
    (sequences / "broadcasts" / "monthly.yaml").write_text(MONTHLY)
    made: Runtime = make_runtime(
        smtp_url=smtp_server.url,
        sequences_dir=sequences,
        broadcasts_dir=sequences / "broadcasts",
        templates_dir=templates,
        frequency_cap=FrequencyCap(emails=1, days=7),
    )
    made.smtp = smtp_server  # type: ignore[attr-defined]
    return made


def add(runtime: Runtime, email: str, now: datetime, **values: Any) -> None:
    values.setdefault("tags", ["newsletter"])
    with runtime.sessions.begin() as session:
        upsert_lead(session, parse_lead({"email": email, **values}), now)


def received(runtime: Runtime) -> list[tuple[str, str]]:
    smtp = runtime.smtp  # type: ignore[attr-defined]
    return [(m.recipients[0], str(m.message["Subject"])) for m in smtp.received]


def three_zones_and_those_kept_out(runtime: Runtime, now: datetime) -> None:
    add(runtime, "aiko@example.jp", now, timezone="Asia/Tokyo")
    add(runtime, "claire@example.fr", now, country="FR")  # the zone of its country
    add(runtime, "dana@example.com", now, timezone="America/New_York", stage="mql")
    add(runtime, "capped@example.fr", now, country="FR")
    add(runtime, "gone@example.fr", now, country="FR")
    add(runtime, "bounced@example.fr", now, country="FR")
    add(runtime, "refused@example.fr", now, country="FR", consent={"granted": False})
    add(runtime, "customer@example.fr", now, country="FR", stage="customer")  # not in segment
    add(runtime, "untagged@example.fr", now, country="FR", tags=["other"])
    with runtime.sessions.begin() as session:
        gone = find_lead(session, "gone@example.fr")
        assert gone is not None
        unsubscribe(session, list_key(runtime.settings), gone, now)
        session.execute(
            update(Lead).where(Lead.email == "bounced@example.fr").values(bounced_at=now)
        )


def test_a_broadcast_reaches_three_time_zones_at_their_own_local_time_under_a_shared_cap(
    runtime: Runtime,
) -> None:
    before = datetime(2026, 12, 9, 9, 0, tzinfo=UTC)
    three_zones_and_those_kept_out(runtime, before)
    # The capped lead had a sequence email the day before: the cap is one a week.
    with runtime.sessions.begin() as session:
        capped = find_lead(session, "capped@example.fr")
        assert capped is not None
        on_event(session, runtime.content, capped, "news", {}, before)
    runtime.dispatcher.tick(before)
    assert received(runtime) == [("capped@example.fr", "News")]

    # Not yet: the first zone reaches 09:00 on the 10th at 19:00 UTC on the 9th.
    assert "broadcasts" not in find_triggered(runtime, datetime(2026, 12, 9, 18, 0, tzinfo=UTC))
    start_at = datetime(2026, 12, 9, 20, 0, tzinfo=UTC)
    assert find_triggered(runtime, start_at).endswith(", 4 by 1 broadcasts")
    runtime.dispatcher.tick(start_at)
    assert len(received(runtime)) == 1  # due at each one's 09:00, not now

    runtime.dispatcher.tick(TOKYO_9)
    assert received(runtime)[1:] == [("aiko@example.jp", "December")]
    runtime.dispatcher.tick(PARIS_9)
    assert received(runtime)[2:] == [("claire@example.fr", "December")]
    with runtime.sessions() as session:
        reasons = session.scalars(
            select(DecisionLog.reason)
            .join(Lead, Lead.id == DecisionLog.lead_id)
            .where(Lead.email == "capped@example.fr", DecisionLog.kind == "deferred")
        ).all()
    assert any(
        "frequency cap of 1 emails in 7 days reached (emails from news)" in r for r in reasons
    )
    runtime.dispatcher.tick(NEW_YORK_9 - HOUR)
    assert len(received(runtime)) == 3
    runtime.dispatcher.tick(NEW_YORK_9)
    assert received(runtime)[3:] == [("dana@example.com", "December")]

    # Run again, and start the same occurrence a second time: nothing twice.
    find_triggered(runtime, NEW_YORK_9 + HOUR)
    december = broadcasts_of(runtime.settings, runtime.content).broadcasts["december"]
    with runtime.sessions.begin() as session:
        assert start(session, december, datetime(2026, 12, 10, 9, 0), NEW_YORK_9 + HOUR) is None
    runtime.dispatcher.tick(NEW_YORK_9 + HOUR)
    assert len(received(runtime)) == 4

    # The cap frees a week after the news email: 10:00 Paris on Wednesday the 16th.
    runtime.dispatcher.tick(before + 7 * DAY - HOUR)
    assert len(received(runtime)) == 4
    runtime.dispatcher.tick(before + 7 * DAY)
    assert received(runtime)[4:] == [("capped@example.fr", "December")]
    runtime.dispatcher.tick(before + 30 * DAY)
    sent_to = sorted(to for to, subject in received(runtime) if subject == "December")
    assert sent_to == [
        "aiko@example.jp",
        "capped@example.fr",
        "claire@example.fr",
        "dana@example.com",
    ]


def test_a_higher_priority_sequence_email_takes_the_last_slot_first(runtime: Runtime) -> None:
    add(runtime, "both@example.fr", PARIS_9 - DAY, country="FR")
    with runtime.sessions.begin() as session:
        december = broadcasts_of(runtime.settings, runtime.content).broadcasts["december"]
        started = start(session, december, datetime(2026, 12, 10, 9, 0), PARIS_9 - 10 * HOUR)
        assert started is not None and started.recipients == 1
        lead = find_lead(session, "both@example.fr")
        assert lead is not None
        on_event(session, runtime.content, lead, "news", {}, PARIS_9 - HOUR)
    runtime.dispatcher.tick(PARIS_9)  # both due: the news (priority 50) goes, one a week
    assert received(runtime) == [("both@example.fr", "News")]


def test_two_workers_starting_the_same_occurrence_enrol_each_lead_once(
    runtime: Runtime,
) -> None:
    for number in range(5):
        add(runtime, f"lead{number}@example.fr", TOKYO_9 - DAY, country="FR")
    december = broadcasts_of(runtime.settings, runtime.content).broadcasts["december"]
    wall = datetime(2026, 12, 10, 9, 0)
    first = runtime.sessions()
    first.begin()
    assert start(first, december, wall, TOKYO_9 - HOUR) is not None
    results: list[object] = []

    def second() -> None:
        with runtime.sessions.begin() as session:
            results.append(start(session, december, wall, TOKYO_9 - HOUR))

    worker = threading.Thread(target=second)
    if runtime.engine.dialect.name == "postgresql":
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # held by the occurrence's unique key
        first.commit()
        worker.join(10)
    else:
        first.commit()  # SQLite has one writer: the second start comes after
        worker.start()
        worker.join(10)
    first.close()
    assert results == [None]
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 5
        assert session.scalar(select(func.count()).select_from(BroadcastOccurrence)) == 1


def test_a_recurring_broadcast_reaches_each_lead_once_per_occurrence(runtime: Runtime) -> None:
    first = datetime(2027, 1, 1, 8, 0, tzinfo=UTC)  # 09:00 in Paris
    add(runtime, "reader@example.fr", first - 5 * DAY, country="FR", tags=["digest"])
    for moment in (first - 10 * HOUR, first, first + HOUR):
        find_triggered(runtime, moment)
        runtime.dispatcher.tick(moment)
    assert received(runtime) == [("reader@example.fr", "Digest")]
    february = datetime(2027, 2, 1, 8, 0, tzinfo=UTC)
    for moment in (february - 10 * HOUR, february, february + HOUR):
        find_triggered(runtime, moment)
        runtime.dispatcher.tick(moment)
    assert received(runtime) == [("reader@example.fr", "Digest")] * 2
    with runtime.sessions() as session:
        cycles = session.scalars(select(Enrollment.cycle).order_by(Enrollment.cycle)).all()
    assert cycles == [1, 2]


def test_an_occurrence_missed_for_days_is_not_sent_late(runtime: Runtime) -> None:
    add(runtime, "reader@example.fr", TOKYO_9 - DAY, country="FR")
    assert "broadcasts" not in find_triggered(runtime, NEW_YORK_9 + 3 * DAY)
    runtime.dispatcher.tick(NEW_YORK_9 + 3 * DAY)
    assert received(runtime) == []


def test_the_dry_run_counts_recipients_and_who_is_kept_out_and_why(runtime: Runtime) -> None:
    now = datetime(2026, 12, 9, 9, 0, tzinfo=UTC)
    three_zones_and_those_kept_out(runtime, now)
    with runtime.sessions.begin() as session:
        capped = find_lead(session, "capped@example.fr")
        assert capped is not None
        on_event(session, runtime.content, capped, "news", {}, now)
    runtime.dispatcher.tick(now)
    december = broadcasts_of(runtime.settings, runtime.content).broadcasts["december"]
    wall = datetime(2026, 12, 10, 9, 0)
    with runtime.sessions() as session:
        count = dry_run(session, december, wall, now + HOUR, runtime.settings)
    assert (count.segment, count.recipients, count.at_cap) == (7, 4, 1)
    assert dict(count.kept_out) == {
        "unsubscribed": 1,
        "bounced": 1,
        "consent withdrawn": 1,
    }
    with runtime.sessions.begin() as session:
        start(session, december, wall, now + 11 * HOUR)
    with runtime.sessions() as session:
        again = dry_run(session, december, wall, now + 12 * HOUR, runtime.settings)
    assert again.recipients == 0
    assert again.kept_out["already enrolled for this occurrence"] == 4


def test_the_cli_lists_broadcasts_and_counts_a_dry_run(runtime: Runtime) -> None:
    add(runtime, "claire@example.fr", TOKYO_9 - DAY, country="FR")
    settings = runtime.settings
    environ = {
        "NURTURE_DATABASE_URL": settings.database_url,
        "NURTURE_SECRET_KEY": str(settings.secret_key),
        "NURTURE_SEQUENCES_DIR": str(settings.sequences_dir),
        "NURTURE_TEMPLATES_DIR": str(settings.templates_dir),
    }
    runner = CliRunner()
    listed = runner.invoke(cli, ["broadcasts", "list"], env=environ)
    assert listed.exit_code == 0, listed.output
    assert "december: once, 2026-12-10 09:00 local time, priority 10" in listed.output
    assert "monthly: every month on day 1 at 09:00 local time" in listed.output
    counted = runner.invoke(
        cli,
        ["broadcasts", "dry-run", "december", "--occurrence", "2026-12-10 09:00"],
        env=environ,
    )
    assert counted.exit_code == 0, counted.output
    assert "recipients: 1" in counted.output
    unknown = runner.invoke(cli, ["broadcasts", "dry-run", "nope"], env=environ)
    assert unknown.exit_code == 1
    assert "unknown broadcast 'nope'; the broadcasts: december, monthly" in unknown.output


def test_with_consent_required_a_lead_without_consent_gets_no_broadcast(
    make_runtime: Any, content_dirs: tuple[Path, Path], smtp_server: Any
) -> None:
    sequences, templates = content_dirs
    (sequences / "broadcasts").mkdir()
    (sequences / "broadcasts" / "december.yaml").write_text(DECEMBER)
    runtime: Runtime = make_runtime(
        smtp_url=smtp_server.url,
        sequences_dir=sequences,
        broadcasts_dir=sequences / "broadcasts",
        templates_dir=templates,
        consent_required=True,
    )
    runtime.smtp = smtp_server  # type: ignore[attr-defined]
    add(runtime, "agreed@example.fr", TOKYO_9 - DAY, country="FR", consent={"granted": True})
    add(runtime, "silent@example.fr", TOKYO_9 - DAY, country="FR")
    december = broadcasts_of(runtime.settings, runtime.content).broadcasts["december"]
    with runtime.sessions() as session:
        count = dry_run(session, december, datetime(2026, 12, 10, 9, 0), TOKYO_9, runtime.settings)
    assert (count.recipients, dict(count.kept_out)) == (1, {"no consent": 1})
    find_triggered(runtime, TOKYO_9 - 5 * HOUR)
    runtime.dispatcher.tick(PARIS_9)
    assert received(runtime) == [("agreed@example.fr", "December")]


def test_validate_reports_a_bad_broadcast_file_with_its_line(runtime: Runtime) -> None:
    folder = runtime.settings.broadcasts_dir
    (folder / "typo.yaml").write_text(
        DECEMBER.replace("id: december", "id: typo").replace(
            "kind: newsletter", "kind: newsletters"
        )
    )
    settings = runtime.settings
    environ = {
        "NURTURE_DATABASE_URL": settings.database_url,
        "NURTURE_SECRET_KEY": str(settings.secret_key),
        "NURTURE_SEQUENCES_DIR": str(settings.sequences_dir),
        "NURTURE_TEMPLATES_DIR": str(settings.templates_dir),
    }
    result = CliRunner().invoke(cli, ["validate"], env=environ)
    assert result.exit_code == 1
    assert f"ok  {folder / 'monthly.yaml'}: broadcast monthly" in result.output
    assert f'{folder / "typo.yaml"}:9: email.kind: unknown content kind "newsletters"' in (
        result.output
    )
    one = CliRunner().invoke(cli, ["validate", str(folder / "typo.yaml")], env=environ)
    assert one.exit_code == 1
    assert "email.kind" in one.output and "missing required key" not in one.output


def test_a_disabled_broadcast_starts_nothing(runtime: Runtime) -> None:
    folder = runtime.settings.broadcasts_dir
    (folder / "december.yaml").write_text(DECEMBER + "enabled: false\n")
    add(runtime, "claire@example.fr", TOKYO_9 - DAY, country="FR")
    assert "broadcasts" not in find_triggered(runtime, TOKYO_9 - HOUR)
    runtime.dispatcher.tick(PARIS_9)
    assert received(runtime) == []
