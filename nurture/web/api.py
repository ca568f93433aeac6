"""The JSON API under /api/v1/: leads and their events, authenticated by API key.

Each route is declared once, with `operation`: its URL, the scope its key needs, the
body it takes and the answers it gives (models in nurture/core/payloads.py and
nurture/web/answers.py). nurture/web/openapi.py builds the OpenAPI document from
these declarations, so the document says what the routes do.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from nurture import idempotency
from nurture.apikeys import SCOPES, allows, check_key, mark_used
from nurture.content import Content
from nurture.core.intake import (
    InvalidInput,
    normalise_email,
    parse_batch,
    parse_event,
    parse_feedback,
    parse_lead,
    parse_lookup,
)
from nurture.core.payloads import (
    MAX_BODY,
    BatchPayload,
    EventPayload,
    FeedbackPayload,
    LeadPayload,
    LookupPayload,
)
from nurture.evidence import record
from nurture.feedback import receive
from nurture.identifiers import is_lead_id
from nurture.intake import take
from nurture.intake_batch import take_batch
from nurture.leads import find_lead
from nurture.models import Lead, Promotion
from nurture.web import answers, request_now, runtime
from nurture.web.ratelimit import RateLimit

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")


@blueprint.before_request
def _body_limit() -> None:
    request.max_content_length = MAX_BODY  # beyond it, 413 before the body is read


def _answer(answer: BaseModel, status: int = 200) -> Response:
    response = jsonify(answers.dumped(answer))
    response.status_code = status
    return response


def problem(status: int, code: str, message: str) -> Response:
    return _answer(answers.Error(error=answers.ErrorDetail(code=code, message=message)), status)


@blueprint.errorhandler(InvalidInput)
def _invalid(error: InvalidInput) -> Response:
    detail = answers.InvalidDetail(
        code="invalid",
        message="the request was refused; nothing was stored",
        fields=[answers.FieldProblem(path=e.path, message=e.message) for e in error.errors],
    )
    return _answer(answers.InvalidError(error=detail), 422)


@blueprint.errorhandler(HTTPException)
def _http(error: HTTPException) -> Response:
    return problem(
        error.code or 500,
        (error.name or "error").lower().replace(" ", "_"),
        error.description or "",
    )


# Wrong keys from one address: after this many in the window, 429 until it passes
# (a key is 256 random bits; this stops noise, and shows who is guessing).
FAILURES_ALLOWED = 10
FAILURES_WINDOW = timedelta(minutes=1)


def _failures() -> RateLimit:
    """This app's count of wrong keys per address."""
    found: RateLimit = current_app.extensions.setdefault(
        "nurture.auth_failures", RateLimit(count=FAILURES_ALLOWED, window=FAILURES_WINDOW)
    )
    return found


# Which scope each endpoint needs, as declared by `authenticated`.
SCOPE_OF: dict[str, str] = {}


def authenticated(scope: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """The route needs an API key holding `scope` (or `admin`)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        SCOPE_OF[f"api.{view.__name__}"] = scope

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            address, now, failures = request.remote_addr or "", request_now(), _failures()
            if failures.exceeded(address, now):
                return _too_many(failures.retry_after(address, now))
            header = request.headers.get("Authorization", "")
            kind, _, presented = header.partition(" ")
            if kind.lower() != "bearer" or not presented:
                return problem(401, "unauthorized", "send Authorization: Bearer <API key>")
            with runtime().sessions.begin() as session:
                key = check_key(session, presented.strip())
                if key is None:
                    failures.allow(address, now)  # counts the failure
                    return problem(401, "unauthorized", "unknown or revoked API key")
                if not allows(key, scope):
                    return problem(
                        403,
                        "insufficient_scope",
                        f"this API key may not do this: it needs the `{scope}` scope"
                        f" (it has {key.scopes.replace(',', ', ')})",
                    )
                g.api_key_id = key.id
                mark_used(session, key.id, now)
            return view(*args, **kwargs)

        return wrapper

    return decorate


@dataclass(frozen=True)
class Operation:
    """One route, as the OpenAPI document describes it."""

    method: str
    rule: str  # as Flask writes it, under the blueprint's prefix
    endpoint: str
    scope: str
    tag: str
    summary: str
    description: str
    body: type[BaseModel] | None
    answers: Mapping[int, tuple[type[BaseModel], str]]  # status: (model, when)
    idempotent: bool  # takes an Idempotency-Key
    may_find_nothing: bool  # answers 404 when the lead (or promotion) is unknown
    query: type[BaseModel] | None = None  # the query string's parameters, if any


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    rule: str,
    scope: str,
    *,
    tag: str,
    answers: Mapping[int, tuple[type[BaseModel], str]],
    body: type[BaseModel] | None = None,
    idempotent: bool = False,
    may_find_nothing: bool = False,
    query: type[BaseModel] | None = None,
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Declare a route: registered on the blueprint behind `authenticated(scope)`, and
    described in the OpenAPI document (summary and description from its docstring)."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        summary, _, description = inspect.cleandoc(view.__doc__ or "").partition("\n\n")
        OPERATIONS.append(
            Operation(
                method=method,
                rule=rule,
                endpoint=f"{blueprint.name}.{view.__name__}",
                scope=scope,
                tag=tag,
                summary=summary.replace("\n", " "),
                description=description.replace("\n", " "),
                body=body,
                answers=answers,
                idempotent=idempotent,
                may_find_nothing=may_find_nothing or "<" in rule,
                query=query,
            )
        )
        guarded = authenticated(scope)(view)
        blueprint.add_url_rule(rule, view.__name__, guarded, methods=[method])
        return guarded

    return decorate


def _too_many(seconds: int) -> Response:
    answer = problem(429, "too_many_failures", "too many wrong API keys from this address")
    answer.headers["Retry-After"] = str(seconds)
    return answer


# Deeper than any payload format allows (nurture/core/payloads.py). The JSON parser
# recurses, so a body nested thousands deep would exhaust the stack: values deeper than
# this are cut (to null) before parsing, and the payload checks then refuse the nesting
# with its path, as they do for any nesting beyond their limits.
PARSED_DEPTH = 64
# A string (to its end when never closed: so no match is ever retried from inside one,
# and the scan stays linear), or a bracket.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def _body() -> Any:
    """The request's JSON, or a 400 saying what is wrong with it: the Content-Type, the
    syntax (where), or a number JSON does not have (NaN, Infinity)."""
    if not request.is_json:
        raise _BadJson("expected a JSON body with Content-Type: application/json")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise _BadJson("the body is empty: expected a JSON document")
    try:
        try:
            return json.loads(raw, parse_constant=_not_a_number)
        except RecursionError:
            return json.loads(
                _cut_deeper_than(raw.decode(), PARSED_DEPTH), parse_constant=_not_a_number
            )
    except json.JSONDecodeError as error:
        raise _BadJson(
            f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except UnicodeDecodeError:
        raise _BadJson("the body is not UTF-8 text") from None
    except RecursionError:  # still too deep: the nesting was never closed
        raise _BadJson("JSON nested too deeply") from None
    except ValueError as error:  # from parse_constant, or an integer of 4,300 digits
        raise _BadJson(str(error)) from None


def _cut_deeper_than(text: str, depth: int) -> str:
    """`text` with each object or array that starts deeper than `depth` replaced by
    null, found without parsing (so without recursion)."""
    kept: list[str] = []
    level, cut_from, copied_to = 0, 0, 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            level += 1
            if level == depth + 1:
                cut_from = match.start()
        elif token in ("]", "}"):
            if level == depth + 1:
                kept += [text[copied_to:cut_from], "null"]
                copied_to = match.end()
            level -= 1
    kept.append(text[copied_to:])
    return "".join(kept)


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number: send a finite number or null")


class _BadJson(Exception):
    pass


@blueprint.errorhandler(_BadJson)
def _bad_json(error: _BadJson) -> Response:
    return problem(400, "bad_json", str(error))


def lead_json(
    session: Session, lead: Lead, detail: bool = True, content: Content | None = None
) -> dict[str, Any]:
    """The lead as the API answers it; without `detail`, without its enrollments,
    timeline, score explained, consents and stage history."""
    body = answers.dumped(answers.lead(session, lead, content, request_now()))
    if not detail:
        for key in ("enrollments", "timeline", "score_explained", "consents", "stage_history"):
            body.pop(key, None)
    return body


CREATED_OR_UPDATED = {
    200: (answers.Lead, "The lead was known and is updated."),
    201: (answers.Lead, "The lead was created."),
}


@operation(
    "POST", "/leads", "intake", tag="leads", body=LeadPayload, answers=CREATED_OR_UPDATED,
    idempotent=True,
)  # fmt: skip
def put_lead() -> Response:
    """Create or update a lead by email

    Never blanks known fields; enrols on lead_created, tag_added and stage_reached. The
    answer is the whole lead, with its `id` for later requests.
    """
    return idempotent(_put_lead)


def _put_lead() -> Response:
    rt = runtime()
    data = parse_lead(_body(), fold_subaddress=rt.settings.fold_subaddress)
    now = request_now()
    for attempt in range(3):
        try:
            with rt.sessions.begin() as session:
                lead, created = take(session, rt.content, rt.settings, data, now)
                answer = answers.lead(session, lead, rt.content, now)
            break
        except IntegrityError:
            # The same person arrived twice at once: the other request created the
            # lead first, so this one now finds it and enriches it.
            if attempt == 2:
                raise
    return _answer(answer, 201 if created else 200)


@operation(
    "POST", "/leads/batch", "intake", tag="leads", body=BatchPayload,
    answers={200: (answers.BatchResult, "Every lead was stored.")}, idempotent=True,
)  # fmt: skip
def put_leads() -> Response:
    """Create or update many leads, all or nothing

    One refused item refuses the batch, with its path (`leads[3].email`), and nothing
    is stored. The same email twice in a batch is one lead.
    """
    return idempotent(_put_leads)


def _put_leads() -> Response:
    rt = runtime()
    items = parse_batch(_body(), rt.settings.fold_subaddress)
    now = request_now()
    for attempt in range(3):
        try:
            with rt.sessions.begin() as session:
                results = take_batch(session, rt.content, rt.settings, items, now, "api")
                answer = answers.BatchResult(
                    created=sum(1 for taken in results if taken.created),
                    updated=sum(1 for taken in results if not taken.created),
                    results=[
                        answers.BatchItem(id=t.public_id, email=t.email, created=t.created)
                        for t in results
                    ],
                )
            break
        except IntegrityError:  # a concurrent arrival of one of these people: go again
            if attempt == 2:
                raise
    return _answer(answer)


IDEMPOTENCY_KEY_LENGTH = 255


def idempotent(handler: Callable[[], Response]) -> Response:
    """Same Idempotency-Key and body: the same answer again; another body: 409. The key
    is reserved before the work starts (nurture/idempotency.py)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return handler()
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        return problem(
            400,
            "bad_idempotency_key",
            f"Idempotency-Key: 1 to {IDEMPOTENCY_KEY_LENGTH} printable characters",
        )
    digest = hashlib.sha256(request.get_data()).hexdigest()
    rt = runtime()
    claim = idempotency.reserve(rt.sessions, g.api_key_id, key, digest, request_now())
    if isinstance(claim, idempotency.Found):
        return _replayed(claim, digest)
    try:
        response = handler()
    except BaseException:
        idempotency.release(rt.sessions, claim)
        raise
    if response.status_code >= 500:
        idempotency.release(rt.sessions, claim)  # a failure may be retried for real
        return response
    idempotency.finish(rt.sessions, claim, response.status_code, response.get_json())
    return response


def _replayed(found: idempotency.Found, digest: str) -> Response:
    if found.request_hash != digest:
        return problem(
            409,
            "idempotency_conflict",
            "this Idempotency-Key was used with another request body",
        )
    if found.in_progress:
        answer = problem(
            409,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is being processed: ask again shortly",
        )
        answer.headers["Retry-After"] = "1"
        return answer
    response = jsonify(found.body)
    response.status_code = found.status
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _find(session: Session, lead: str) -> Lead | None:
    """The lead named in a URL: by its id, or (deprecated) by its address."""
    if is_lead_id(lead):
        return session.scalar(select(Lead).where(Lead.public_id == lead))
    try:
        return find_lead(session, normalise_email(lead, runtime().settings.fold_subaddress))
    except ValueError:
        return None


def _unknown(lead: str) -> Response:
    if is_lead_id(lead):
        return problem(404, "not_found", f"no lead {lead}")
    return problem(404, "not_found", "no lead with this email address")


@operation(
    "POST", "/leads/lookup", "read", tag="leads", body=LookupPayload,
    answers={200: (answers.Lead, "The lead.")}, may_find_nothing=True,
)  # fmt: skip
def lookup_lead() -> Response:
    """Find a lead by email address

    The address travels in the body, so it never lands in an access log. The answer
    carries the lead's `id` for the URLs of later requests.
    """
    rt = runtime()
    email = parse_lookup(_body(), rt.settings.fold_subaddress)
    with rt.sessions() as session:
        lead = find_lead(session, email)
        if lead is None:
            return problem(404, "not_found", "no lead with this email address")
        return _answer(answers.lead(session, lead, rt.content, request_now()))


@operation(
    "GET", "/leads/<path:lead>", "read", tag="leads",
    answers={200: (answers.Lead, "The lead.")},
)  # fmt: skip
def get_lead(lead: str) -> Response:
    """A lead with its enrollments, timeline, score, stages and consents"""
    rt = runtime()
    with rt.sessions() as session:
        found = _find(session, lead)
        if found is None:
            return _unknown(lead)
        return _answer(answers.lead(session, found, rt.content, request_now()))


@operation(
    "POST", "/leads/<path:lead>/events", "events", tag="events", body=EventPayload,
    answers={201: (answers.EventResult, "The event was recorded.")},
)  # fmt: skip
def record_event(lead: str) -> Response:
    """Record an event for a lead

    Enrols, exits on goals, wakes waits, scores. email_clicked and email_opened with
    properties.message_id are tied to their delivery.
    """
    now = request_now()
    data = parse_event(_body(), now)
    rt = runtime()
    with rt.sessions.begin() as session:
        found = _find(session, lead)
        if found is None:
            return _unknown(lead)
        _, entered = record(
            session,
            rt.content,
            rt.settings,
            found,
            data.name,
            dict(data.properties),
            now,
            occurred_at=data.occurred_at,
        )
        answer = answers.EventResult(recorded=data.name, enrolled=[e.sequence_id for e in entered])
    return _answer(answer, 201)


@operation(
    "POST", "/promotions/<int:promotion_id>/feedback", "sales", tag="sales",
    body=FeedbackPayload,
    answers={200: (answers.FeedbackResult, "The answer was taken (or replayed).")},
)  # fmt: skip
def post_feedback(promotion_id: int) -> Response:
    """The CRM's answer about a promoted lead (replay-safe)

    Accepted, rejected (with a reason), opportunity (with an amount), won or lost.
    """
    now = request_now()
    answer, recycle = parse_feedback(_body(), now)
    rt = runtime()
    if promotion_id > 2**31 - 1:  # beyond any id the database hands out
        return problem(404, "not_found", f"no promotion {promotion_id}")
    with rt.sessions.begin() as session:
        if session.get(Promotion, promotion_id) is None:
            return problem(404, "not_found", f"no promotion {promotion_id}")
        result = receive(
            session,
            rt.content,
            promotion_id,
            answer,
            now,
            recycle_sequence=recycle or rt.settings.recycle_sequence,
        )
    return _answer(
        answers.FeedbackResult(
            promotion=result.promotion_id,
            status=result.status,
            replay=result.replay,
            recycled_into=result.recycled_into,
        )
    )
