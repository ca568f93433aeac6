"""The web console's access layer through Flask's test client: signing in and out, the
rate limit, CSRF, roles, what a sales user sees, cookies, the pages' security headers,
escaping, and the API, tracking, forms and unsubscribe routes left as they were."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select
from werkzeug.test import TestResponse

import nurture.console
from nurture.apikeys import create_key
from nurture.app import create_app
from nurture.cli import cli
from nurture.console import auth, users
from nurture.core.access import ROLES, Account, grants, password_problem
from nurture.models import Delivery, Enrollment, Lead, Promotion, User
from nurture.runtime import Runtime
from nurture.web.headers import CONSOLE_POLICY, PAGE_POLICY

pytest_plugins = ["tracked_email"]

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its cheapest: the parameters are not what these tests are about."""
    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@dataclass
class Console:
    runtime: Runtime
    app: Flask

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def add(self, email: str, role: str, rep: str | None = None, password: str = PASSWORD) -> None:
        with self.runtime.sessions.begin() as session:
            users.create_user(session, email, role, password, datetime.now(UTC), rep)

    def sign_in(
        self, client: FlaskClient, email: str, password: str = PASSWORD, **kwargs: Any
    ) -> TestResponse:
        data = {"email": email, "password": password, "csrf_token": token(client)}
        return client.post("/console/login", data={**data, **kwargs.pop("data", {})}, **kwargs)

    def signed_in(self, email: str, role: str, rep: str | None = None) -> FlaskClient:
        self.add(email, role, rep)
        client = self.client()
        assert self.sign_in(client, email).status_code == 303
        return client


def token(client: FlaskClient, path: str = "/console/login") -> str:
    """The CSRF token of the client's session, as a console page carries it."""
    page = client.get(path)
    found = TOKEN.search(page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)
    return found.group(1)


@pytest.fixture
def make_console(make_runtime: Callable[..., Runtime]) -> Callable[..., Console]:
    def build(**overrides: Any) -> Console:
        runtime = make_runtime(**overrides)
        return Console(runtime, create_app(runtime=runtime))

    return build


@pytest.fixture
def console(make_console: Callable[..., Console]) -> Console:
    return make_console()


def add_lead(runtime: Runtime, email: str, rep: str | None = None, **fields: Any) -> int:
    with runtime.sessions.begin() as session:
        lead = Lead(email=email, rep_email=rep, created_at=NOW, updated_at=NOW, **fields)
        session.add(lead)
        session.flush()
        return lead.id


# --- signing in and out ---------------------------------------------------------------------


def test_a_console_page_sends_a_stranger_to_the_sign_in_page(console: Console) -> None:
    page = console.client().get("/console/sequences")
    assert page.status_code == 303
    assert page.headers["Location"] == "/console/login?next=/console/sequences"
    login = console.client().get("/console/login")
    assert login.status_code == 200 and "Sign in" in login.get_data(as_text=True)


def test_the_right_password_opens_the_home_page(console: Console) -> None:
    console.add("Ana@Example.com", "marketer")
    client = console.client()
    answer = console.sign_in(client, "ana@example.com ")
    assert answer.status_code == 303 and answer.headers["Location"] == "/console/"
    home = client.get("/console/")
    text = home.get_data(as_text=True)
    assert home.status_code == 200
    assert "Signed in as <strong>ana@example.com</strong>, role <strong>marketer</strong>" in text
    with console.runtime.sessions() as session:
        assert session.scalars(select(User.signed_in_at)).one() is not None


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("ana@example.com", "correct horse battery stapler"),  # wrong password
        ("nobody@example.com", PASSWORD),  # no such user
        ("off@example.com", PASSWORD),  # disabled
        ("ana@example.com", ""),
    ],
)
def test_every_refusal_says_the_same_thing(console: Console, email: str, password: str) -> None:
    console.add("ana@example.com", "admin")
    console.add("off@example.com", "admin")
    with console.runtime.sessions.begin() as session:
        users.set_disabled(session, "off@example.com", NOW)
    client = console.client()
    answer = console.sign_in(client, email, password)
    assert answer.status_code == 403
    text = answer.get_data(as_text=True)
    assert "Wrong email or password." in text
    assert "disabled" not in text and "unknown" not in text
    assert client.get("/console/").status_code == 303  # still not signed in


def test_signing_out_takes_a_post_with_the_token(console: Console) -> None:
    client = console.signed_in("ana@example.com", "viewer")
    assert client.get("/console/logout").status_code == 405  # a link cannot sign anyone out
    out = client.post("/console/logout", data={"csrf_token": token(client, "/console/")})
    assert out.status_code == 303 and out.headers["Location"] == "/console/login?out=1"
    assert "nurture_console=;" in out.headers["Set-Cookie"]  # the cookie is removed
    assert "You are signed out." in client.get("/console/login?out=1").get_data(as_text=True)
    assert client.get("/console/").status_code == 303


@pytest.mark.parametrize(
    ("asked", "lands"),
    [
        ("/console/leads", "/console/leads"),
        ("/console/leads?page=2", "/console/leads?page=2"),
        ("https://evil.example/console/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/\\evil.example", "/console/"),
        ("/api/v1/leads", "/console/"),
        ("/console/logout", "/console/"),
    ],
)
def test_after_signing_in_only_a_console_page_is_a_destination(
    console: Console, asked: str, lands: str
) -> None:
    console.add("ana@example.com", "admin")
    client = console.client()
    answer = console.sign_in(client, "ana@example.com", data={"next": asked})
    assert answer.headers["Location"] == lands


def test_a_disabled_user_or_a_new_password_ends_open_sessions(console: Console) -> None:
    client = console.signed_in("ana@example.com", "marketer")
    other = console.signed_in("bob@example.com", "marketer")
    with console.runtime.sessions.begin() as session:
        users.set_disabled(session, "ana@example.com", NOW)
        users.set_password(session, "bob@example.com", "another fine passphrase", NOW)
    assert client.get("/console/").status_code == 303
    assert other.get("/console/").status_code == 303
    assert console.sign_in(other, "bob@example.com", "another fine passphrase").status_code == 303
    assert other.get("/console/").status_code == 200


def test_a_session_lasts_the_configured_hours_from_sign_in(
    make_console: Callable[..., Console],
) -> None:
    console = make_console(console_session_hours=2)
    console.add("ana@example.com", "viewer")
    client = console.client()
    with freeze_time(NOW) as clock:
        assert console.sign_in(client, "ana@example.com").status_code == 303
        clock.tick(timedelta(hours=1, minutes=59))
        assert client.get("/console/").status_code == 200  # busy all along
        clock.tick(timedelta(minutes=2))
        assert client.get("/console/").status_code == 303


def test_a_hash_made_with_older_parameters_is_remade_at_sign_in(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    console.add("ana@example.com", "viewer")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    monkeypatch.setattr(users, "HASHER", stronger)
    with console.runtime.sessions() as session:
        before = session.scalars(select(User.password_hash)).one()
    assert stronger.check_needs_rehash(before)
    client = console.client()
    assert console.sign_in(client, "ana@example.com").status_code == 303
    with console.runtime.sessions() as session:
        after = session.scalars(select(User.password_hash)).one()
    assert after != before and not stronger.check_needs_rehash(after)
    assert stronger.verify(after, PASSWORD)
    assert client.get("/console/").status_code == 200  # the session it opened goes on


# --- the rate limit -----------------------------------------------------------------------------


def test_failed_sign_ins_are_limited_per_account(console: Console) -> None:
    console.add("ana@example.com", "admin")
    console.add("bob@example.com", "admin")
    client = console.client()
    with freeze_time(NOW) as clock:
        for attempt in range(auth.FAILURES_PER_ACCOUNT):
            address = {"REMOTE_ADDR": f"198.51.100.{attempt}"}  # from anywhere
            answer = console.sign_in(client, "ana@example.com", "guess", environ_base=address)
            assert answer.status_code == 403
        refused = console.sign_in(client, "ANA@example.com")  # the right password, too late
        assert refused.status_code == 429
        assert re.search(
            r"Too many attempts: try again in 1[56] minutes\.", refused.get_data(as_text=True)
        )
        assert 15 * 60 <= int(refused.headers["Retry-After"]) <= 15 * 60 + 1
        assert console.sign_in(console.client(), "bob@example.com").status_code == 303
        clock.tick(auth.FAILURE_WINDOW)
        assert console.sign_in(client, "ana@example.com").status_code == 303


def test_failed_sign_ins_are_limited_per_address(console: Console) -> None:
    console.add("ana@example.com", "admin")
    client = console.client()
    here, elsewhere = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "203.0.113.8"}
    for attempt in range(auth.FAILURES_PER_ADDRESS):
        email = f"guess{attempt}@example.com"
        assert console.sign_in(client, email, "guess", environ_base=here).status_code == 403
    assert console.sign_in(client, "ana@example.com", environ_base=here).status_code == 429
    assert console.sign_in(client, "ana@example.com", environ_base=elsewhere).status_code == 303


# --- CSRF ---------------------------------------------------------------------------------------


def test_a_form_without_the_sessions_token_is_refused(console: Console) -> None:
    console.add("ana@example.com", "admin")
    client = console.client()
    client.get("/console/login")  # a session, with its token
    bare = client.post("/console/login", data={"email": "ana@example.com", "password": PASSWORD})
    assert bare.status_code == 400
    assert "Form refused" in bare.get_data(as_text=True)
    stranger = console.client()
    foreign = console.sign_in(client, "ana@example.com", data={"csrf_token": token(stranger)})
    assert foreign.status_code == 400  # a token, but another session's
    assert client.get("/console/").status_code == 303  # not signed in by either

    signed = console.signed_in("bob@example.com", "viewer")
    assert signed.post("/console/logout").status_code == 400
    assert signed.post("/console/logout", data={"csrf_token": "forged"}).status_code == 400
    assert signed.get("/console/").status_code == 200  # still signed in


def test_over_https_a_form_must_come_from_a_console_page(console: Console) -> None:
    console.add("ana@example.com", "admin")
    https = {"base_url": "https://nurture.test"}
    client = console.client()
    page = client.get("/console/login", **https)
    assert page.headers["Referrer-Policy"] == "same-origin"  # so its forms say where from
    data = {"email": "ana@example.com", "password": PASSWORD}
    data["csrf_token"] = TOKEN.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    elsewhere = {"Referer": "https://evil.example/page"}
    assert client.post("/console/login", data=data, headers=elsewhere, **https).status_code == 400
    assert client.post("/console/login", data=data, **https).status_code == 400  # no Referer
    ours = {"Referer": "https://nurture.test/console/login"}
    assert client.post("/console/login", data=data, headers=ours, **https).status_code == 303


# --- roles and what each sees -----------------------------------------------------------------

SECTIONS = ("sequences", "leads", "dashboards", "operations")
OPENS = {
    "viewer": {"sequences", "leads", "dashboards"},
    "marketer": {"sequences", "leads", "dashboards"},
    "sales": {"leads"},
    "admin": set(SECTIONS),
}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_opens_its_pages_and_sees_their_links(console: Console, role: str) -> None:
    client = console.signed_in(f"{role}@example.com", role)
    home = client.get("/console/").get_data(as_text=True)
    for section in SECTIONS:
        page = client.get(f"/console/{section}")
        assert page.status_code == (200 if section in OPENS[role] else 403), section
        assert (f'href="/console/{section}"' in home) == (section in OPENS[role]), section
        if page.status_code == 403:
            assert f"Your role ({role}) does not open this page." in page.get_data(as_text=True)
        else:
            assert f'aria-current="page">{section.title()}</a>' in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("role", "needed", "granted"),
    [
        ("admin", "marketer", True),
        ("admin", "viewer", True),
        ("admin", "sales", True),
        ("marketer", "viewer", True),
        ("marketer", "admin", False),
        ("viewer", "marketer", False),
        ("sales", "viewer", False),
        ("marketer", "sales", False),
        ("nobody", "viewer", False),
    ],
)
def test_roles_include_the_ones_below_them(role: str, needed: str, granted: bool) -> None:
    assert grants(role, needed) is granted
    assert Account(1, "a@example.com", role).may(needed) is granted
    assert Account(1, "a@example.com", role).may()  # no role named: any signed-in user


def test_every_console_page_but_sign_in_is_behind_a_role_check() -> None:
    app = create_app({"database_url": "sqlite://", "secret_key": "console-test-0123456789"})
    unguarded = [
        endpoint
        for endpoint, view in app.view_functions.items()
        if endpoint.startswith("console.")
        and endpoint not in auth.PUBLIC
        and not hasattr(view, "roles")
        and endpoint != "console.logout"  # signed in or not, signing out is harmless
    ]
    assert unguarded == []
    with pytest.raises(ValueError, match="unknown roles"):
        auth.requires("superuser")


def test_a_sales_user_sees_the_leads_of_their_rep_only(console: Console) -> None:
    mine = add_lead(console.runtime, "one@client.example", "Rep@Planifia.example",
                    first_name="Mine")  # fmt: skip
    add_lead(console.runtime, "two@client.example", "other@planifia.example", first_name="Theirs")
    add_lead(console.runtime, "three@client.example", None, first_name="Nobodys")
    rep = Account(1, "rep@planifia.example", "sales", rep_email="rep@planifia.example")
    lost = Account(2, "lost@planifia.example", "sales", rep_email=None)
    viewer = Account(3, "viewer@planifia.example", "viewer")
    with console.runtime.sessions() as session:

        def seen(account: Account) -> list[int]:
            return list(session.scalars(users.visible_leads(select(Lead.id), account)))

        assert seen(rep) == [mine]
        assert seen(lost) == []
        assert len(seen(viewer)) == 3
    assert rep.sees_lead("REP@planifia.example") and not rep.sees_lead("other@planifia.example")
    assert not lost.sees_lead(None) and viewer.sees_lead(None)

    client = console.signed_in("rep@planifia.example", "sales")
    home = client.get("/console/").get_data(as_text=True)
    assert "Mine" in home and "Theirs" not in home and "Nobodys" not in home
    assert re.search(r'id="leads">1<', home)
    admin = console.signed_in("admin@planifia.example", "admin").get("/console/")
    assert re.search(r'id="leads">3<', admin.get_data(as_text=True))


def test_the_home_page_counts_live_figures(console: Console) -> None:
    first = add_lead(console.runtime, "one@client.example", "rep@planifia.example")
    second = add_lead(console.runtime, "two@client.example", "other@planifia.example")
    with console.runtime.sessions.begin() as session:
        for lead_id, status in ((first, "active"), (second, "active"), (second, "completed")):
            session.add(
                Enrollment(lead_id=lead_id, sequence_id=f"s-{status}", version="v1",
                           status=status, step_id="one", step_started_at=NOW, entered_at=NOW)
            )  # fmt: skip
        for lead_id, cycle, at in (
            (first, 1, datetime(2026, 2, 28, 23, 30, tzinfo=UTC)),  # 1 March, 00:30 in Paris
            (second, 1, datetime(2026, 2, 28, 22, 59, tzinfo=UTC)),  # still February there
            (second, 2, NOW - timedelta(days=1)),
        ):
            session.add(Promotion(lead_id=lead_id, cycle=cycle, reason="score", status_at=at,
                                  created_at=at))  # fmt: skip
    with freeze_time(NOW):
        admin = console.signed_in("admin@planifia.example", "admin")
        home = admin.get("/console/").get_data(as_text=True)
        rep = console.signed_in("rep@planifia.example", "sales")
        theirs = rep.get("/console/").get_data(as_text=True)
    assert re.search(r'id="leads">2<', home)
    assert re.search(r'id="active-enrollments">2<', home)
    assert re.search(r'id="promotions">2<', home)
    assert "since 1 March 2026 (Europe/Paris)" in home
    assert re.search(r'id="active-enrollments">1<', theirs)
    assert re.search(r'id="promotions">1<', theirs)


# --- cookies ------------------------------------------------------------------------------------


def cookie_of(answer: TestResponse) -> str:
    found = [c for c in answer.headers.getlist("Set-Cookie") if "nurture_console" in c]
    assert len(found) == 1, answer.headers
    return found[0]


def test_the_session_cookie_is_secure_httponly_lax_and_for_the_console_only(
    console: Console,
) -> None:
    console.add("ana@example.com", "viewer")
    with freeze_time(NOW):
        cookie = cookie_of(console.sign_in(console.client(), "ana@example.com"))
    assert cookie.startswith("__Secure-nurture_console=")  # base URL https: Secure
    flags = {part.strip().partition("=")[0].lower(): part for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "path", "expires"} <= set(flags)
    assert flags["samesite"].strip() == "SameSite=Lax"
    assert flags["path"].strip() == "Path=/console"
    assert "Mon, 16 Mar 2026 18:00:00 GMT" in flags["expires"]  # 8 hours, then signed out
    assert "domain" not in flags


@pytest.mark.parametrize(
    ("base_url", "configured", "secure"),
    [
        ("http://127.0.0.1:5000", None, False),  # development over plain http
        ("http://127.0.0.1:5000", True, True),
        ("https://nurture.example", None, True),
        ("https://nurture.example", False, False),
    ],
)
def test_secure_cookies_follow_the_base_url_unless_configured(
    make_console: Callable[..., Console], base_url: str, configured: bool | None, secure: bool
) -> None:
    console = make_console(base_url=base_url, console_cookie_secure=configured)
    cookie = cookie_of(console.client().get("/console/login"))
    assert ("; Secure" in cookie) is secure
    assert cookie.startswith("__Secure-" if secure else "nurture_console=")


def test_the_console_settings_are_read_from_the_environment() -> None:
    from nurture.config import ConfigError, load_settings

    settings = load_settings(
        environ={"NURTURE_CONSOLE_COOKIE_SECURE": "false", "NURTURE_CONSOLE_SESSION_HOURS": "2"}
    )
    assert settings.console_cookies_secure is False and settings.console_session_hours == 2
    with pytest.raises(ConfigError, match="NURTURE_CONSOLE_SESSION_HOURS"):
        load_settings(environ={"NURTURE_CONSOLE_SESSION_HOURS": "0"})


# --- headers and escaping -----------------------------------------------------------------------


def console_pages(console: Console) -> dict[str, TestResponse]:
    """Every console page a browser can get: each GET route as an admin, and the sign-in
    page, the refusals and a missing page."""
    admin = console.signed_in("admin@example.com", "admin")
    viewer = console.signed_in("viewer@example.com", "viewer")
    routes = [
        rule.rule
        for rule in console.app.url_map.iter_rules()
        if rule.endpoint.startswith("console.")
        and "GET" in (rule.methods or ())
        and rule.endpoint not in ("console.static", "console.login")
    ]
    assert len(routes) >= 5
    pages = {route: admin.get(route) for route in routes}
    pages["sign in"] = console.client().get("/console/login")
    pages["wrong password"] = console.sign_in(console.client(), "admin@example.com", "nope")
    pages["not for this role"] = viewer.get("/console/operations")
    pages["form refused"] = admin.post("/console/logout")
    pages["no such page"] = admin.get("/console/no-such-page")
    return pages


# An email's preview is shown in a sandboxed frame under a policy of its own, stricter
# still: no script at all, the email's inline styles, no image fetched from anywhere.
PREVIEW_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def test_every_console_page_carries_the_strict_policy(console: Console) -> None:
    for name, page in console_pages(console).items():
        csv = name.endswith("/csv") and page.status_code == 200
        assert page.mimetype == ("text/csv" if csv else "text/html"), name
        if csv:  # a download, never shown as a page
            assert page.headers["Content-Disposition"].startswith("attachment"), name
            assert page.headers["X-Content-Type-Options"] == "nosniff", name
            assert page.headers["Cache-Control"] == "no-store", name
            continue
        policy = page.headers["Content-Security-Policy"]
        if "/preview" in name and page.status_code == 200:
            assert policy.startswith(PREVIEW_POLICY), name
        else:
            assert policy == CONSOLE_POLICY, name
        assert page.headers["X-Frame-Options"] == "DENY", name
        assert page.headers["X-Content-Type-Options"] == "nosniff", name
        assert page.headers["Cache-Control"] == "no-store", name
        if "/preview" in name:
            continue
        body = page.get_data(as_text=True).lower()
        # Scripts are files of the console's own, or data the page's scripts read.
        for tag in re.findall(r"<script[^>]*>", body):
            assert " src=" in tag or 'type="application/json"' in tag, (name, tag)
        assert "<style" not in body and " style=" not in body, name
        assert not re.search(r"\son[a-z]+=", body), name  # no inline event handler


def test_the_console_policy_allows_nothing_inline_and_no_framing() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONSOLE_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert "unsafe" not in CONSOLE_POLICY
    assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"
    assert directives["form-action"] == "'self'"


def test_the_style_sheet_is_served_and_shipped_in_the_package(console: Console) -> None:
    sheet = console.client().get("/console/static/console.css")
    assert sheet.status_code == 200 and sheet.mimetype == "text/css"
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["nurture"]
    package = Path(nurture.console.__file__).parent.parent
    files = [
        path.relative_to(package)
        for folder in ("templates", "static")
        for path in (package / "console" / folder).rglob("*")
        if path.is_file()
    ]
    assert files and all(any(f.match(p) for p in patterns) for f in files), files


def test_what_a_lead_carries_or_a_user_types_is_shown_as_text(console: Console) -> None:
    add_lead(console.runtime, "hostile@client.example", first_name=HOSTILE, company=HOSTILE)
    home = console.signed_in("ana@example.com", "viewer").get("/console/")
    text = home.get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    assert "<script" not in text and "<img src=x" not in text
    typed = console.sign_in(console.client(), f'{HOSTILE}"@example.com', "nope")
    echoed = typed.get_data(as_text=True)
    assert typed.status_code == 403 and "<script" not in echoed and "&lt;script&gt;" in echoed


# --- everything else stays as it was ------------------------------------------------------------


def test_the_api_tracking_forms_and_unsubscribe_ignore_the_console(
    tracked: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nurture.web.forms as forms
    from nurture.tracking import tokens_for

    monkeypatch.setattr(forms, "LIMIT", forms.RateLimit(count=1000))
    runtime, client = tracked.runtime, tracked.client
    with runtime.sessions.begin() as session:
        users.create_user(session, "ana@example.com", "admin", PASSWORD, NOW)
        key = create_key(session, "website", NOW)
        delivery_id = session.scalars(select(Delivery.id)).one()
    signed = {"email": "ana@example.com", "password": PASSWORD, "csrf_token": token(client)}
    assert client.post("/console/login", data=signed).status_code == 303  # a console session
    assert client.get("/console/").status_code == 200
    bearer = {"Authorization": f"Bearer {key}"}
    answers = {
        "api, no key": client.get("/api/v1/leads/reader@example.com"),
        "api, create": client.post(
            "/api/v1/leads", json={"email": "new@client.example"}, headers=bearer
        ),
        "api, read": client.get("/api/v1/leads/new@client.example", headers=bearer),
        "pixel": client.get(tracked.pixel),
        "click": client.get(tracked.links[1]),
        "website form": client.post("/forms/newsletter", data={"email": "form@client.example"}),
        "unsubscribe page": client.get(
            f"/u/{tokens_for(runtime.secret_key).unsubscribe(delivery_id)}"
        ),
        "one-click unsubscribe": client.post(
            f"/u/{tokens_for(runtime.secret_key).unsubscribe(delivery_id)}",
            data={"List-Unsubscribe": "One-Click"},
        ),
        "health": client.get("/healthz"),
    }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "api, no key": 401,
        "api, create": 201,
        "api, read": 200,
        "pixel": 200,
        "click": 302,
        "website form": 200,
        "unsubscribe page": 200,
        "one-click unsubscribe": 200,
        "health": 200,
    }
    for name, answer in answers.items():
        assert "Set-Cookie" not in answer.headers, name
        assert "Cookie" not in answer.headers.get("Vary", ""), name
        policy = answer.headers.get("Content-Security-Policy")
        assert policy in (None, PAGE_POLICY), name
    assert answers["api, no key"].is_json


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "NURTURE_DATABASE_URL": database_url,
        "NURTURE_SECRET_KEY": "cli-test-secret-0123456789",
        "NURTURE_SEQUENCES_DIR": str(ROOT / "sequences"),
        "NURTURE_TEMPLATES_DIR": str(ROOT / "templates"),
        "NURTURE_OUTBOX_DIR": str(tmp_path / "outbox"),
    }


def run_cli(env: dict[str, str], *args: str, typed: str = "") -> Any:
    return CliRunner().invoke(cli, list(args), env=env, input=typed, catch_exceptions=False)


def test_users_are_created_listed_disabled_and_given_new_passwords(
    env: dict[str, str], make_runtime: Callable[..., Runtime]
) -> None:
    twice = f"{PASSWORD}\n{PASSWORD}\n"
    made = run_cli(env, "users", "create", "Ana@Example.com", "--role", "admin", typed=twice)
    assert made.exit_code == 0 and "created ana@example.com (admin)" in made.output
    assert PASSWORD not in made.output  # the prompt hides what is typed
    rep = run_cli(env, "users", "create", "rep@planifia.example", "--role", "sales",
                  "--password-stdin", typed="another fine passphrase\n")  # fmt: skip
    assert rep.exit_code == 0 and "rep rep@planifia.example" in rep.output
    again = run_cli(env, "users", "create", "ana@example.com", "--role", "viewer")
    assert again.exit_code == 1 and "exists already" in again.output
    assert "Password" not in again.output  # refused before asking

    listed = run_cli(env, "users", "list")
    assert re.search(r"ana@example.com\s+admin\s+-\s+enabled", listed.output)
    assert re.search(
        r"rep@planifia.example\s+sales\s+rep@planifia.example\s+enabled", listed.output
    )
    assert (
        run_cli(env, "users", "disable", "ana@example.com").output
        == "ana@example.com is disabled\n"
    )
    assert "disabled" in run_cli(env, "users", "list").output
    changed = run_cli(env, "users", "password", "rep@planifia.example", "--password-stdin",
                      typed="yet another fine passphrase\n")  # fmt: skip
    assert changed.exit_code == 0 and "new password set" in changed.output
    nobody = run_cli(env, "users", "disable", "nobody@example.com")
    assert nobody.exit_code == 1 and "no console user nobody@example.com" in nobody.output
    runtime = make_runtime()
    with runtime.sessions() as session:
        assert users.authenticate(session, "rep@planifia.example", "yet another fine passphrase",
                                  NOW) is not None  # fmt: skip
        assert users.authenticate(session, "ana@example.com", PASSWORD, NOW) is None  # disabled


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("short\n", "password refused: too short: at least 12 characters"),
        ("P@ssw0rd2024!\n", "password refused: too common"),
        ("ana.lima.2026.plans\n", "password refused: it contains your email address"),
    ],
)
def test_a_weak_password_is_refused_with_the_reason(
    env: dict[str, str], typed: str, says: str
) -> None:
    made = run_cli(env, "users", "create", "ana.lima@example.com", "--role", "viewer",
                   "--password-stdin", typed=typed)  # fmt: skip
    assert made.exit_code == 1 and says in made.output
    assert "ana.lima@example.com" not in run_cli(env, "users", "list").output


def test_two_different_passwords_at_the_prompt_are_refused(env: dict[str, str]) -> None:
    typed = f"{PASSWORD}\n{PASSWORD}!\n"  # then nothing: the prompt gives up
    made = CliRunner().invoke(cli, ["users", "create", "ana@example.com", "--role", "viewer"],
                              env=env, input=typed)  # fmt: skip
    assert made.exit_code != 0 and "do not match" in made.output.lower()


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("", "too short"),
        ("a" * 11 + "b", "too repetitive"),
        ("x" * 1025 + "abcde", "too long"),
        ("Welcome2026!!", "too common"),
        ("Summer-2026!!", "too common"),
        ("1234567890123", "too common"),
        ("azertyuiop!!", "too common"),
        ("ana.lima-rocks-2026", "your email address"),
        ("correct horse battery staple", None),
        ("xk9#Lm2$pQ4!", None),
    ],
)
def test_the_password_rules(password: str, problem: str | None) -> None:
    found = password_problem(password, "ana.lima@example.com")
    assert (found is None) if problem is None else (problem in (found or "")), found


def test_passwords_are_stored_as_argon2id_hashes(console: Console) -> None:
    console.add("ana@example.com", "viewer")
    with console.runtime.sessions() as session:
        stored = session.scalars(select(User.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
