"""Reports, costs, the daily top leads and the decision log over the JSON API: the
same functions as `nurture report`, `nurture costs`, `nurture leads top` and `nurture
leads why`, declared with `api.operation` so the OpenAPI document shows them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Response, request

from nurture.core.decisions import concerns, explain
from nurture.core.intake import checked
from nurture.core.payloads import CostPayload, CostQuery, DecisionQuery, ReportQuery, TopLeadsQuery
from nurture.core.refusals import FieldError, InvalidInput
from nurture.core.reports import REPORTS, ReportError, parse_request
from nurture.core.tables import Table
from nurture.costs import CostError, listed, record
from nurture.decisions import story
from nurture.web import answers, request_now, runtime
from nurture.web.api import _answer, _body, _find, _unknown, operation, problem


def _query(model: type[Any]) -> Any:
    return checked(model, dict(request.args), "query")


def _table(data: Table) -> answers.TableAnswer:
    rows = [{k: _json(v) for k, v in r.items()} for r in data.records()]
    return answers.TableAnswer(
        title=data.title, notes=list(data.notes), columns=list(data.columns), rows=rows
    )


def _json(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


@operation(
    "GET", "/reports/<name>", "read", tag="reports", query=ReportQuery,
    answers={200: (answers.TableAnswer, "The report, with the definitions it uses.")},
)  # fmt: skip
def get_report(name: str) -> Response:
    """A report: funnel, sla, velocity, sources, sequences or deliverability

    The figures `nurture report NAME` shows, over whole UTC days from `from` to `to`
    (docs/reports.md states every definition).
    """
    from nurture.reports import build
    from nurture.reports.output import rep_zones, step_order

    if name not in REPORTS:
        return problem(404, "not_found", f"unknown report {name!r}: expected one of "
                       f"{', '.join(REPORTS)}")  # fmt: skip
    asked = _query(ReportQuery)
    try:
        wanted = parse_request(
            name,
            asked.first,
            asked.last,
            asked.by,
            "json",
            asked.view,
            asked.attribution,
            asked.live == "true",
        )
    except ReportError as error:
        raise InvalidInput([FieldError("query", str(error).replace("--", ""))]) from None
    rt = runtime()
    settings = rt.settings
    zones = rep_zones(settings.routing_file) if wanted.name == "sla" else None
    order = step_order(settings.sequences_dir) if wanted.name == "sequences" else None
    with rt.sessions() as session:
        data = build(session, wanted, settings, request_now(), zones, order)
    return _answer(_table(data))


@operation(
    "GET", "/top-leads", "read", tag="reports", query=TopLeadsQuery,
    answers={200: (answers.TableAnswer, "Each rep's top leads, as the digest lists them.")},
)  # fmt: skip
def get_top_leads() -> Response:
    """Today's top leads per rep (the morning digest's list), for a CRM widget"""
    from nurture.digest import top_table

    asked = _query(TopLeadsQuery)
    rt = runtime()
    if rt.content.routing is None:
        return problem(404, "not_found", "no routing file: leads have no reps")
    with rt.sessions() as session:
        try:
            data = top_table(
                session, rt.content.routing, request_now(), rt.settings.digest_size, asked.rep
            )
        except LookupError as error:
            raise InvalidInput([FieldError("query.rep", str(error))]) from None
    return _answer(_table(data))


@operation(
    "GET", "/costs", "read", tag="reports", query=CostQuery,
    answers={200: (answers.TableAnswer, "The costs recorded, month by month.")},
)  # fmt: skip
def get_costs() -> Response:
    """The costs recorded per source, campaign and month"""
    from nurture.core.tables import table

    asked = _query(CostQuery)
    rt = runtime()
    currency = rt.settings.currency
    with rt.sessions() as session:
        rows = [
            (c.month, c.source, c.campaign or None, c.amount)
            for c in listed(session, asked.first, asked.last)
        ]
    columns = ("month", "source", "campaign", f"amount ({currency})")
    return _answer(_table(table(f"Costs ({currency})", columns, rows)))


@operation(
    "POST", "/costs", "admin", tag="reports", body=CostPayload,
    answers={200: (answers.CostRecorded, "The cost is recorded (or replaced).")},
)  # fmt: skip
def put_cost() -> Response:
    """Record what a source (or one campaign of it) cost in a month

    In the installation's currency; an amount in another currency needs its `rate`.
    The same source, campaign and month again replaces the amount.
    """
    cost = checked(CostPayload, _body())
    rt = runtime()
    currency = rt.settings.currency
    try:
        with rt.sessions.begin() as session:
            done = record(session, currency, cost.source, cost.month, str(cost.amount),
                          request_now(), cost.campaign, cost.currency,
                          None if cost.rate is None else str(cost.rate))  # fmt: skip
            answer = answers.CostRecorded(
                source=done.cost.source,
                campaign=done.cost.campaign or None,
                month=done.cost.month,
                amount=float(done.cost.amount),
                currency=currency,
                replaced=None if done.replaced is None else float(done.replaced),
            )
    except CostError as error:
        field, _, message = str(error).partition(": ")
        raise InvalidInput([FieldError(field, message)]) from None
    return _answer(answer)


@operation(
    "GET", "/leads/<path:lead>/decisions", "read", tag="leads", query=DecisionQuery,
    answers={200: (answers.Decisions, "The lead's story, oldest first.")},
)  # fmt: skip
def get_decisions(lead: str) -> Response:
    """Why the lead did (or didn't) get an email: every decision with its reason

    What `nurture leads why` prints: the decision log and the rows that tell a decision
    (enrollments, deliveries, promotions, stage changes), for the whole story or one
    sequence (and one of its steps).
    """
    asked = _query(DecisionQuery)
    if asked.step is not None and asked.sequence is None:
        raise InvalidInput([FieldError("query.step", "only with sequence: steps belong to one")])
    rt = runtime()
    with rt.sessions() as session:
        found = _find(session, lead)
        if found is None:
            return _unknown(lead)
        entries = sorted(story(session, found.id), key=lambda e: e.at)
        chosen = [e for e in entries if concerns(e, asked.sequence, asked.step)]
        answer = answers.Decisions(
            lead=found.public_id,
            decisions=[
                answers.DecisionEntry(
                    at=e.at, kind=e.kind, sequence=e.sequence_id, step=e.step_id, reason=e.reason
                )
                for e in chosen
            ],
            sentences=explain(entries, asked.sequence, asked.step),
        )
    return _answer(answer)
