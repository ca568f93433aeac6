"""Signing in and out of the console, and who may open which page.

- Every console page needs a signed-in user unless listed in `PUBLIC`; `requires`
  narrows a page to roles (nurture.core.access: admin ⊇ marketer ⊇ viewer; sales apart).
- Every POST needs the CSRF token of the session (Flask-WTF), the sign-in form included,
  so no other site, not even another port of this host, can post in a user's name.
- A wrong address, a wrong password and a disabled user all get the same answer.
  Failed attempts are counted per address and per account; past the limit, sign-in is
  refused for a while, right password or not (nurture.web.ratelimit: per process).
- A session lasts `NURTURE_CONSOLE_SESSION_HOURS` from sign-in, however busy; a new
  password or a disabled user ends it at the next request.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.wrappers import Response as Answer

from nurture.console import blueprint
from nurture.console.users import account, authenticate, mark
from nurture.core.access import ROLES, Account
from nurture.models import User
from nurture.web import request_now, runtime
from nurture.web.ratelimit import RateLimit

FAILURES_PER_ACCOUNT = 5
FAILURES_PER_ADDRESS = 20  # an office behind one address has several people
FAILURE_WINDOW = timedelta(minutes=15)
WRONG = "Wrong email or password."
SIGNED_IN = "signed_in"  # the session's sign-in time, in seconds since the epoch
SKEW = 60  # seconds
# Pages open to anyone: the sign-in page (and its form) and the style sheet.
PUBLIC = frozenset({"console.login", "console.static"})

csrf = CSRFProtect()
login_manager = LoginManager()
View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class ConsoleUser(Account):
    """The signed-in account as Flask-Login wants it."""

    mark: str = ""  # of the password the session was opened with (users.mark)
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.mark}"


@dataclass
class Limits:
    """Failed sign-ins of this app, per address and per account."""

    address: RateLimit
    account: RateLimit

    def refused_for(self, address: str, email: str, now: datetime) -> int | None:
        """Seconds to wait when either has used up its attempts, else None."""
        waits = [
            limit.retry_after(key, now)
            for limit, key in ((self.address, address), (self.account, email))
            if limit.exceeded(key, now)
        ]
        return max(waits) if waits else None

    def failed(self, address: str, email: str, now: datetime) -> None:
        self.address.allow(address, now)
        self.account.allow(email, now)


def install(app: Flask) -> None:
    csrf.init_app(app)
    # What LoginManager.init_app does, less its app-wide after_request (for remember-me
    # cookies, unused here): it reads the session of every answer, and Flask then adds
    # `Vary: Cookie` to API and form answers that have nothing to do with one.
    app.login_manager = login_manager  # type: ignore[attr-defined]
    app.extensions["nurture.console.limits"] = Limits(
        RateLimit(FAILURES_PER_ADDRESS, FAILURE_WINDOW),
        RateLimit(FAILURES_PER_ACCOUNT, FAILURE_WINDOW),
    )


def limits() -> Limits:
    found: Limits = current_app.extensions["nurture.console.limits"]
    return found


def now() -> datetime:
    """The request's time, read once however many parts of it ask."""
    if "console_now" not in g:
        g.console_now = request_now()
    read: datetime = g.console_now
    return read


def user() -> ConsoleUser:
    """The signed-in user (views behind the guard only)."""
    return cast(ConsoleUser, current_user._get_current_object())


@blueprint.context_processor
def _signed_in() -> dict[str, Any]:
    return {"current_user": current_user}


@login_manager.user_loader
def _load(user_id: str) -> ConsoleUser | None:
    number, _, remembered = user_id.partition(":")
    signed_in = session.get(SIGNED_IN)
    if not number.isdigit() or not isinstance(signed_in, int):
        return None
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    # Another web machine's clock may run a little behind the one that signed it in.
    if not -SKEW <= now().timestamp() - signed_in <= lifetime:
        return None
    rt = runtime()
    with rt.sessions() as db:
        found = db.get(User, int(number))
        if found is None or found.disabled_at is not None:
            return None
        signed = _signed(found, rt.secret_key)
        if not hmac.compare_digest(signed.mark, remembered):
            return None  # the password changed since this session began
        return signed


def _signed(found: User, key: str) -> ConsoleUser:
    seen = account(found)
    return ConsoleUser(seen.id, seen.email, seen.role, seen.rep_email, mark=mark(found, key))


@login_manager.unauthorized_handler
def _sign_in_first() -> Answer:
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("console.login", next=_local(target)), code=303)


@blueprint.before_request
def _guard() -> Answer | None:
    csrf.protect()  # POST, PUT, PATCH, DELETE; a missing or foreign token is a CSRFError
    if request.endpoint not in PUBLIC and not current_user.is_authenticated:
        response: Answer = login_manager.unauthorized()
        return response
    return None


def requires(*roles: str) -> Callable[[View], View]:
    """The page is for users granted one of `roles` (none: any signed-in user); others
    get 403. The roles stay on the view (`.roles`), for the navigation."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}: expected some of {ROLES}")

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not user().may(*roles):
                abort(403)
            return view(*args, **kwargs)

        guarded.roles = roles  # type: ignore[attr-defined]
        return cast(View, guarded)

    return decorate


def _local(target: str | None) -> str | None:
    """`target` if it is a console page of this site, else None: a `next` parameter
    must never send anyone elsewhere."""
    if not target or len(target) > 2000 or "\\" in target or not target.isprintable():
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    if parts.path != "/console" and not parts.path.startswith("/console/"):
        return None
    if parts.path.startswith(("/console/login", "/console/logout")):
        return None
    return target


def _login_page(status: int = 200, **context: Any) -> Response:
    context.setdefault("next", None)
    return Response(render_template("console/login.html", **context), status=status)


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Answer:
    target = _local(request.values.get("next"))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(target or url_for("console.home"), code=303)
        return _login_page(next=target, signed_out="out" in request.args)
    email = request.form.get("email", "").strip()[:320]
    password = request.form.get("password", "")
    address, key = request.remote_addr or "", email.lower()
    wait = limits().refused_for(address, key, now())
    if wait is not None:
        minutes = -(-wait // 60)
        problem = f"Too many attempts: try again in {minutes} minute{'s' * (minutes > 1)}."
        page = _login_page(429, next=target, email=email, problem=problem)
        page.headers["Retry-After"] = str(wait)
        return page
    rt = runtime()
    with rt.sessions.begin() as db:
        found = authenticate(db, email, password, now())
        signed = None if found is None else _signed(found, rt.secret_key)
    if signed is None:
        limits().failed(address, key, now())
        return _login_page(403, next=target, email=email, problem=WRONG)
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    login_user(signed)
    session.permanent = True
    session[SIGNED_IN] = int(now().timestamp())
    return redirect(target or url_for("console.home"), code=303)


@blueprint.post("/logout")
def logout() -> Answer:
    logout_user()
    session.clear()
    return redirect(url_for("console.login", out=1), code=303)


@blueprint.errorhandler(CSRFError)
def _csrf_refused(error: CSRFError) -> tuple[str, int]:
    return render_template("console/problem.html", problem="csrf"), 400


@blueprint.errorhandler(403)
def _forbidden(error: Exception) -> tuple[str, int]:
    return render_template("console/problem.html", problem="role"), 403
