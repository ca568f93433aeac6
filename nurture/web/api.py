"""The JSON API under /api/v1/: leads and their events, authenticated by API key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from nurture import idempotency
from nurture.apikeys import SCOPES, allows, check_key
from nurture.content import Content
from nurture.core.intake import (
    InvalidInput,
    normalise_email,
    parse_batch,
    parse_event,
    parse_feedback,
    parse_lead,
)
from nurture.evidence import record
from nurture.feedback import receive
from nurture.intake import take, take_many
from nurture.leads import find_lead
from nurture.models import (
    Consent,
    Delivery,
    Enrollment,
    Event,
    Lead,
    Promotion,
    StageChange,
)
from nurture.scores import explain
from nurture.web import request_now, runtime
from nurture.web.ratelimit import RateLimit

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")


def problem(
    status: int, code: str, message: str, fields: list[dict[str, str]] | None = None
) -> Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    return response


@blueprint.errorhandler(InvalidInput)
def _invalid(error: InvalidInput) -> Response:
    return problem(
        422,
        "invalid",
        "the request was refused; nothing was stored",
        [{"path": e.path, "message": e.message} for e in error.errors],
    )


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


# Which scope each endpoint needs, as declared by `authenticated`: the OpenAPI document
# is checked against it (tests/test_openapi.py).
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
            with runtime().sessions() as session:
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
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _too_many(seconds: int) -> Response:
    answer = problem(429, "too_many_failures", "too many wrong API keys from this address")
    answer.headers["Retry-After"] = str(seconds)
    return answer


def _body() -> Any:
    """The request's JSON, or a 400 saying what is wrong with it: the Content-Type, the
    syntax (where), a number JSON does not have (NaN, Infinity), or too deep a nesting."""
    if not request.is_json:
        raise _BadJson("expected a JSON body with Content-Type: application/json")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise _BadJson("the body is empty: expected a JSON document")
    try:
        return json.loads(raw, parse_constant=_not_a_number)
    except json.JSONDecodeError as error:
        raise _BadJson(
            f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except UnicodeDecodeError:
        raise _BadJson("the body is not UTF-8 text") from None
    except RecursionError:
        raise _BadJson("JSON nested too deeply") from None
    except ValueError as error:  # from parse_constant
        raise _BadJson(str(error)) from None


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number: send a finite number or null")


class _BadJson(Exception):
    pass


@blueprint.errorhandler(_BadJson)
def _bad_json(error: _BadJson) -> Response:
    return problem(400, "bad_json", str(error))


def lead_json(
    session: Session, lead: Lead, detail: bool = False, content: Content | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": lead.email,
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "company": lead.company,
        "job_title": lead.job_title,
        "company_size": lead.company_size,
        "country": lead.country,
        "timezone": lead.timezone,
        "locale": lead.locale,
        "source": lead.source,
        "campaign": lead.campaign,
        "stage": lead.stage,
        "score": lead.score,
        "grade": lead.grade,
        "tags": lead.tags,
        "fields": lead.fields,
        "unsubscribed": lead.unsubscribed_at is not None,
        "category": lead.category,
        "reasons": lead.reasons or [],
        "first_touch": lead.first_touch,
        "latest_touch": lead.latest_touch,
        "created_at": lead.created_at.isoformat(),
    }
    if detail:
        enrollments = session.scalars(
            select(Enrollment).where(Enrollment.lead_id == lead.id).order_by(Enrollment.id)
        )
        body["enrollments"] = [
            {
                "sequence": e.sequence_id,
                "version": e.version,
                "status": e.status,
                "step": e.step_id,
                "due_at": e.due_at.isoformat() if e.due_at else None,
                "note": e.note,
                "entered_at": e.entered_at.isoformat(),
                "exit_reason": e.exit_reason,
            }
            for e in enrollments
        ]
        timeline: list[dict[str, Any]] = []
        for event in session.scalars(
            select(Event)
            .where(Event.lead_id == lead.id)
            .order_by(Event.occurred_at.desc())
            .limit(100)
        ):
            timeline.append(
                {
                    "at": event.occurred_at.isoformat(),
                    "event": event.name,
                    "properties": event.properties,
                }
            )
        for d in session.scalars(
            select(Delivery)
            .where(Delivery.lead_id == lead.id)
            .order_by(Delivery.id.desc())
            .limit(100)
        ):
            timeline.append(
                {
                    "at": (d.sent_at or d.updated_at).isoformat(),
                    "delivery": d.status,
                    "sequence": d.sequence_id,
                    "step": d.step_id,
                    "subject": d.subject,
                }
            )
        body["timeline"] = sorted(timeline, key=lambda item: item["at"], reverse=True)
        if content is not None and content.scoring is not None:
            # "Why 72": every change behind the score, decayed to now, and the fit.
            body["score_explained"] = explain(session, content.scoring, lead, request_now())
        body["consents"] = [
            {
                "purpose": c.purpose,
                "granted": c.granted,
                "source": c.source,
                "text_version": c.text_version,
                "at": c.at.isoformat(),
            }
            for c in session.scalars(
                select(Consent).where(Consent.lead_id == lead.id).order_by(Consent.at)
            )
        ]
        body["stage_history"] = [
            {"from": c.from_stage, "to": c.to_stage, "at": c.at.isoformat(), "cause": c.cause}
            for c in session.scalars(
                select(StageChange).where(StageChange.lead_id == lead.id).order_by(StageChange.at)
            )
        ]
    return body


@blueprint.post("/leads")
@authenticated("intake")
def put_lead() -> Response:
    return idempotent(_put_lead)


def _put_lead() -> Response:
    rt = runtime()
    data = parse_lead(_body(), fold_subaddress=rt.settings.fold_subaddress)
    now = request_now()
    for attempt in range(3):
        try:
            with rt.sessions.begin() as session:
                lead, created = take(session, rt.content, rt.settings, data, now)
                body = lead_json(session, lead, detail=True, content=rt.content)
            break
        except IntegrityError:
            # The same person arrived twice at once: the other request created the
            # lead first, so this one now finds it and enriches it.
            if attempt == 2:
                raise
    response = jsonify(body)
    response.status_code = 201 if created else 200
    return response


BATCH_LIMIT = 1000


@blueprint.post("/leads/batch")
@authenticated("intake")
def put_leads() -> Response:
    return idempotent(_put_leads)


def _put_leads() -> Response:
    """All or nothing: one bad item refuses the batch, with its path (`leads[3].email`)."""
    rt = runtime()
    items = parse_batch(_body(), BATCH_LIMIT, rt.settings.fold_subaddress)
    now = request_now()
    for attempt in range(3):
        try:
            with rt.sessions.begin() as session:
                results = take_many(session, rt.content, rt.settings, items, now, "api")
                body = {
                    "created": sum(1 for _, created in results if created),
                    "updated": sum(1 for _, created in results if not created),
                    "results": [
                        {"email": lead.email, "created": created} for lead, created in results
                    ],
                }
            break
        except IntegrityError:  # a concurrent arrival of one of these people: go again
            if attempt == 2:
                raise
    return jsonify(body)


def idempotent(handler: Callable[[], Response]) -> Response:
    """Same Idempotency-Key and body: the same answer again; another body: 409. The key
    is reserved before the work starts (nurture/idempotency.py)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return handler()
    if not 1 <= len(key) <= 255 or not key.isprintable():
        return problem(400, "bad_idempotency_key", "Idempotency-Key: 1 to 255 printable characters")
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


def _lead_or_404(session: Session, email: str) -> Lead | None:
    try:
        return find_lead(session, normalise_email(email))
    except ValueError:
        return None


@blueprint.get("/leads/<path:email>")
@authenticated("read")
def get_lead(email: str) -> Response:
    with runtime().sessions() as session:
        lead = _lead_or_404(session, email)
        if lead is None:
            return problem(404, "not_found", f"no lead with email {email!r}")
        return jsonify(lead_json(session, lead, detail=True, content=runtime().content))


@blueprint.post("/leads/<path:email>/events")
@authenticated("events")
def post_event(email: str) -> Response:
    now = request_now()
    data = parse_event(_body(), now)
    rt = runtime()
    with rt.sessions.begin() as session:
        lead = _lead_or_404(session, email)
        if lead is None:
            return problem(404, "not_found", f"no lead with email {email!r}")
        _, entered = record(
            session,
            rt.content,
            rt.settings,
            lead,
            data.name,
            dict(data.properties),
            now,
            occurred_at=data.occurred_at,
        )
        body = {"recorded": data.name, "enrolled": [e.sequence_id for e in entered]}
    response = jsonify(body)
    response.status_code = 201
    return response


@blueprint.post("/promotions/<int:promotion_id>/feedback")
@authenticated("sales")
def sales_feedback(promotion_id: int) -> Response:
    """The CRM's answer: accepted, rejected (reason), opportunity (amount), won, lost."""
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
    return jsonify(
        promotion=result.promotion_id,
        status=result.status,
        replay=result.replay,
        recycled_into=result.recycled_into,
    )
