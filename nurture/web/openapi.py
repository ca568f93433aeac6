"""The OpenAPI 3.1 document of the JSON API, generated, and the route that serves it.

The schemas are the JSON Schema pydantic derives from the payload models (validation
mode: what a request may hold) and the answer models (serialization mode: what an
answer holds). Paths, parameters, scopes and error answers come from the routes'
declarations (`api.OPERATIONS`). No limit or field is written here.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from nurture import __version__
from nurture.core.payloads import MAX_BODY
from nurture.core.reports import REPORTS
from nurture.identifiers import LEAD_ID
from nurture.web import accounts, answers, reporting
from nurture.web.api import IDEMPOTENCY_KEY_LENGTH, OPERATIONS, Operation

assert reporting and accounts  # their operations are declared when they are imported

blueprint = Blueprint("openapi", __name__, url_prefix="/api/v1")

Schema = dict[str, Any]
PREFIX = "/api/v1"
SCHEMAS = "#/components/schemas/{model}"
EXAMPLE_LEAD_ID = "ld_2Xb7QmV9cPz4RkT1wYhA"


class _Schemas(GenerateJsonSchema):
    """pydantic's JSON Schema, without the titles it makes up from field names."""

    def field_title_should_be_set(self, schema: core_schema.CoreSchema) -> bool:
        return False


PARAMETERS: dict[str, Schema] = {
    "lead": {
        "description": "The lead's `id` (`ld_` and 20 characters), as every lead answer gives"
        " it. A lead's email address is still accepted here, but deprecated: a URL lands in"
        " access logs, an address is personal data. Find a lead by address with"
        " `POST /api/v1/leads/lookup`.",
        "schema": {
            "anyOf": [
                {"type": "string", "pattern": LEAD_ID.pattern},
                {
                    "type": "string",
                    "minLength": 1,
                    "deprecated": True,
                    "description": "Deprecated: the lead's email address (matched "
                    "case-insensitively).",
                },
            ]
        },
        "example": EXAMPLE_LEAD_ID,
    },
    "name": {
        "description": "Which report.",
        "schema": {
            "type": "string",
            "enum": list(REPORTS),
        },
        "example": "funnel",
    },
    "account": {
        "description": "The account's number, its domain (an address or a sub-domain of it"
        " finds it too) or its company id.",
        "schema": {"type": "string", "minLength": 1},
        "example": "atelier-martin.example",
    },
    "promotion_id": {
        "description": "The promotion's number, as the CRM push carried it.",
        "schema": {"type": "integer", "minimum": 0},
        "example": 1,
    },
}

ERRORS: dict[int, tuple[str, str]] = {  # status: (component, when)
    400: (
        "BadRequest",
        "The body is not JSON (`bad_json`), or the Idempotency-Key header is not 1 to "
        f"{IDEMPOTENCY_KEY_LENGTH} printable characters (`bad_idempotency_key`).",
    ),
    401: (
        "Unauthorized",
        "No `Authorization: Bearer <API key>`, or the key is unknown or revoked.",
    ),
    403: ("Forbidden", "The API key lacks the scope this operation needs (`insufficient_scope`)."),
    404: ("NotFound", "No such lead or promotion (`not_found`)."),
    409: (
        "Conflict",
        "This Idempotency-Key was used with another request body (`idempotency_conflict`), or"
        " a request with it is still at work (`idempotency_in_progress`, with `Retry-After`).",
    ),
    413: ("TooLarge", f"The body is over {MAX_BODY:,} bytes (`request_entity_too_large`)."),
    422: (
        "Invalid",
        "The input was refused (`invalid`); every problem is listed with its field path and "
        "nothing was stored.",
    ),
    429: (
        "TooManyFailures",
        "Too many wrong API keys from this address (`too_many_failures`): wait `Retry-After`"
        " seconds.",
    ),
}

REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this answer is the stored one for a repeated Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _ref(model: type[BaseModel]) -> Schema:
    return {"$ref": SCHEMAS.format(model=model.__name__)}


def _json(schema: Schema, description: str, **extra: Any) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def path_of(operation: Operation) -> str:
    """The operation's path as OpenAPI writes it: `/api/v1/leads/{lead}`."""
    return PREFIX + re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", operation.rule)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _query_parameters(model: type[BaseModel]) -> list[Schema]:
    """One parameter per field of a query model, its schema from the model."""
    schema = model.model_json_schema(by_alias=True, schema_generator=_Schemas)
    required = set(schema.get("required", ()))
    found = []
    for name, field in schema["properties"].items():
        described = {k: v for k, v in field.items() if k != "description"}
        parameter: Schema = {"name": name, "in": "query", "required": name in required}
        if "description" in field:
            parameter["description"] = field["description"]
        found.append({**parameter, "schema": described})
    return found


def errors_of(operation: Operation) -> tuple[int, ...]:
    """The error statuses an operation may answer, from what it declares."""
    codes = {401, 403, 429}  # every operation needs a key (api.authenticated)
    if operation.body is not None:
        codes |= {400, 413, 422}
    if operation.query is not None:
        codes.add(422)
    if operation.idempotent:
        codes |= {400, 409}
    if operation.may_find_nothing:
        codes.add(404)
    return tuple(sorted(codes))


def _operation(operation: Operation) -> Schema:
    parameters: list[Schema] = [
        {"name": name, "in": "path", "required": True, **PARAMETERS[name]}
        for name in re.findall(r"<(?:[a-z]+:)?([a-z_]+)>", operation.rule)
    ]
    if operation.query is not None:
        parameters += _query_parameters(operation.query)
    if operation.idempotent:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    headers = {"headers": REPLAYED} if operation.idempotent else {}
    described: Schema = {
        "operationId": _camel(operation.endpoint.rsplit(".", 1)[1]),
        "security": [{"apiKey": [operation.scope]}],
        "summary": operation.summary,
        "tags": [operation.tag],
    }
    if operation.description:
        described["description"] = operation.description
    if parameters:
        described["parameters"] = parameters
    if operation.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(operation.body)}},
        }
    described["responses"] = {
        **{
            str(status): _json(_ref(model), when, **headers)
            for status, (model, when) in sorted(operation.answers.items())
        },
        **{
            str(status): {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
            for status in errors_of(operation)
        },
    }
    return described


def _paths() -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    for operation in OPERATIONS:
        paths.setdefault(path_of(operation), {})[operation.method.lower()] = _operation(operation)
    paths[f"{PREFIX}/openapi.json"] = {
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
    }
    return paths


def _schemas() -> dict[str, Schema]:
    """Every model's JSON Schema: bodies as they may be sent, answers as they are sent."""
    modes: dict[type[BaseModel], JsonSchemaMode] = {}
    for operation in OPERATIONS:
        if operation.body is not None:
            modes[operation.body] = "validation"
        for model, _ in operation.answers.values():
            modes[model] = "serialization"
    modes[answers.Error] = modes[answers.InvalidError] = "serialization"
    _, found = models_json_schema(
        list(modes.items()), ref_template=SCHEMAS, schema_generator=_Schemas
    )
    schemas: dict[str, Schema] = found["$defs"]
    return schemas


def _responses() -> dict[str, Schema]:
    return {
        component: _json(
            _ref(answers.InvalidError if status == 422 else answers.Error), description
        )
        for status, (component, description) in ERRORS.items()
    }


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document, built once."""
    tags = dict.fromkeys([*(operation.tag for operation in OPERATIONS), "meta"])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nurture",
            "version": __version__,
            "summary": "Leads, their events and the CRM's answers.",
            "description": "Every operation but this document needs "
            "`Authorization: Bearer <API key>` (`nurture keys create NAME`). Bodies are JSON, "
            f"at most {MAX_BODY:,} bytes. A refused request stores nothing and lists every "
            "field path with what was expected. Name leads in URLs by their `id`, never by "
            "their address.",
        },
        "security": [{"apiKey": []}],
        "tags": [{"name": tag} for tag in tags],
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
                        "maxLength": IDEMPOTENCY_KEY_LENGTH,
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
