"""The Accounts section: the companies whose people engage most, and each account's
fit, engagement, people and promotions (the figures of `nurture accounts list` and
`show`, nurture/accounts.py; docs/accounts.md). For marketing: an account's page
lists every rep's leads, so a sales user, who sees their own leads only, has none."""

from __future__ import annotations

from flask import render_template, request

from nurture.accounts import details, find, listing, shown
from nurture.console import blueprint
from nurture.console.auth import now, requires
from nurture.web import runtime

SHOWN = 100


@blueprint.get("/accounts")
@requires("viewer")
def accounts() -> tuple[str, int]:
    rt = runtime()
    engaged_only = request.args.get("engaged") == "1"
    with rt.sessions() as session:
        found = listing(session, rt.content, now(), SHOWN, engaged_only)
        rows = [shown(item.id, item.key, item.figures) for item in found]
    page = render_template(
        "console/accounts.html", rows=rows, engaged_only=engaged_only, shown=SHOWN
    )
    return page, 200


@blueprint.get("/accounts/<account>")
@requires("viewer")
def accounts_page(account: str) -> tuple[str, int]:
    rt = runtime()
    with rt.sessions() as session:
        found = find(session, account[:320])
        if found is None:
            return render_template("console/account_missing.html", name=account[:320]), 404
        page = details(session, rt.content, found, now())
    return render_template("console/account.html", account=page), 200
