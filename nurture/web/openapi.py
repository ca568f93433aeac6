"""The OpenAPI 3.1 document of the JSON API, and the route that serves it.

Enumerations come from the code that enforces them (stages, grades, categories, sales
statuses, touch keys, the event name pattern, the batch size), so the document follows
the code; tests/test_openapi.py checks the rest (fields, text limits, answers) against
the running app.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify

from nurture import __version__
from nurture.core.intake import EVENT_NAME, MAX_SIZE, TOUCH_KEYS
from nurture.core.qualification import CATEGORIES
from nurture.core.sales import STATUSES
from nurture.core.scoring import GRADES
from nurture.core.sequences import STAGES
from nurture.web.api import BATCH_LIMIT

blueprint = Blueprint("openapi", __name__, url_prefix="/api/v1")

Schema = dict[str, Any]

MAX_BODY = 1024 * 1024  # app.config["MAX_CONTENT_LENGTH"]
NO_CONTROL = "^[^\\x00-\\x1f\\x7f]*$"
TEXT_LIMITS = {  # the lengths nurture.core.intake allows, after trimming spaces
    "first_name": 200,
    "last_name": 200,
    "company": 300,
    "job_title": 300,
    "source": 100,
    "campaign": 200,
}
REP_LIMITS = {"name": 200, "email": 320, "phone": 50}  # as the columns hold them
DELIVERY_STATUSES = ("claimed", "sending", "sent", "retry", "failed", "uncertain", "skipped")
ENROLLMENT_STATUSES = ("active", "completed", "exited")


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(limit: int, description: str) -> Schema:
    """Optional text as the intake takes it: null or "" mean "not given"."""
    return {
        "type": ["string", "null"],
        "maxLength": limit,
        "pattern": NO_CONTROL,
        "description": description,
    }


def _maybe(schema: Schema) -> Schema:
    """`schema` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def _closed(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _every(properties: dict[str, Schema]) -> Schema:
    """A response object: every property always present, nothing else."""
    return _closed(properties, tuple(properties))


TIME: Schema = {"type": "string", "format": "date-time"}
STRING: Schema = {"type": "string"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
STAGE: Schema = {"type": "string", "enum": list(STAGES)}


def _lead_input() -> Schema:
    text = {
        name: _text(limit, f"at most {limit} characters") for name, limit in TEXT_LIMITS.items()
    }
    return {
        **_closed(
            {
                "email": {
                    "type": "string",
                    "format": "email",
                    "maxLength": 254,
                    "description": "The lead's address: its identity. Spaces around it are "
                    "trimmed; it is stored lower-cased.",
                },
                **text,
                "company_size": {
                    "anyOf": [
                        {"type": "integer", "minimum": 0, "maximum": MAX_SIZE},
                        {"type": "string", "pattern": "^[0-9]{1,9}$"},
                        {"type": "null"},
                    ],
                    "description": f"Employees: a whole number from 0 to {MAX_SIZE}, or the "
                    "same as a string of digits.",
                },
                "country": {
                    "type": ["string", "null"],
                    "pattern": "^[A-Za-z]{2}$",
                    "description": "ISO 3166-1 alpha-2 code; stored upper-cased.",
                },
                "timezone": _text(64, "An IANA timezone such as Europe/Paris."),
                "locale": {
                    "type": ["string", "null"],
                    "maxLength": 16,
                    "pattern": "^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$",
                    "description": "A language tag such as fr or fr-CA; stored lower-cased.",
                },
                "stage": {"type": ["string", "null"], "enum": [*STAGES, None]},
                "tags": {
                    "type": ["array", "null"],
                    "items": {"type": "string", "pattern": "\\S"},
                    "description": "Added to the lead's tags; tags are never removed here.",
                },
                "fields": {
                    "type": ["object", "null"],
                    "additionalProperties": {
                        "type": ["string", "number", "boolean", "null"],
                        "pattern": NO_CONTROL,
                    },
                    "description": "Custom fields, merged into the known ones; scalars only.",
                },
                "rep": _maybe(
                    _closed(
                        {key: _text(limit, f"the rep's {key}") for key, limit in REP_LIMITS.items()}
                    )
                ),
                "consent": _maybe(
                    _closed(
                        {
                            "purpose": {
                                **_text(50, "What the consent is for."),
                                "default": "marketing",
                            },
                            "granted": {"type": "boolean"},
                            "text_version": _text(100, "The version of the consent text shown."),
                            "source": _text(100, "Where it was given; defaults to api."),
                        },
                        required=("granted",),
                    )
                ),
                "touch": _maybe(
                    _closed({key: _text(200, f"attribution: {key}") for key in TOUCH_KEYS})
                ),
            },
            required=("email",),
        ),
        "description": "Known values only: a field absent, null or empty never blanks what is "
        "stored. Unknown fields are refused.",
        "example": {
            "email": "claire@atelier-martin.example",
            "first_name": "Claire",
            "company": "Atelier Martin",
            "company_size": 240,
            "country": "FR",
            "locale": "fr",
            "tags": ["webinar-2026"],
            "consent": {"purpose": "marketing", "granted": True, "text_version": "2026-01"},
            "touch": {"channel": "paid_search", "utm_source": "google", "utm_medium": "cpc"},
        },
    }


def _lead() -> Schema:
    touch = _maybe(
        _closed(
            {**{key: STRING for key in TOUCH_KEYS}, "at": TIME},
            required=("at",),
        )
    )
    timeline_event = _every({"at": TIME, "event": STRING, "properties": {"type": "object"}})
    timeline_delivery = _every(
        {
            "at": TIME,
            "delivery": {"type": "string", "enum": list(DELIVERY_STATUSES)},
            "sequence": STRING,
            "step": STRING,
            "subject": NULLABLE_STRING,
        }
    )
    schema = _every(
        {
            "email": STRING,
            **{name: NULLABLE_STRING for name in TEXT_LIMITS},
            "company_size": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SIZE},
            "country": {"type": ["string", "null"], "pattern": "^[A-Z]{2}$"},
            "timezone": NULLABLE_STRING,
            "locale": NULLABLE_STRING,
            "stage": STAGE,
            "score": {"type": "integer"},
            "grade": {"type": ["string", "null"], "enum": [*GRADES, None]},
            "tags": {"type": "array", "items": STRING},
            "fields": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
            "unsubscribed": {"type": "boolean"},
            "category": {
                "type": ["string", "null"],
                "enum": [*CATEGORIES, None],
                "description": "The qualification's verdict; null before any.",
            },
            "reasons": {
                "type": "array",
                "items": _every({"code": STRING, "message": STRING}),
                "description": "Why the lead is in its category.",
            },
            "first_touch": touch,
            "latest_touch": touch,
            "created_at": TIME,
            "enrollments": {
                "type": "array",
                "items": _every(
                    {
                        "sequence": STRING,
                        "version": STRING,
                        "status": {"type": "string", "enum": list(ENROLLMENT_STATUSES)},
                        "step": STRING,
                        "due_at": {"type": ["string", "null"], "format": "date-time"},
                        "note": NULLABLE_STRING,
                        "entered_at": TIME,
                        "exit_reason": NULLABLE_STRING,
                    }
                ),
            },
            "timeline": {
                "type": "array",
                "items": {"oneOf": [timeline_event, timeline_delivery]},
                "description": "The latest 100 events and 100 deliveries, newest first.",
            },
            "score_explained": {
                "type": "array",
                "items": STRING,
                "description": 'Why the score and grade ("why 72"): one line per change and '
                "per fit rule. Absent when no scoring file is configured.",
            },
            "consents": {
                "type": "array",
                "items": _every(
                    {
                        "purpose": STRING,
                        "granted": {"type": "boolean"},
                        "source": STRING,
                        "text_version": NULLABLE_STRING,
                        "at": TIME,
                    }
                ),
                "description": "Every consent decision, oldest first; the latest per purpose "
                "stands.",
            },
            "stage_history": {
                "type": "array",
                "items": _every({"from": STAGE, "to": STAGE, "at": TIME, "cause": STRING}),
            },
        }
    )
    schema["required"].remove("score_explained")
    return schema


def _error(with_fields: bool) -> Schema:
    field = _every({"path": STRING, "message": STRING})
    fields: Schema = {
        "type": "array",
        "items": field,
        "description": 'Every refused field: `email`, `fields.industry`, `leads[3].email`; "$" '
        "is the body itself.",
    }
    if with_fields:
        fields["minItems"] = 1
    inner = _closed(
        {"code": STRING, "message": STRING, "fields": fields},
        required=("code", "message", "fields") if with_fields else ("code", "message"),
    )
    return _every({"error": inner})


def _schemas() -> dict[str, Schema]:
    return {
        "LeadInput": _lead_input(),
        "LeadBatch": {
            **_closed(
                {
                    "leads": {
                        "type": "array",
                        "items": _ref("LeadInput"),
                        "minItems": 1,
                        "maxItems": BATCH_LIMIT,
                    }
                },
                required=("leads",),
            ),
            "description": "All or nothing: one refused item refuses the batch, nothing is "
            "stored. The same email twice in a batch is one lead.",
        },
        "EventInput": {
            **_closed(
                {
                    "name": {"type": "string", "pattern": f"^(?:{EVENT_NAME.pattern})$"},
                    "properties": {"type": ["object", "null"]},
                    "occurred_at": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "ISO 8601 with an offset, not in the future; "
                        "defaults to the time of the request.",
                    },
                    "email": {"description": "Accepted and ignored: the path names the lead."},
                },
                required=("name",),
            ),
            "example": {
                "name": "form_submitted",
                "properties": {"form": "whitepaper-planning-roi"},
            },
        },
        "FeedbackInput": {
            **_closed(
                {
                    "status": {"type": "string", "enum": list(STATUSES)},
                    "amount": {"type": ["number", "null"], "minimum": 0},
                    "reason": _text(500, "Why (rejected, lost)."),
                    "occurred_at": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "ISO 8601 with an offset; defaults to now.",
                    },
                    "external_id": _text(
                        200, "Makes replays harmless; defaults to the status and occurred_at."
                    ),
                    "sequence": _text(100, "The nurture sequence a rejected lead enters."),
                },
                required=("status",),
            ),
            "example": {
                "status": "won",
                "amount": 36000,
                "external_id": "deal-4411-won",
                "occurred_at": "2026-04-02T10:00:00Z",
            },
        },
        "Lead": _lead(),
        "BatchResult": _every(
            {
                "created": {"type": "integer", "minimum": 0},
                "updated": {"type": "integer", "minimum": 0},
                "results": {
                    "type": "array",
                    "items": _every({"email": STRING, "created": {"type": "boolean"}}),
                    "description": "One per item, in the order sent.",
                },
            }
        ),
        "EventResult": _every(
            {
                "recorded": STRING,
                "enrolled": {
                    "type": "array",
                    "items": STRING,
                    "description": "The sequences the event made the lead enter.",
                },
            }
        ),
        "FeedbackResult": _every(
            {
                "promotion": {"type": "integer"},
                "status": {"type": "string", "enum": ["pending", *STATUSES]},
                "replay": {
                    "type": "boolean",
                    "description": "This exact answer had been received before.",
                },
                "recycled_into": {
                    "type": ["string", "null"],
                    "description": "The sequence a recycled lead entered, if any.",
                },
            }
        ),
        "Error": _error(with_fields=False),
        "InvalidError": _error(with_fields=True),
    }


def _json(schema: Schema, description: str, **extra: Any) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _problem(description: str) -> Schema:
    return _json(_ref("Error"), description)


REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this answer is the stored one for a repeated Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _responses() -> dict[str, Schema]:
    return {
        "BadRequest": _problem(
            "The body is not JSON (`bad_json`), or the Idempotency-Key header is not 1 to "
            "255 printable characters (`bad_idempotency_key`)."
        ),
        "Unauthorized": _problem(
            "No `Authorization: Bearer <API key>`, or the key is unknown or revoked."
        ),
        "NotFound": _problem("No such lead or promotion."),
        "Forbidden": _problem(
            "The API key lacks the scope this operation needs (`insufficient_scope`)."
        ),
        "TooManyFailures": _problem(
            "Too many wrong API keys from this address (`too_many_failures`): wait"
            " `Retry-After` seconds."
        ),
        "Conflict": _problem(
            "This Idempotency-Key was used with another request body (`idempotency_conflict`),"
            " or a request with it is still at work (`idempotency_in_progress`, with"
            " `Retry-After`)."
        ),
        "TooLarge": _problem("The body is over 1 MiB (`request_entity_too_large`)."),
        "Invalid": _json(
            _ref("InvalidError"),
            "The input was refused; every problem is listed with its field path and "
            "nothing was stored.",
        ),
    }


def _body(schema: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


ERRORS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    429: "TooManyFailures",
    404: "NotFound",
    409: "Conflict",
    413: "TooLarge",
    422: "Invalid",
}


def _errors(*codes: int) -> dict[str, Schema]:
    return {str(code): {"$ref": f"#/components/responses/{ERRORS[code]}"} for code in codes}


def _paths() -> dict[str, Schema]:
    email = {
        "name": "email",
        "in": "path",
        "required": True,
        "description": "The lead's email address (matched case-insensitively).",
        "schema": {"type": "string", "minLength": 1},
        "example": "claire@atelier-martin.example",
    }
    idempotency = {"$ref": "#/components/parameters/IdempotencyKey"}
    return {
        "/api/v1/leads": {
            "post": {
                "operationId": "putLead",
                "security": [{"apiKey": ["intake"]}],
                "summary": "Create or update a lead by email",
                "description": "Never blanks known fields; enrols on lead_created, tag_added "
                "and stage_reached.",
                "tags": ["leads"],
                "parameters": [idempotency],
                "requestBody": _body("LeadInput"),
                "responses": {
                    "200": _json(
                        _ref("Lead"), "The lead was known and is updated.", headers=REPLAYED
                    ),
                    "201": _json(_ref("Lead"), "The lead was created.", headers=REPLAYED),
                    **_errors(400, 401, 403, 409, 413, 422, 429),
                },
            }
        },
        "/api/v1/leads/batch": {
            "post": {
                "operationId": "putLeads",
                "security": [{"apiKey": ["intake"]}],
                "summary": f"Create or update up to {BATCH_LIMIT} leads, all or nothing",
                "tags": ["leads"],
                "parameters": [idempotency],
                "requestBody": _body("LeadBatch"),
                "responses": {
                    "200": _json(_ref("BatchResult"), "Every lead was stored.", headers=REPLAYED),
                    **_errors(400, 401, 403, 409, 413, 422, 429),
                },
            }
        },
        "/api/v1/leads/{email}": {
            "get": {
                "operationId": "getLead",
                "security": [{"apiKey": ["read"]}],
                "summary": "A lead with its enrollments, timeline, score, stages and consents",
                "tags": ["leads"],
                "parameters": [email],
                "responses": {
                    "200": _json(_ref("Lead"), "The lead."),
                    **_errors(401, 403, 404, 429),
                },
            }
        },
        "/api/v1/leads/{email}/events": {
            "post": {
                "operationId": "recordEvent",
                "security": [{"apiKey": ["events"]}],
                "summary": "Record an event for a lead",
                "description": "Enrols, exits on goals, wakes waits, scores. email_clicked and "
                "email_opened with properties.message_id are tied to their delivery.",
                "tags": ["events"],
                "parameters": [email],
                "requestBody": _body("EventInput"),
                "responses": {
                    "201": _json(_ref("EventResult"), "The event was recorded."),
                    **_errors(400, 401, 403, 404, 413, 422, 429),
                },
            }
        },
        "/api/v1/promotions/{promotion_id}/feedback": {
            "post": {
                "operationId": "postFeedback",
                "security": [{"apiKey": ["sales"]}],
                "summary": "The CRM's answer about a promoted lead (replay-safe)",
                "tags": ["sales"],
                "parameters": [
                    {
                        "name": "promotion_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                        "example": 1,
                    }
                ],
                "requestBody": _body("FeedbackInput"),
                "responses": {
                    "200": _json(_ref("FeedbackResult"), "The answer was taken (or replayed)."),
                    **_errors(400, 401, 403, 404, 413, 422, 429),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["openapi", "info", "paths"]},
                        "The OpenAPI 3.1 document of the JSON API.",
                    )
                },
            }
        },
    }


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document, built once."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nurture",
            "version": __version__,
            "summary": "Leads, their events and the CRM's answers.",
            "description": "Every operation but this document needs "
            "`Authorization: Bearer <API key>` (`nurture keys create NAME`). Bodies are JSON, "
            f"at most {MAX_BODY} bytes. A refused request stores nothing and lists every "
            "field path with what was expected.",
        },
        "security": [{"apiKey": []}],
        "tags": [
            {"name": "leads"},
            {"name": "events"},
            {"name": "sales"},
            {"name": "meta"},
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "nk_<prefix>.<secret>",
                    "description": "An API key from `nurture keys create NAME [--scope S]`."
                    " Each operation names the scope it needs (`intake`, `events`, `read`,"
                    " `sales`; `admin` may do everything); without it, 403.",
                }
            },
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "The same key and body give the same answer again (with "
                    "`Idempotent-Replayed: true`); the same key with another body gives 409. "
                    "Keys belong to the API key that sent them.",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "pattern": "^[!-~]([ -~]*[!-~])?$",
                    },
                }
            },
            "schemas": _schemas(),
            "responses": _responses(),
        },
    }


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())
