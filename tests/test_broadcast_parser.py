"""The broadcast file language: what it reads, what it refuses (file:line and field
path), and when each occurrence may start; pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nurture.core.broadcast_parser import load_broadcasts, parse_broadcast
from nurture.core.broadcasts import journey, local_instant, next_wall_time, startable
from nurture.core.sequence_parser import parse_sequence

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
id: december
name: December newsletter
priority: 10
locales: [en, fr]
timezone: Europe/Paris
segment:
  country: [FR, BE]
  stage: [lead, mql]
  tags: newsletter
  score: {min: 20}
  active_within: 12 weeks
send: {at: "2026-12-10 09:00"}
send_window: {days: mon-fri, hours: "08:00-18:00"}
email: {template: newsletter, kind: newsletter, subject: "December at Planifia"}
"""


def test_a_broadcast_file_is_read_into_a_segment_a_schedule_and_one_email() -> None:
    result = parse_broadcast(GOOD, "broadcasts/december.yaml")
    assert result.problems == ()
    broadcast = result.broadcast
    assert broadcast is not None
    assert broadcast.segment.audience.countries == frozenset({"FR", "BE"})
    assert broadcast.segment.audience.stages == frozenset({"lead", "mql"})
    assert broadcast.segment.tags == frozenset({"newsletter"})
    assert broadcast.segment.score is not None and broadcast.segment.score.min == 20
    assert broadcast.segment.active_within_days == 84
    assert str(broadcast.schedule) == "once, 2026-12-10 09:00 local time"
    assert (broadcast.priority, broadcast.locales) == (10, ("en", "fr"))
    # Sent as a one-email sequence that the sequence parser reads back.
    sequence = parse_sequence(journey(broadcast), broadcast.path).sequence
    assert sequence is not None
    assert (sequence.id, sequence.priority, sequence.timezone) == (
        "broadcast-december",
        10,
        "Europe/Paris",
    )
    assert sequence.window == broadcast.window
    [email] = sequence.email_steps()
    assert (email.template, email.subject) == ("newsletter", "December at Planifia")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("send: {at: \"2026-12-10 09:00\"}", "send: {at: tomorrow}"),
         'x.yaml:12: send.at: expected a date and a local time such as "2026-12-10 09:00"'),
        (("send: {at: \"2026-12-10 09:00\"}", "send: {every: month, at: \"09:00\"}"),
         "x.yaml:12: send: every month needs a day"),
        (("send: {at: \"2026-12-10 09:00\"}", "send: {every: week, day: someday, at: \"9:00\"}"),
         "x.yaml:12: send.day: expected a day of the week such as mon"),
        (("send: {at: \"2026-12-10 09:00\"}", "send: {every: year, at: \"09:00\"}"),
         'x.yaml:12: send.every: unknown period "year"; expected one of day, week, month'),
        (("send: {at: \"2026-12-10 09:00\"}", "send: {every: day, at: \"24:00\"}"),
         'x.yaml:12: send.at: expected a local time such as "09:00" (every day)'),
        (("  tags: newsletter", "  tag: newsletter"),
         "x.yaml:9: segment.tag: unknown key; allowed keys here: country,"),
        (("  stage: [lead, mql]", "  stage: [lead, hot]"),
         'x.yaml:8: segment.stage: unknown stage "hot"'),
        (("  active_within: 12 weeks", "  active_within: 2 hours"),
         'x.yaml:11: segment.active_within: expected days or weeks such as "90 days"'),
        (("kind: newsletter", "kind: flyer"),
         'x.yaml:14: email.kind: unknown content kind "flyer"'),
        (("priority: 10", "priority: high"), "x.yaml:3: priority: expected a whole number"),
        (("timezone: Europe/Paris", "timezone: Mars/Olympus"),
         'x.yaml:5: timezone: unknown time zone "Mars/Olympus"'),
        (("hours: \"08:00-18:00\"", "hours: \"18:00-08:00\""), "x.yaml:13: send_window.hours:"),
    ],
)  # fmt: skip
def test_a_mistake_is_reported_with_its_line_and_field(
    change: tuple[str, str], problem: str
) -> None:
    old, new = change
    assert old in GOOD
    result = parse_broadcast(GOOD.replace(old, new), "x.yaml")
    assert result.broadcast is None
    assert any(str(p).startswith(problem) for p in result.problems), result.problems


def test_a_broadcast_may_not_take_the_name_of_a_sequence(tmp_path: Path) -> None:
    (tmp_path / "december.yaml").write_text(GOOD)
    (tmp_path / "copy.yaml").write_text(GOOD)
    loaded = load_broadcasts(tmp_path, sequence_ids=frozenset({"broadcast-december"}))
    assert loaded.broadcasts == {}
    messages = sorted(p.message for p in loaded.problems)
    assert messages[0].startswith('id: "december" is already the id of') or messages[1].startswith(
        'id: it is sent as the sequence "broadcast-december"'
    )


def test_the_shipped_broadcasts_parse() -> None:
    loaded = load_broadcasts(ROOT / "sequences" / "broadcasts")
    assert loaded.problems == ()
    assert "planifia-live-invitation" in loaded.broadcasts


def test_an_occurrence_starts_when_the_first_zone_reaches_it_and_not_days_late() -> None:
    schedule = parse_broadcast(GOOD, "x.yaml").broadcast.schedule  # type: ignore[union-attr]
    wall = datetime(2026, 12, 10, 9, 0)
    assert startable(schedule, datetime(2026, 12, 9, 18, 59, tzinfo=UTC)) == []
    assert startable(schedule, datetime(2026, 12, 9, 19, 0, tzinfo=UTC)) == [wall]
    assert startable(schedule, datetime(2026, 12, 11, 21, 0, tzinfo=UTC)) == [wall]  # late
    assert startable(schedule, datetime(2026, 12, 11, 21, 1, tzinfo=UTC)) == []  # too late
    assert next_wall_time(schedule, datetime(2026, 12, 1, tzinfo=UTC)) == wall


def test_a_monthly_occurrence_is_each_leads_local_time_across_a_clock_change() -> None:
    monthly = GOOD.replace(
        'send: {at: "2026-12-10 09:00"}', 'send: {every: month, day: 28, at: "09:00"}'
    )
    schedule = parse_broadcast(monthly, "x.yaml").broadcast.schedule  # type: ignore[union-attr]
    march = datetime(2027, 3, 28, 9, 0)  # Paris moves to summer time at 02:00 that day
    assert startable(schedule, datetime(2027, 3, 28, 0, 0, tzinfo=UTC)) == [march]
    paris = local_instant(march, ZoneInfo("Europe/Paris"))
    assert paris == datetime(2027, 3, 28, 7, 0, tzinfo=UTC)
    assert local_instant(march, ZoneInfo("America/New_York")) == datetime(
        2027, 3, 28, 13, 0, tzinfo=UTC
    )
