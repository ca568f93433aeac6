"""Security headers on every page a lead or a browser sees, and a database file only its
owner can read."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from nurture.app import create_app
from nurture.db import upgrade
from nurture.web.headers import PAGE_POLICY

pytest_plugins = ["tracked_email"]


def pages(tracked: Any) -> dict[str, Any]:
    """Every kind of HTML page, as a browser gets it."""
    client = tracked.client
    with tracked.runtime.sessions() as session:
        from sqlalchemy import select

        from nurture.models import Delivery
        from nurture.tracking import tokens_for

        delivery_id = session.scalars(select(Delivery.id)).one()
    unsubscribe = f"/u/{tokens_for(tracked.runtime.secret_key).unsubscribe(delivery_id)}"
    return {
        "unsubscribe, confirm": client.get(unsubscribe),
        "unsubscribe, done": client.post(unsubscribe),
        "unsubscribe, bad link": client.get("/u/not-a-token"),
        "click, bad link": client.get("/c/not-a-token"),
        "website form, unknown": client.post("/f/no-such-form", data={"email": "a@b.example"}),
        "no such page": client.get("/no/such/page"),
    }


def test_every_page_forbids_scripts_and_framing(tracked: Any) -> None:
    for name, page in pages(tracked).items():
        assert page.mimetype == "text/html", name
        policy = page.headers["Content-Security-Policy"]
        assert "script-src" not in policy and "default-src 'none'" in policy, name
        assert "frame-ancestors 'none'" in policy, name
        assert page.headers["X-Frame-Options"] == "DENY", name
        assert page.headers["X-Content-Type-Options"] == "nosniff", name
        assert page.headers["Referrer-Policy"] == "no-referrer", name
        assert "<script" not in page.get_data(as_text=True).lower(), name


def test_the_click_retry_page_keeps_its_stricter_policy_and_forbids_framing(
    tracked: Any, monkeypatch: Any
) -> None:
    import nurture.web.tracking as tracking

    def unavailable(*args: Any) -> None:
        raise SQLAlchemyError("the database does not answer")

    monkeypatch.setattr(tracking, "_links", unavailable)
    page = tracked.client.get(tracked.stored_link(1))
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == tracking.RETRY_PAGE_POLICY
    assert "img-src" not in tracking.RETRY_PAGE_POLICY  # stricter: no image either
    assert "frame-ancestors 'none'" in tracking.RETRY_PAGE_POLICY
    assert page.headers["X-Frame-Options"] == "DENY"


def test_the_pages_policy_lets_nothing_load_but_their_own_style() -> None:
    directives = dict(part.strip().split(" ", 1) for part in PAGE_POLICY.split(";"))
    assert directives["default-src"] == "'none'"  # scripts, frames, fonts, connections
    assert directives["style-src"] == "'unsafe-inline'"  # the one <style> of _page.html
    assert directives["form-action"] == "'self'"


def test_the_json_api_and_the_pixel_are_not_sniffed(tracked: Any) -> None:
    for answer in (tracked.client.get("/api/v1/leads/x"), tracked.client.get(tracked.pixel)):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    pixel = tracked.client.get(tracked.pixel)
    assert pixel.mimetype == "image/gif" and "Content-Security-Policy" not in pixel.headers


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "private" / "nurture.sqlite"
    upgrade(f"sqlite:///{path}")
    app = create_app(
        {"database_url": f"sqlite:///{path}", "secret_key": "headers-test-secret-0123456789"}
    )
    assert app.test_client().get("/healthz").status_code in (200, 503)
    for file in [path, *path.parent.glob("nurture.sqlite-*")]:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_metrics_are_for_this_machine_or_the_holder_of_the_token(make_runtime: Any) -> None:
    open_app = create_app(runtime=make_runtime()).test_client()
    assert open_app.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    elsewhere = open_app.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert elsewhere.status_code == 403
    assert "NURTURE_METRICS_TOKEN" in elsewhere.get_data(as_text=True)
    assert "nurture_" not in elsewhere.get_data(as_text=True)

    token = "metrics-token-0123456789abcdef"
    guarded = create_app(runtime=make_runtime(metrics_token=token)).test_client()
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert guarded.get("/metrics").status_code == 401  # loopback is not enough any more
    wrong = guarded.get("/metrics", headers={"Authorization": "Bearer guess"}, environ_base=remote)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    right = guarded.get(
        "/metrics", headers={"Authorization": f"Bearer {token}"}, environ_base=remote
    )
    assert right.status_code == 200 and "nurture_due_steps" in right.get_data(as_text=True)
