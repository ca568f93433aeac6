"""The Leads section: the list of leads (search, filters, sort, keyset pages) and each
lead's page with its timeline (docs/console-leads.md). A sales user sees their own
leads only; another rep's lead answers 404, as a lead that does not exist does."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import render_template, request, url_for

from nurture.console import blueprint
from nurture.console.auth import now, requires, user
from nurture.console.lead_list import (
    DIRECTIONS,
    NONE,
    SORTS,
    ListError,
    ListQuery,
    leads_page,
    list_query,
)
from nurture.console.lead_page import lead_page, visible_lead
from nurture.core.qualification import CATEGORIES
from nurture.core.scoring import GRADES
from nurture.core.sequences import STAGES
from nurture.web import runtime

FILTERS = ("q", "stage", "grade", "category", "source", "rep", "sequence", "sort", "dir")


def _options(sequences: tuple[str, ...]) -> dict[str, Any]:
    return {
        "stages": STAGES,
        "grades": (*GRADES, NONE),
        "categories": (*CATEGORIES, NONE),
        "sequences": sequences,
        "sorts": [(key, sort.label) for key, sort in SORTS.items()],
        "directions": DIRECTIONS,
    }


@blueprint.get("/leads")
@requires("viewer", "sales")
def leads() -> tuple[str, int]:
    rt = runtime()
    sequences = tuple(sorted(s.id for s in rt.content.live()))
    args = {name: request.args.get(name, "") for name in (*FILTERS, "after", "before")}
    kept = {name: args[name] for name in FILTERS if args[name]}
    try:
        query = list_query(args, sequences)
    except ListError as problem:
        page = render_template(
            "console/leads.html",
            query=ListQuery(),
            kept=kept,
            page=None,
            problem=str(problem),
            links={},
            **_options(sequences),
        )
        return page, 400
    with rt.sessions() as session:
        found = leads_page(session, user(), query)
    links = {}
    if found.next:
        links["next"] = _link(kept, after=found.next)
    if found.previous:
        links["previous"] = _link(kept, before=found.previous)
    page = render_template(
        "console/leads.html",
        query=query,
        kept=kept,
        page=found,
        problem=None,
        links=links,
        **_options(sequences),
    )
    return page, 200


def _link(kept: dict[str, str], **cursor: str) -> str:
    return f"{url_for('console.leads')}?{urlencode({**kept, **cursor})}"


@blueprint.get("/leads/<lead_id>")
@requires("viewer", "sales")
def lead(lead_id: str) -> tuple[str, int]:
    rt = runtime()
    with rt.sessions() as session:
        found = visible_lead(session, lead_id, user())
        if found is None:
            # Another rep's lead gets the answer a lead that does not exist gets.
            return render_template("console/lead_missing.html"), 404
        shown = lead_page(session, rt.content, rt.settings, found, now())
        return render_template("console/lead.html", page=shown, lead=shown.lead), 200
