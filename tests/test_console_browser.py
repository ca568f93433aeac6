"""The web console in a real browser (headless Chromium, as tests/test_browser_pages.py
drives it, with its fixtures): signing in through the page, forms posted by another
site or another port of this host refused, a lead's hostile name shown as text, and
the console's Content-Security-Policy enforced by the browser itself.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from argon2 import PasswordHasher
from flask import Response, render_template_string
from flask_login import current_user
from test_browser_pages import HOSTILE, LISTEN_FOR_VIOLATIONS, Opened, Serving, Website
from test_browser_pages import browser as browser  # the module's Chromium, reused

from nurture.app import create_app
from nurture.console import users
from nurture.models import Lead
from nurture.runtime import Runtime
from nurture.web.headers import CONSOLE_POLICY

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog

PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@dataclass
class Site:
    """The console served for real on 127.0.0.1, with users; and another site, served
    both as `localhost` (another site) and as `127.0.0.1` on its own port (the same
    site to a browser's SameSite rules, another origin)."""

    runtime: Runtime
    origin: str
    website: Website

    @property
    def neighbour(self) -> str:
        return f"http://127.0.0.1:{self.website.server.server_address[1]}"

    def add_user(self, email: str, role: str) -> None:
        with self.runtime.sessions.begin() as session:
            users.create_user(session, email, role, PASSWORD, NOW)

    def add_lead(self, email: str, **fields: Any) -> None:
        with self.runtime.sessions.begin() as session:
            session.add(Lead(email=email, created_at=NOW, updated_at=NOW, **fields))

    def form(self, path: str, fields: dict[str, str]) -> str:
        """A page of the other site with a form that posts to the console."""
        inputs = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in fields.items()
        )
        return (
            f'<form method="post" action="{self.origin}{path}">{inputs}'
            '<button type="submit">Win a prize</button></form>'
        )


@pytest.fixture
def site(make_runtime: Callable[..., Runtime]) -> Iterator[Site]:
    runtime = make_runtime()  # base URL https: the cookie is Secure, as in production
    app = create_app(runtime=runtime)

    @app.get("/console/test/unescaped")
    def unescaped() -> Response:
        # A value let through unescaped, as a template bug would: the policy stops it.
        page = render_template_string(
            '{% extends "console/base.html" %}{% block content %}<h1>{{ name | safe }}</h1>'
            "{% endblock %}",
            name=HOSTILE,
            current_user=current_user,
            nav=[],
        )
        return Response(page, mimetype="text/html")

    serving = Serving(app)
    website = Website()
    try:
        yield Site(runtime, f"http://127.0.0.1:{serving.server.server_port}", website)
    finally:
        website.stop()
        serving.stop()


@dataclass
class Visitor:
    """One browser profile (its own cookies) opening pages."""

    context: BrowserContext
    site: Site
    dialogs: list[str]

    def open(self, url: str) -> Opened:
        page = self.context.new_page()
        console: list[str] = []

        def heard(message: ConsoleMessage) -> None:
            console.append(message.text)

        def dialog(shown: Dialog) -> None:
            self.dialogs.append(shown.message)
            shown.dismiss()

        page.on("console", heard)
        page.on("pageerror", lambda error: console.append(f"page error: {error}"))
        page.on("dialog", dialog)
        page.add_init_script(LISTEN_FOR_VIOLATIONS)
        answer = page.goto(url if "://" in url else self.site.origin + url)
        page.wait_for_load_state("load")
        return Opened(page, console, answer.status if answer else None)

    def click(self, opened: Opened, selector: str = "button") -> Opened:
        """Press a button of the page; the page the form leads to."""
        with opened.page.expect_navigation() as navigation:
            opened.page.click(selector)
        answer = navigation.value
        opened.page.wait_for_load_state("load")
        return Opened(opened.page, opened.console, answer.status if answer else None)

    def sign_in(self, email: str, password: str = PASSWORD) -> Opened:
        opened = self.open("/console/")
        assert opened.page.url == f"{self.site.origin}/console/login?next=/console/"
        opened.page.fill("#email", email)
        opened.page.fill("#password", password)
        return self.click(opened, "button[type=submit]")


@pytest.fixture
def visitor(browser: Browser, site: Site) -> Iterator[Callable[[], Visitor]]:
    contexts: list[BrowserContext] = []

    def make() -> Visitor:
        context = browser.new_context()  # never bypass_csp: the policy is what is tested
        contexts.append(context)
        return Visitor(context, site, [])

    yield make
    for context in contexts:
        context.close()


def test_signing_in_through_the_page_shows_the_home_page(
    site: Site, visitor: Callable[[], Visitor]
) -> None:
    site.add_user("ana@example.com", "marketer")
    ana = visitor()
    wrong = ana.sign_in("ana@example.com", "not the password")
    assert wrong.status == 403 and "Wrong email or password." in wrong.text()
    home = ana.sign_in("ana@example.com")
    assert home.status == 200 and home.page.url == f"{site.origin}/console/"
    assert "Signed in as ana@example.com, role marketer." in home.text()
    assert [link.inner_text() for link in home.page.locator("nav a").all()] == [
        "Sequences",
        "Leads",
        "Accounts",
        "Dashboards",
    ]
    assert home.page.evaluate("getComputedStyle(document.body).margin") == "0px"  # the sheet
    assert home.violations() == []
    assert [m for m in home.console if m.startswith("page error")] == []

    (cookie,) = ana.context.cookies()
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/console" and cookie["name"] == "__Secure-nurture_console"
    assert home.page.evaluate("document.cookie") == ""  # no script can read it

    out = ana.click(home, "text=Sign out")
    assert out.page.url == f"{site.origin}/console/login?out=1"
    assert "You are signed out." in out.text()
    assert [c["value"] for c in ana.context.cookies()] != [cookie["value"]]  # a new session
    again = ana.open("/console/")
    assert again.page.url.startswith(f"{site.origin}/console/login")


@pytest.mark.parametrize("other", ["another port of this host", "another site"])
@pytest.mark.parametrize("path", ["/console/logout", "/console/login"])
def test_a_form_posted_from_elsewhere_is_refused(
    site: Site, visitor: Callable[[], Visitor], other: str, path: str
) -> None:
    site.add_user("ana@example.com", "admin")
    site.add_user("mallory@example.com", "viewer")
    ana = visitor()
    assert ana.sign_in("ana@example.com").status == 200
    fields = {"email": "mallory@example.com", "password": PASSWORD} if "login" in path else {}
    site.website.pages["/prize"] = site.form(path, fields)
    origin = site.neighbour if other == "another port of this host" else site.website.origin
    lured = ana.open(f"{origin}/prize")
    refused = ana.click(lured)
    assert refused.page.url == f"{site.origin}{path}"
    assert refused.status == 400 and "Form refused" in refused.text()
    home = ana.open("/console/")
    assert "Signed in as ana@example.com, role admin." in home.text()  # still Ana


def test_a_hostile_lead_name_is_shown_as_text_and_runs_nothing(
    site: Site, visitor: Callable[[], Visitor]
) -> None:
    site.add_user("ana@example.com", "viewer")
    site.add_lead(
        "hostile@client.example",
        first_name=HOSTILE,
        last_name="<img src=x onerror=alert(document.domain)>",
        company='<script>alert("company")</script>',
    )
    ana = visitor()
    home = ana.sign_in("ana@example.com")
    assert "<script>document.body.dataset.ran" in home.text()  # the name, as text
    assert '<script>alert("company")</script>' in home.text()
    home.page.wait_for_timeout(200)  # an onerror would have fired by now
    assert home.ran() is None and ana.dialogs == []
    assert home.page.locator("#hostile").count() == 0
    assert home.violations() == []  # nothing hostile even reached the markup


def test_the_browser_enforces_the_console_policy(
    site: Site, visitor: Callable[[], Visitor]
) -> None:
    site.add_user("ana@example.com", "admin")
    ana = visitor()
    pages = [ana.sign_in("ana@example.com")]
    for path in ("/console/sequences", "/console/leads", "/console/dashboards",
                 "/console/operations"):  # fmt: skip
        pages.append(ana.open(path))
    for opened in pages:
        answer = opened.page.request.get(opened.page.url)
        assert answer.headers["content-security-policy"] == CONSOLE_POLICY
        assert opened.violations() == [], opened.page.url
    stranger = visitor().open("/console/login")
    assert stranger.violations() == []

    escaped = ana.open("/console/test/unescaped")  # a template bug let the value through
    escaped.page.click("#hostile")  # the javascript: link
    escaped.page.wait_for_timeout(200)
    assert escaped.ran() is None and ana.dialogs == []
    reported = " ".join(escaped.violations())
    assert "script-src-elem inline" in reported  # the <script>
    assert "script-src-attr inline" in reported  # the onerror handler
