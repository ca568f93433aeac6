"""Opens and clicks as a reader makes them: answered at once, written down, then turned
into events, scores and labels by the worker a moment later."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from sqlalchemy import select

from nurture.app import create_app
from nurture.cli import cli
from nurture.core.intake import parse_lead
from nurture.enrollment import on_event
from nurture.hits import process_batch
from nurture.leads import upsert_lead
from nurture.models import Delivery, Event, Lead, TrackingHit
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


def test_links_sent_before_they_carried_their_target_lead_to_the_same_place(
    tracked: Tracked,
) -> None:
    """Emails already in inboxes keep their `/c/<token>/<index>` links: looked up, they
    go where the new links go, and are recorded the same way."""
    with freeze_time(tracked.later):
        carried = [tracked.client.get(path) for path in tracked.links]
        older = [tracked.client.get(tracked.stored_link(i)) for i in range(len(tracked.links))]
    assert [a.status_code for a in carried + older] == [302] * 8
    assert [a.headers["Location"] for a in carried] == [a.headers["Location"] for a in older]
    assert "utm_content=" in carried[1].headers["Location"]
    tracked.runtime.spool.flush()
    recorded = Counter((h.link, h.url) for h in tracked.hits())  # one batch: ids in any order
    assert sorted(recorded.values()) == [2] * 4  # each link once by each kind of link
    assert sorted(link for link, _ in recorded) == [0, 1, 2, 3]


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
    assert tracked.engagement()["opened_at"] == tracked.later


def test_a_scanner_burst_relabels_the_clicks_just_before_it(tracked: Tracked) -> None:
    before = tracked.score()
    with freeze_time(tracked.later) as clock:
        tracked.click(1)
        settle(tracked)
        assert tracked.score() == before + 5  # looked like a reader
        assert tracked.engagement()["clicked_at"] == tracked.later
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
    # The sequence report no longer counts the email as clicked by a human.
    assert tracked.engagement() == {
        "opened_at": None, "clicked_at": None, "machine_opened_at": None,
        "scanned_at": tracked.later,
    }  # fmt: skip


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


def test_two_workers_processing_the_same_leads_in_opposite_orders_do_not_deadlock(
    tracked: Tracked, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches, each with a click of lead A and one of lead B, in opposite orders,
    processed at the same time by two workers. Each click updates its lead's score: a
    batch that locked its leads one by one, as it went, would hold A and wait for B
    while the other holds B and waits for A, and PostgreSQL would roll one back (a
    batch of 500 lost its second of waiting). The batch locks them all up front, in
    id order: the second waits for the first, and both go through."""
    from tracked_email import CHROME, LATER, SENT

    import nurture.hits as hits_module

    runtime = tracked.runtime
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("row locks: SQLite has one writer at a time")
    with runtime.sessions.begin() as session:
        lead, _, _ = upsert_lead(session, parse_lead({"email": "second@example.com"}), SENT)
        on_event(session, runtime.content, lead, "start", {}, SENT)
    assert runtime.dispatcher.tick(SENT).sent == 1
    with runtime.sessions() as session:
        first, second = session.scalars(select(Delivery.id).order_by(Delivery.lead_id)).all()
    # Ids in this order: batch one takes A then B, batch two B then A.
    for minutes, delivery_id in enumerate((first, second, second, first)):
        at = tracked.later + timedelta(minutes=10 * minutes)
        runtime.spool.append(delivery_id, "click", 1, "https://x.example/", "GET", "", CHROME, at)
        runtime.spool.flush()

    # Each worker, after its first hit, waits (a while, at most) for the other to have
    # done its first: the interleaving that deadlocks batches that lock as they go.
    firsts = {"one": threading.Event(), "two": threading.Event()}
    real = hits_module._process
    local = threading.local()

    def process_then_wait(*args: Any) -> None:
        real(*args)
        if not getattr(local, "waited", False):
            local.waited = True
            firsts[local.name].set()
            other = "two" if local.name == "one" else "one"
            firsts[other].wait(timeout=3)

    monkeypatch.setattr(hits_module, "_process", process_then_wait)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        local.name = name
        try:
            process_batch(runtime.sessions, runtime.content, runtime.settings, LATER, batch=2)
        except BaseException as error:
            errors.append(error)

    one = threading.Thread(target=worker, args=("one",))
    one.start()
    assert firsts["one"].wait(timeout=10)  # batch one holds its hits, and A
    two = threading.Thread(target=worker, args=("two",))
    two.start()
    one.join(timeout=30)
    two.join(timeout=30)
    assert errors == []
    with runtime.sessions() as session:
        scores = session.scalars(select(Lead.score).order_by(Lead.id)).all()
    assert [h.processed_at is not None and h.error is None for h in tracked.hits()] == [True] * 4
    assert scores[0] == scores[1] and scores[0] > 0  # two clicks each, none lost
