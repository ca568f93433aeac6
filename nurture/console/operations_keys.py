"""API keys in the console, for admins: the list, creating a key with its scopes (its
secret shown once, on the answer to the form, and kept nowhere), revoking one after a
confirmation page. The same functions as `nurture keys create` and `nurture keys
revoke` (nurture.apikeys), so the same checks apply.

The answer that shows a secret is the one page of the console that is not a redirect
after its POST: it is never cached (`no-store`), and the form carries a one-time
value, so sending it again (a reload) makes no second key and shows no secret.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from flask import Response, abort, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as Answer

from nurture.apikeys import DEFAULT_SCOPES, PREFIX, SCOPES, KeyRefused, create_key, revoke_key
from nurture.console import blueprint
from nurture.console.auth import now, requires, user
from nurture.console.operations_figures import ago
from nurture.models import ApiKey
from nurture.web import runtime

log = logging.getLogger(__name__)

MADE = "operations_keys_made"  # the session's one-time values of forms already answered
KEPT = 20


@dataclass(frozen=True)
class KeyRow:
    prefix: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def _keys() -> list[KeyRow]:
    with runtime().sessions() as db:
        found = db.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc()))
        return [
            KeyRow(key.prefix, key.name, tuple(key.scopes.split(",")), key.created_at,
                   key.revoked_at, key.last_used_at)
            for key in found
        ]  # fmt: skip


def _keys_page(status: int = 200, **form: object) -> Response:
    form.setdefault("name", "")
    form.setdefault("chosen", DEFAULT_SCOPES)
    page = render_template(
        "console/operations_keys.html",
        keys=_keys(),
        scopes=SCOPES,
        key_prefix=PREFIX,
        once=secrets.token_urlsafe(16),
        now=now(),
        ago=ago,
        **form,
    )
    return Response(page, status=status)


@blueprint.get("/operations/keys")
@requires("admin")
def operations_keys() -> Response:
    return _keys_page()


@blueprint.post("/operations/keys")
@requires("admin")
def create_api_key() -> Answer:
    once = request.form.get("once", "")
    made: list[str] = list(session.get(MADE, []))
    if once and once in made:
        flash(
            "That form was sent already: its key exists (below). Its secret was shown once"
            " and is kept nowhere; revoke the key and make another if it was lost.",
            "problem",
        )
        return redirect(url_for("console.operations_keys"), code=303)
    name = request.form.get("name", "").strip()
    chosen = tuple(request.form.getlist("scopes"))
    try:
        with runtime().sessions.begin() as db:
            key = create_key(db, name, now(), chosen)
    except KeyRefused as error:  # nothing was written
        return _keys_page(400, name=name, chosen=chosen, problem=str(error), field=error.field)
    if once:
        session[MADE] = [*made, once][-KEPT:]
    prefix = key.removeprefix(PREFIX).partition(".")[0]
    log.info("console user %s created API key %s%s (%s)", user().id, PREFIX, prefix, chosen)
    page = render_template("console/operations_key_made.html", key=key, name=name,
                           prefix=prefix, scopes=[s for s in SCOPES if s in chosen])  # fmt: skip
    # The one page with a secret on it: never kept by a browser or a proxy.
    return Response(page, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _key(prefix: str) -> KeyRow:
    for row in _keys():
        if row.prefix == prefix.removeprefix(PREFIX).split(".")[0]:
            return row
    abort(404)


@blueprint.get("/operations/keys/<prefix>/revoke")
@requires("admin")
def confirm_revoke(prefix: str) -> str:
    return render_template("console/operations_key_revoke.html", key=_key(prefix),
                           key_prefix=PREFIX)  # fmt: skip


@blueprint.post("/operations/keys/<prefix>/revoke")
@requires("admin")
def revoke_api_key(prefix: str) -> Answer:
    with runtime().sessions.begin() as db:
        done = revoke_key(db, prefix.split(".")[0], now())
    if done:
        log.info("console user %s revoked API key %s", user().id, prefix)
        flash(f"Key {PREFIX}{prefix.removeprefix(PREFIX)} revoked: it works no more.", "done")
    else:
        flash("no such active key", "problem")  # the CLI's words
    return redirect(url_for("console.operations_keys"), code=303)
