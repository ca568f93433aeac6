"""Tracking under faults: a spool folder that cannot be written, a database that does not
answer. The reader is answered, and each hit is recorded, or counted where it could not
be: never answered as if recorded and dropped in silence."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import render_template
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError
from tcp_proxy import TcpProxy

from nurture.app import create_app
from nurture.runtime import Runtime
from nurture.spool import Spool

if TYPE_CHECKING:
    from tracked_email import Tracked

pytest_plugins = ["tracked_email"]

OUTLOOK = {"User-Agent": "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928)"}
NOT_RECORDED = 'nurture_tracking_click_retry_pages_total{reason="not_recorded"}'
LINKS_UNAVAILABLE = 'nurture_tracking_click_retry_pages_total{reason="links_unavailable"}'


def metric(client: Any, name: str) -> str:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(f"{name} "):
            return str(line.split()[-1])
    raise AssertionError(f"{name} is not in /metrics")


@dataclass
class Unwritable:
    folder: Path  # the spool folder, which cannot be written
    mend: Callable[[], None]  # what the operator does


@pytest.fixture(params=["file in the way", "read-only folder"])
def unwritable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Unwritable]:
    """Faults that need no privileges to make. As root a read-only folder is no fault
    (root writes there anyway), but a regular file where a folder should be still is."""
    if request.param == "file in the way":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("a file where the spool folder's parent should be")
        yield Unwritable(blocker / "spool", blocker.unlink)
        return
    if os.geteuid() == 0:
        pytest.skip("root writes in a read-only folder")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    yield Unwritable(folder, lambda: folder.chmod(0o700))
    folder.chmod(0o700)  # so that tmp_path can be removed


@dataclass
class Outage:
    """An app on its own runtime whose database can be cut off and given back."""

    runtime: Runtime
    client: Any
    cut: Callable[[], None]
    restore: Callable[[], None]


@pytest.fixture
def make_outage(tracked: Tracked, tmp_path: Path) -> Iterator[Callable[..., Outage]]:
    """PostgreSQL: the runtime reaches the server through a proxy that is cut (the server
    keeps running for everyone else). SQLite: the database file is moved away and a
    folder put in its place, so that no connection can open it."""
    made: list[tuple[Runtime, Callable[[], None], TcpProxy | None]] = []

    def build(spool_dir: Path | None = None) -> Outage:
        settings = tracked.runtime.settings
        url = make_url(settings.database_url)
        proxy = None
        if url.get_backend_name() == "postgresql":
            proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
            through = url.set(host="127.0.0.1", port=proxy.port)
            settings = replace(settings, database_url=through.render_as_string(False))
        runtime = Runtime(settings)
        # A writer that never writes by itself: the test says when (flush).
        runtime.spool = Spool(spool_dir or tmp_path / "outage-spool", runtime.engine, interval=3600)
        if proxy is not None:
            cut, restore = proxy.cut, proxy.restore
        else:
            cut, restore = _sqlite_outage(runtime, Path(url.database or ""))
        made.append((runtime, restore, proxy))
        return Outage(runtime, create_app(runtime=runtime).test_client(), cut, restore)

    yield build
    for runtime, restore, proxy in made:
        restore()
        runtime.close()
        if proxy is not None:
            proxy.close()


def _sqlite_outage(runtime: Runtime, path: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    aside = path.with_name(f"{path.name}.aside")

    def cut() -> None:
        runtime.engine.dispose()  # pooled connections keep the file open
        runtime.reader.dispose()
        path.rename(aside)
        path.mkdir()

    def restore() -> None:
        if aside.exists():
            path.rmdir()
            aside.rename(path)

    return cut, restore


def test_an_unwritable_spool_turns_health_red_is_counted_and_hits_go_to_the_database(
    tracked: Tracked, unwritable: Unwritable
) -> None:
    runtime = Runtime(replace(tracked.runtime.settings, spool_dir=unwritable.folder))
    client = create_app(runtime=runtime).test_client()
    try:
        health = client.get("/healthz")  # before any reader: a deploy shows it at once
        assert health.status_code == 503
        assert str(unwritable.folder) in health.get_json()["failing"]["spool"]

        pixel = client.get(tracked.pixel, headers=OUTLOOK)
        click = client.get(tracked.links[2], headers=OUTLOOK)
        assert pixel.status_code == 200 and pixel.mimetype == "image/gif"
        assert click.status_code == 302
        assert click.headers["Location"].startswith("https://www.planifia.example/pricing?")
        # Already in the database: no spool file, no writer involved.
        assert runtime.spool.path is None
        assert [(h.kind, h.link, h.url) for h in tracked.hits()] == [
            ("open", None, None),
            ("click", 2, click.headers["Location"]),
        ]
        assert client.get("/healthz").status_code == 503
        assert metric(client, "nurture_spool_unwritable") == "1"
        assert metric(client, "nurture_spool_write_failures_total") == "2"
        assert metric(client, "nurture_tracking_hits_direct_total") == "2"
        assert metric(client, "nurture_tracking_hits_dropped_total") == "0"

        unwritable.mend()
        assert client.get("/healthz").get_json() == {"status": "ok"}  # by itself
        assert metric(client, "nurture_spool_unwritable") == "0"
        client.get(tracked.pixel, headers=OUTLOOK)
        assert runtime.spool.path is not None  # the spool again
        assert runtime.spool.flush() == 1
        assert len(tracked.hits()) == 3
    finally:
        runtime.close()


def test_a_hit_neither_the_spool_nor_the_database_takes_is_refused_or_counted(
    tracked: Tracked, make_outage: Callable[..., Outage], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder's parent should be")
    outage = make_outage(spool_dir=blocker / "spool")
    assert outage.client.get(tracked.links[1], headers=OUTLOOK).status_code == 302
    assert len(tracked.hits()) == 1  # straight to the database; its links now cached

    outage.cut()
    try:
        pixel = outage.client.get(tracked.pixel, headers=OUTLOOK)
        click = outage.client.get(tracked.links[1], headers=OUTLOOK)
        health = outage.client.get("/healthz")
    finally:
        outage.restore()
    # The pixel answers the image whatever happens; the open it could not record is
    # counted. The click knew where to go, but going there would lose the click: the
    # page that comes back by itself records it once the database answers again.
    assert pixel.status_code == 200 and pixel.mimetype == "image/gif"
    assert click.status_code == 503 and "Location" not in click.headers
    assert click.headers["Retry-After"] == "5"
    assert health.status_code == 503
    assert set(health.get_json()["failing"]) == {"spool", "database"}
    assert len(tracked.hits()) == 1
    assert metric(outage.client, "nurture_tracking_hits_dropped_total") == "1"
    assert metric(outage.client, NOT_RECORDED) == "1"
    assert metric(outage.client, "nurture_spool_write_failures_total") == "3"
    assert metric(outage.client, "nurture_tracking_hits_direct_total") == "1"

    again = outage.client.get(tracked.links[1], headers=OUTLOOK)  # the page's refresh
    assert again.status_code == 302
    assert len(tracked.hits()) == 2


def test_a_click_during_a_database_outage_reaches_its_link_from_any_process(
    tracked: Tracked, make_outage: Callable[..., Outage]
) -> None:
    """A link carries its target: no process needs the database to send a reader on."""
    outage = make_outage()
    before = outage.client.get(tracked.links[1], headers=OUTLOOK)
    assert before.status_code == 302
    assert outage.runtime.spool.flush() == 1
    other = create_app(runtime=outage.runtime).test_client()  # another web process

    outage.cut()
    try:
        clicks = [other.get(path, headers=OUTLOOK) for path in tracked.links]
        with pytest.raises(SQLAlchemyError):
            outage.runtime.spool.flush()  # the hits wait in the spool file
    finally:
        outage.restore()

    assert [c.status_code for c in clicks] == [302] * 4
    assert clicks[1].headers["Location"] == before.headers["Location"]
    assert clicks[2].headers["Location"].startswith("https://www.planifia.example/pricing?")
    assert metric(other, LINKS_UNAVAILABLE) == "0"
    assert outage.runtime.spool.flush() == 4  # durable while the database was away
    assert sorted((h.kind, h.link) for h in tracked.hits()) == [("click", 0)] + [
        ("click", 1)
    ] * 2 + [("click", 2), ("click", 3)]


def test_an_older_click_link_during_a_database_outage_reaches_its_link_or_a_page_that_retries(
    tracked: Tracked, make_outage: Callable[..., Outage]
) -> None:
    """Links sent before they carried their target are looked up: a process that has
    read them goes on from its cache, another answers a page that retries by itself."""
    outage = make_outage()
    links = [tracked.stored_link(index) for index in range(4)]
    before = outage.client.get(links[1], headers=OUTLOOK)
    assert before.status_code == 302
    assert outage.runtime.spool.flush() == 1
    # Another web process: it has not read this delivery's links yet.
    other = create_app(runtime=outage.runtime).test_client()

    outage.cut()
    try:
        # This process read the delivery's links for the first click: all of them.
        same = outage.client.get(links[1], headers=OUTLOOK)
        sibling = outage.client.get(links[2], headers=OUTLOOK)
        page = other.get(links[3], headers=OUTLOOK)
        health = other.get("/healthz")
        with pytest.raises(SQLAlchemyError):
            outage.runtime.spool.flush()  # the hits wait in the spool file
    finally:
        outage.restore()

    assert same.status_code == 302 and same.headers["Location"] == before.headers["Location"]
    assert sibling.status_code == 302
    assert sibling.headers["Location"].startswith("https://www.planifia.example/pricing?")

    assert page.status_code == 503 and "Location" not in page.headers
    assert page.headers["Retry-After"] == "5"
    assert page.headers["Cache-Control"].startswith("no-store")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    body = page.get_data(as_text=True)
    assert page.mimetype == "text/html"
    assert '<meta http-equiv="refresh" content="5">' in body
    assert f'href="{links[3]}"' in body
    assert "<script" not in body.lower()
    assert health.status_code == 503 and "database" in health.get_json()["failing"]

    assert outage.runtime.spool.flush() == 2  # durable while the database was away
    assert sorted((h.kind, h.link) for h in tracked.hits()) == [("click", 1)] * 2 + [("click", 2)]
    retried = other.get(links[3], headers=OUTLOOK)  # the page's refresh
    assert retried.status_code == 302
    assert metric(other, LINKS_UNAVAILABLE) == "1"

    with other.application.test_request_context():
        hostile = render_template("click_retry.html", seconds=5, again='/c/"><script>x</script>')
    assert "<script>" not in hostile and "&#34;&gt;&lt;script&gt;" in hostile
