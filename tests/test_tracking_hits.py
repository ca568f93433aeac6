"""Opens and clicks as a reader makes them: answered at once, written down, then turned
into events, scores and labels by the worker a moment later."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from sqlalchemy import select

from nurture.app import create_app
from nurture.cli import cli
from nurture.models import Delivery, Event, TrackingHit
from nurture.runtime import Runtime
from nurture.scheduler import track
from nurture.spool import SpooledHit, micros

if TYPE_CHECKING:
    from tracked_email import Tracked

pytest_plugins = ["tracked_email"]

OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"


def settle(tracked: Tracked) -> str:
    """What the worker's `hits` job does: the web process has written its hits (its
    writer thread does it within 50 ms), then the worker processes them."""
    tracked.runtime.spool.flush()
    return track(tracked.runtime, tracked.later + timedelta(minutes=5))


def waiting_metric(tracked: Tracked) -> str:
    metrics = tracked.client.get("/metrics").get_data(as_text=True)
    [line] = [m for m in metrics.splitlines() if m.startswith("nurture_tracking_hits_waiting ")]
    return line.split()[1]


def test_a_click_redirects_at_once_and_scores_once_a_worker_has_processed_it(
    tracked: Tracked,
) -> None:
    before = tracked.score()
    with freeze_time(tracked.later):
        answer = tracked.click(1)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("https://www.planifia.example/guide?utm_source=")
    assert tracked.events() == [] and tracked.score() == before  # not yet

    tracked.runtime.spool.flush()
    [hit] = tracked.hits()
    assert (hit.kind, hit.link, hit.classification, hit.processed_at) == ("click", 1, None, None)
    assert waiting_metric(tracked) == "1"  # the backlog an operator sees

    assert track(tracked.runtime, tracked.later) == "1 processed, 0 failed"
    [event] = tracked.events()
    assert (event.name, event.classification, event.occurred_at) == (
        "email_clicked",
        "human",
        tracked.later,
    )
    assert event.properties["url"] == answer.headers["Location"]
    assert tracked.score() == before + 5  # "clicked an email"
    [hit] = tracked.hits()
    assert (hit.classification, hit.event_id) == ("human", event.id)
    assert hit.reasons == ["browser user agent"]
    assert waiting_metric(tracked) == "0"
    assert settle(tracked) == "0 processed, 0 failed"  # never twice


def test_the_worker_processes_hits_every_second(tracked: Tracked) -> None:
    from nurture.scheduler import make_scheduler

    scheduler = make_scheduler(tracked.runtime, blocking=False)  # not started: no thread
    job = scheduler.get_job("hits")
    assert job is not None and job.trigger.interval == timedelta(seconds=1)
    before = tracked.score()
    with freeze_time(tracked.later):
        tracked.click(1)
    tracked.runtime.spool.flush()
    job.func(*job.args)  # what the metronome calls
    assert tracked.score() == before + 5


def test_an_open_gets_the_image_and_becomes_an_event(tracked: Tracked) -> None:
    with freeze_time(tracked.later):
        answer = tracked.client.get(tracked.pixel, headers={"User-Agent": OUTLOOK})
    assert answer.status_code == 200 and answer.mimetype == "image/gif"
    assert settle(tracked) == "1 processed, 0 failed"
    [event] = tracked.events()
    assert (event.name, event.classification) == ("email_opened", "human")


def test_a_scanner_burst_relabels_the_clicks_just_before_it(tracked: Tracked) -> None:
    before = tracked.score()
    with freeze_time(tracked.later) as clock:
        tracked.click(1)
        settle(tracked)
        assert tracked.score() == before + 5  # looked like a reader
        clock.tick(0.5)
        tracked.click(2)
        clock.tick(0.5)
        tracked.click(3)  # three links within two seconds: a gateway walking the email
    settle(tracked)
    hits = tracked.hits()
    assert [h.classification for h in hits] == ["scanner"] * 3
    assert any(r.startswith("re-labelled: ") for r in hits[0].reasons)
    assert {e.classification for e in tracked.events()} == {"scanner"}
    assert tracked.score() == before  # the first click's points are gone again


def test_a_gateway_walk_processed_in_one_batch_scores_nothing(tracked: Tracked) -> None:
    before = tracked.score()
    with freeze_time(tracked.later) as clock:
        for index in range(4):
            assert tracked.click(index, method="HEAD", agent="Mozilla/5.0").status_code == 302
        clock.tick(0.3)
        tracked.client.get(tracked.honeypot, headers={"User-Agent": "Mozilla/5.0"})
        for index in range(4):
            tracked.click(index)
    assert settle(tracked) == "9 processed, 0 failed"
    assert {h.classification for h in tracked.hits()} == {"scanner"}
    assert tracked.score() == before


def test_a_bad_hit_is_set_aside_and_the_rest_of_its_batch_goes_on(tracked: Tracked) -> None:
    with freeze_time(tracked.later):
        tracked.click(0)
        tracked.runtime.spool.flush()
        with tracked.runtime.sessions.begin() as session:
            [hit] = session.scalars(select(TrackingHit))
            # A click with no link index (written by a faulty client of the table).
            session.add(
                TrackingHit(
                    delivery_id=hit.delivery_id, lead_id=hit.lead_id, kind="click", link=None,
                    method="GET", ip="127.0.0.1", user_agent="x", at=tracked.later,
                )
            )  # fmt: skip
        tracked.client.get(tracked.pixel, headers={"User-Agent": OUTLOOK})
    assert settle(tracked) == "2 processed, 1 failed"
    good, bad, pixel = tracked.hits()
    assert (good.classification, pixel.classification) == ("human", "human")
    assert bad.classification is None and bad.processed_at is not None
    assert bad.error is not None and "link_index" in bad.error
    assert [e.name for e in tracked.events()] == ["email_clicked", "email_opened"]
    assert settle(tracked) == "0 processed, 0 failed"  # not retried forever
    assert waiting_metric(tracked) == "0"


def test_the_pixel_and_the_redirect_answer_even_when_hits_cannot_be_written(
    tracked: Tracked, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    broken = Runtime(replace(tracked.runtime.settings, spool_dir=blocked))
    client = create_app(runtime=broken).test_client()
    with caplog.at_level(logging.ERROR):
        pixel = client.get(tracked.pixel, headers={"User-Agent": OUTLOOK})
        click = client.get(tracked.links[2], headers={"User-Agent": OUTLOOK})
    broken.close()
    assert pixel.status_code == 200 and pixel.mimetype == "image/gif"
    assert click.status_code == 302
    assert click.headers["Location"].startswith("https://www.planifia.example/pricing?")
    assert "could not record an open" in caplog.text
    assert "could not record a click" in caplog.text


def test_a_bad_token_or_link_index_gets_the_page_and_writes_nothing(tracked: Tracked) -> None:
    token = tracked.links[0].split("/")[2]
    for path in (f"/c/{token}/7", f"/c/{token[:-3]}/0", "/c/nothing/0"):
        answer = tracked.client.get(path)
        assert answer.status_code == 404 and "Location" not in answer.headers
    assert tracked.client.get("/o/nothing.gif").status_code == 200
    tracked.runtime.spool.flush()
    assert tracked.hits() == []


def test_a_hit_for_an_erased_delivery_is_dropped_not_retried(tracked: Tracked) -> None:
    with tracked.runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    spool = tracked.runtime.spool
    spool.append(delivery_id + 100, "open", None, None, "GET", "127.0.0.1", OUTLOOK, tracked.later)
    spool.append(delivery_id, "open", None, None, "GET", "127.0.0.1", OUTLOOK, tracked.later)
    spool.flush()
    assert [h.delivery_id for h in tracked.hits()] == [delivery_id]
    assert spool.path is not None and spool.path.stat().st_size == 0  # nothing left to retry


def test_nurture_tick_recovers_a_dead_process_spool_and_processes_it(
    tracked: Tracked, database_url: str, tmp_path: Path
) -> None:
    with tracked.runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    folder = tmp_path / "spool"
    folder.mkdir(exist_ok=True)
    # What a killed web worker leaves: its file, nobody holding its lock.
    at = micros(tracked.later)
    hit = SpooledHit("dead-1", delivery_id, "open", None, None, "GET", "10.0.0.1", OUTLOOK, at)
    (folder / "4242-dead.hits").write_bytes(hit.line())
    settings = tracked.runtime.settings
    env = {
        "NURTURE_DATABASE_URL": database_url,
        "NURTURE_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "NURTURE_SEQUENCES_DIR": str(settings.sequences_dir),
        "NURTURE_TEMPLATES_DIR": str(settings.templates_dir),
        "NURTURE_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NURTURE_SPOOL_DIR": str(folder),
    }
    result = CliRunner().invoke(cli, ["tick"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "hits: 1 processed, 0 failed, 1 recovered from the spool" in result.output
    assert not (folder / "4242-dead.hits").exists()
    with tracked.runtime.sessions() as session:
        [event] = session.scalars(select(Event).where(Event.name == "email_opened"))
        assert event.occurred_at == tracked.later
