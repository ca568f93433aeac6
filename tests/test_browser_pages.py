"""The pages a lead or a visitor sees, opened in a real browser (headless Chromium): each
shows its text, breaks none of its own Content-Security-Policy, runs no script that got
into it, and cannot be framed by another site.

Needs Chromium and Playwright for Python (`pip install -e '.[test]'`; Playwright's own
browser download is not used: `apt-get install chromium`, or NURTURE_TEST_CHROMIUM=path).
Without them the tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import html
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Response, render_template_string
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.serving import make_server

import nurture.web
from nurture.app import create_app
from nurture.models import Delivery
from nurture.runtime import Runtime
from nurture.tracking import tokens_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page
    from tracked_email import Tracked

pytest_plugins = ["tracked_email"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Collects, in each page, every Content-Security-Policy violation the browser reports.
LISTEN_FOR_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.effectiveDirective} ${event.blockedURI}`);
});
"""
# A script, an event handler and a javascript: link, as a value that escaped its
# template would carry them; each marks the page if it runs.
HOSTILE = (
    "<script>document.body.dataset.ran = 'script'</script>"
    "<img src=/no-such-image onerror=\"document.body.dataset.ran = 'handler'\">"
    "<a id=hostile href=\"javascript:document.body.dataset.ran = 'link'\">x</a>"
)


def chromium() -> str:
    """The Chromium to drive, or a skip (a failure under CI) saying how to get one."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "Playwright for Python is not installed (pip install -e '.[test]')"
    else:
        configured = os.environ.get("NURTURE_TEST_CHROMIUM")
        found = configured or next(filter(None, map(shutil.which, BROWSERS)), None)
        if found and Path(found).exists():
            return found
        missing = "no Chromium found (apt-get install chromium, or NURTURE_TEST_CHROMIUM=path)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests must run in CI: {missing}")
    pytest.skip(f"browser tests: {missing}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


class Serving:
    """A WSGI app served over real HTTP on 127.0.0.1, in a thread."""

    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()


class Website:
    """Another site, on another origin (`localhost`, not `127.0.0.1`): pages that frame
    ours or post a form to us, as a marketing site does."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "<p>no such page</p>").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.origin = f"http://localhost:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Site:
    """nurture served for real, with a delivered email and a form asking for double
    opt-in (`webinar`), and another site beside it."""

    tracked: Tracked
    runtime: Runtime
    origin: str
    website: Website

    def unsubscribe_path(self) -> str:
        with self.runtime.sessions() as session:
            delivery_id = session.scalars(select(Delivery.id)).one()
        return f"/u/{tokens_for(self.runtime.secret_key).unsubscribe(delivery_id)}"

    def confirmation_path(self, email: str | None, submit: bool = True) -> str:
        """The emailed link of a submission to the double opt-in form (made now unless
        `submit` is false), or of one that is not there any more (None)."""
        from nurture.confirmation import link_token
        from nurture.models import FormConfirmation

        public_id = "gone-0123456789abcdef"
        if email is not None:
            if submit:
                client = create_app(runtime=self.runtime).test_client()
                assert client.post("/forms/webinar", data={"email": email}).status_code == 200
            with self.runtime.sessions() as session:
                public_id = session.scalars(
                    select(FormConfirmation.public_id).where(FormConfirmation.email == email)
                ).one()
        return f"/forms/confirm/{link_token(self.runtime.secret_key, public_id)}"


@dataclass
class Opened:
    """A page as the browser shows it, and what the browser said while showing it."""

    page: Page
    console: list[str]
    status: int | None

    def text(self) -> str:
        return self.page.inner_text("body")

    def violations(self) -> list[str]:
        reported: list[str] = self.page.evaluate("window.__violations || []")
        said = [m for m in self.console if "Content Security Policy" in m]
        return reported + said

    def ran(self) -> str | None:
        value: str | None = self.page.evaluate("document.body.dataset.ran || null")
        return value


@pytest.fixture
def site(tracked: Tracked, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    import nurture.web.forms as forms

    monkeypatch.setattr(forms, "LIMIT", forms.RateLimit(count=1000))
    settings = replace(tracked.runtime.settings, double_opt_in_forms=frozenset({"webinar"}))
    runtime = Runtime(settings)
    app = create_app(runtime=runtime)

    @app.get("/test/escaped-value")
    def escaped_value() -> Response:
        # A page that shows a tracked value as every template does (escaped).
        page = render_template_string(
            '{% extends "_page.html" %}{% block content %}<h1>Hello {{ name }}</h1>{% endblock %}',
            name=HOSTILE,
        )
        return Response(page, mimetype="text/html")

    @app.get("/test/unescaped-value")
    def unescaped_value() -> Response:
        # The same value let through unescaped, as a template bug would: the policy is
        # what stops it.
        page = render_template_string(
            '{% extends "_page.html" %}{% block content %}<h1>Hello {{ name | safe }}</h1>'
            "{% endblock %}",
            name=HOSTILE,
        )
        return Response(page, mimetype="text/html")

    serving = Serving(app)
    website = Website()
    origin = f"http://127.0.0.1:{serving.server.server_port}"
    try:
        yield Site(tracked, runtime, origin, website)
    finally:
        website.stop()
        serving.stop()
        runtime.close()


@pytest.fixture
def open_page(browser: Browser, site: Site) -> Iterator[Callable[..., Opened]]:
    """Open a URL (a path: on nurture) in a fresh browser context; `submit`: then press
    its button, and the page is the one the form leads to."""
    contexts = []

    def open_(url: str, submit: bool = False) -> Opened:
        context = browser.new_context()  # never bypass_csp: the policy is what is tested
        contexts.append(context)
        page = context.new_page()
        console: list[str] = []

        def heard(message: ConsoleMessage) -> None:
            console.append(message.text)

        page.on("console", heard)
        page.on("pageerror", lambda error: console.append(f"page error: {error}"))
        page.add_init_script(LISTEN_FOR_VIOLATIONS)
        answer = page.goto(url if "://" in url else site.origin + url)
        if submit:
            with page.expect_navigation() as navigation:
                page.click("button")
            answer = navigation.value
        page.wait_for_load_state("load")
        return Opened(page, console, answer.status if answer else None)

    yield open_
    for context in contexts:
        context.close()


# --- the pages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """How a browser reaches a page: a link (GET), or a form of the website (POST)."""

    path: str
    posted: dict[str, str] | None = None

    def form(self, site: Site, target: str = "_self") -> str:
        """The website's form that posts to this route, in the frame named `target`."""
        inputs = "".join(
            f'<input name="{name}" value="{html.escape(value)}">'
            for name, value in (self.posted or {}).items()
        )
        return (
            f'<form method="post" action="{site.origin}{self.path}" target="{target}">'
            f'{inputs}<button type="submit">Send</button></form>'
        )


def route_to(name: str, site: Site, monkeypatch: pytest.MonkeyPatch) -> Route:
    if name == "unsubscribe, confirm":
        return Route(site.unsubscribe_path())
    if name == "unsubscribe, done":
        return Route(site.unsubscribe_path(), posted={})
    if name == "unsubscribe, bad link":
        return Route("/u/not-a-token")
    if name == "click, bad link":
        return Route("/c/not-a-token")
    if name == "click, retry":  # a stored click link while its links cannot be read
        import nurture.web.tracking as tracking

        def unavailable(*args: Any) -> None:
            raise SQLAlchemyError("the database does not answer")

        monkeypatch.setattr(tracking, "_links", unavailable)
        return Route(site.tracked.stored_link(1))
    if name == "website form, thanks":
        return Route("/forms/newsletter", posted={"email": "ana@example.com", "first_name": "Ana"})
    if name == "website form, error":
        return Route("/forms/newsletter", posted={"email": "not-an-address"})
    if name == "website form, check your inbox":
        return Route("/forms/webinar", posted={"email": "ana@example.com"})
    if name == "form confirmation, confirm":
        return Route(site.confirmation_path("cleo@example.com"))
    if name == "form confirmation, done":
        return Route(site.confirmation_path("cleo@example.com"), posted={})
    if name == "form confirmation, gone":
        return Route(site.confirmation_path(None))
    if name == "form confirmation, bad link":
        return Route("/forms/confirm/not-a-token")
    raise AssertionError(f"no route to {name}")


PAGES: dict[str, tuple[str, int]] = {
    # name: what the page shows, its status
    "unsubscribe, confirm": ("Unsubscribe reader@example.com?", 200),
    "unsubscribe, done": ("You are unsubscribed", 200),
    "unsubscribe, bad link": ("This link is not recognised", 404),
    "click, bad link": ("This link is not recognised", 404),
    "click, retry": ("One moment", 503),
    "website form, thanks": ("Thank you", 200),
    "website form, error": ("Please check the form", 400),
    "website form, check your inbox": ("Check your inbox", 200),
    "form confirmation, confirm": ("Confirm cleo@example.com?", 200),
    "form confirmation, done": ("Thank you", 200),
    "form confirmation, gone": ("This link has been used or has expired", 404),
    "form confirmation, bad link": ("This link is not recognised", 400),
}
# Each page template, and a page above that shows it: a new template needs a page here.
TEMPLATES = {
    "unsubscribe_confirm.html": "unsubscribe, confirm",
    "unsubscribe_done.html": "unsubscribe, done",
    "unsubscribe_invalid.html": "unsubscribe, bad link",
    "link_invalid.html": "click, bad link",
    "click_retry.html": "click, retry",
    "form_thanks.html": "website form, thanks",
    "form_error.html": "website form, error",
    "form_check_email.html": "website form, check your inbox",
    "form_confirm.html": "form confirmation, confirm",
    "form_confirm_gone.html": "form confirmation, gone",
}


def test_every_page_template_is_opened_in_the_browser() -> None:
    folder = Path(nurture.web.__file__).parent / "templates"
    pages = {path.name for path in folder.glob("*.html") if not path.name.startswith("_")}
    assert pages == set(TEMPLATES), "a page template is missing from TEMPLATES and PAGES"
    assert set(TEMPLATES.values()) <= set(PAGES)


def open_route(route: Route, site: Site, open_page: Callable[..., Opened]) -> Opened:
    if route.posted is None:
        return open_page(route.path)
    path = f"/form-{len(site.website.pages)}"
    site.website.pages[path] = route.form(site)
    return open_page(site.website.origin + path, submit=True)


@pytest.mark.parametrize("name", PAGES)
def test_each_page_shows_its_text_and_breaks_no_policy(
    name: str, site: Site, open_page: Callable[..., Opened], monkeypatch: pytest.MonkeyPatch
) -> None:
    shown, status = PAGES[name]
    opened = open_route(route_to(name, site, monkeypatch), site, open_page)
    assert opened.page.url.startswith(site.origin)  # nurture's page, not the website's
    assert opened.status == status
    assert shown in opened.text()
    assert opened.page.evaluate("getComputedStyle(document.body).margin") == "0px"  # styled
    assert opened.violations() == []
    assert [m for m in opened.console if m.startswith("page error")] == []


@pytest.mark.parametrize(
    ("name", "then"),
    [
        ("unsubscribe, confirm", "You are unsubscribed"),
        ("form confirmation, confirm", "Thank you"),
    ],
)
def test_a_pages_own_button_posts_under_its_policy(
    name: str,
    then: str,
    site: Site,
    open_page: Callable[..., Opened],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    route = route_to(name, site, monkeypatch)
    opened = open_page(route.path, submit=True)  # form-action 'self'
    assert opened.status == 200 and then in opened.text()
    assert opened.violations() == []


@pytest.mark.parametrize("name", PAGES)
def test_no_page_can_be_framed_by_another_site(
    name: str, site: Site, open_page: Callable[..., Opened], monkeypatch: pytest.MonkeyPatch
) -> None:
    shown, _ = PAGES[name]
    route = route_to(name, site, monkeypatch)
    site.website.pages["/own"] = "<h1>The website's own page</h1>"
    ours = '<iframe name="ours" src="about:blank"></iframe>'
    if route.posted is None:
        ours = f'<iframe name="ours" src="{site.origin}{route.path}"></iframe>'
    site.website.pages["/frames"] = (
        ("" if route.posted is None else route.form(site, target="ours"))
        + ours
        + '<iframe name="own" src="/own"></iframe>'  # the control: a frame that may load
    )
    framing = open_page(site.website.origin + "/frames")
    if route.posted is not None:
        framing.page.click("button")
    framing.page.wait_for_timeout(500)  # let the frames settle
    own = framing.page.frame(name="own")
    assert own is not None and "The website's own page" in _text(own)  # frames do load
    framed = framing.page.frame(name="ours")
    assert framed is not None
    assert shown not in _text(framed)
    # Refused by the policy itself, not only X-Frame-Options: Chromium reports it on
    # the console when the frame's answer is judged, which may come after the frames
    # settle on a busy machine, so wait for the message rather than a fixed time.
    for _ in range(50):
        refused = [m for m in framing.console if "frame-ancestors 'none'" in m]
        if refused:
            break
        framing.page.wait_for_timeout(100)
    assert refused, framing.console


def _text(frame: Any) -> str:
    try:
        return str(frame.inner_text("body", timeout=1000))
    except Exception:  # a blocked frame holds no document to read
        return ""


def test_what_a_visitor_types_runs_nothing_on_the_pages_that_follow(
    site: Site, open_page: Callable[..., Opened]
) -> None:
    typed = {name: HOSTILE for name in ("first_name", "last_name", "company", "job_title")}
    refused = Route("/forms/newsletter", posted={"email": HOSTILE, **typed})
    held = Route("/forms/webinar", posted={"email": "dora@example.com", **typed})
    pages = [open_route(refused, site, open_page), open_route(held, site, open_page)]
    confirm = site.confirmation_path("dora@example.com", submit=False)
    pages.append(open_page(confirm))  # the page that shows the address back
    pages.append(open_page(confirm, submit=True))  # and the lead it makes
    assert [page.status for page in pages] == [400, 200, 200, 200]
    assert "Confirm dora@example.com?" in pages[2].text()
    for opened in pages:
        assert opened.ran() is None
        assert opened.violations() == []  # nothing hostile even reached the markup


def test_a_value_shown_on_a_page_runs_nothing(site: Site, open_page: Callable[..., Opened]) -> None:
    opened = open_page("/test/escaped-value")
    assert "<script>document.body.dataset.ran" in opened.text()  # shown as text
    assert opened.ran() is None
    assert opened.page.locator("#hostile").count() == 0


def test_a_script_that_escaped_its_template_is_stopped_by_the_policy(
    site: Site, open_page: Callable[..., Opened]
) -> None:
    opened = open_page("/test/unescaped-value")
    opened.page.click("#hostile")  # the javascript: link
    opened.page.wait_for_timeout(200)
    assert opened.ran() is None
    reported = " ".join(opened.violations())
    assert "script-src-elem inline" in reported  # the <script>
    assert "script-src-attr inline" in reported  # the onerror handler
