"""Checking what arrives about a lead (API body, CSV row) into a typed value.

Every problem is reported with its field path; nothing is stored when any exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email

from nurture.core.sales import STATUSES, Answer
from nurture.core.sequences import STAGES
from nurture.core.timing import is_valid_timezone

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_FIELDS = {
    "first_name": 200,
    "last_name": 200,
    "company": 300,
    "job_title": 300,
    "source": 100,
    "campaign": 200,
}
LEAD_KEYS = frozenset(
    {*_TEXT_FIELDS, "email", "company_size", "country", "timezone", "locale", "stage", "tags"}
    | {"fields", "rep", "consent", "touch"}
)
TOUCH_KEYS = (
    "channel",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)
CONSENT_KEYS = frozenset({"purpose", "granted", "text_version", "source"})
EVENT_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,99}")
MAX_SIZE = 10_000_000  # employees: more than any company, less than the column holds


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidInput(ValueError):
    """The input was refused; `errors` lists every problem with its field path."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class LeadInput:
    """Known values only: a field absent here never blanks what is stored."""

    email: str
    values: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    consent: ConsentInput | None = None
    touch: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ConsentInput:
    """Consent given (or withdrawn) for a purpose, with the version of the text shown."""

    purpose: str
    granted: bool
    text_version: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class EventInput:
    name: str
    properties: Mapping[str, Any]
    occurred_at: datetime | None


def normalise_email(raw: str, fold_subaddress: bool = False) -> str:
    """Lower-cased, IDNA-normalised address; raises ValueError with the reason.

    With `fold_subaddress`, "anna+news@example.com" becomes "anna@example.com", so the
    same person signing up with tags is one lead.
    """
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(str(error)) from None
    normalised = str(result.normalized).lower()
    if fold_subaddress:
        local, _, domain = normalised.rpartition("@")
        normalised = f"{local.split('+', 1)[0] or local}@{domain}"
    return normalised


def _text(value: Any, path: str, limit: int, errors: list[FieldError]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError(path, "expected a string"))
        return None
    value = value.strip()
    if _CONTROL.search(value):
        errors.append(FieldError(path, "control characters are not allowed"))
        return None
    if len(value) > limit:
        errors.append(FieldError(path, f"at most {limit} characters"))
        return None
    return value or None


def _consent(value: Any, path: str, errors: list[FieldError]) -> ConsentInput | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - CONSENT_KEYS:
        errors.append(FieldError(path, f"expected an object with {sorted(CONSENT_KEYS)}"))
        return None
    purpose = _text(value.get("purpose", "marketing"), f"{path}.purpose", 50, errors)
    granted = value.get("granted")
    if not isinstance(granted, bool):
        errors.append(FieldError(f"{path}.granted", "expected true or false"))
        return None
    version = _text(value.get("text_version"), f"{path}.text_version", 100, errors)
    source = _text(value.get("source"), f"{path}.source", 100, errors)
    return ConsentInput(purpose or "marketing", granted, version, source)


def _touch(value: Any, path: str, errors: list[FieldError]) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - set(TOUCH_KEYS):
        errors.append(FieldError(path, f"expected an object with {list(TOUCH_KEYS)}"))
        return None
    touch = {}
    for key in TOUCH_KEYS:
        text = _text(value.get(key), f"{path}.{key}", 200, errors)
        if text is not None:
            touch[key] = text
    return touch or None


def parse_lead(data: Any, prefix: str = "", fold_subaddress: bool = False) -> LeadInput:
    """Check a lead body such as the API receives; raises InvalidInput."""
    errors: list[FieldError] = []
    if not isinstance(data, Mapping):
        raise InvalidInput([FieldError(prefix.rstrip(".") or "$", "expected a JSON object")])
    for key in sorted(set(data) - LEAD_KEYS):
        errors.append(FieldError(f"{prefix}{key}", f"unknown field (allowed: {sorted(LEAD_KEYS)})"))
    email = data.get("email")
    normalised = ""
    if not isinstance(email, str) or not email.strip():
        errors.append(FieldError(f"{prefix}email", "required: the lead's email address"))
    else:
        try:
            normalised = normalise_email(email.strip(), fold_subaddress)
        except ValueError as error:
            errors.append(FieldError(f"{prefix}email", str(error)))
    values: dict[str, Any] = {}
    for name, limit in _TEXT_FIELDS.items():
        text = _text(data.get(name), f"{prefix}{name}", limit, errors)
        if text is not None:
            values[name] = text
    size = data.get("company_size")
    if size is not None and size != "":
        if isinstance(size, str) and re.fullmatch(r"[0-9]{1,9}", size.strip()):
            size = int(size.strip())
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
            errors.append(
                FieldError(f"{prefix}company_size", f"expected a whole number from 0 to {MAX_SIZE}")
            )
        else:
            values["company_size"] = size
    country = _text(data.get("country"), f"{prefix}country", 100, errors)
    if country is not None:
        if not re.fullmatch(r"[A-Za-z]{2}", country):
            errors.append(FieldError(f"{prefix}country", "expected an ISO 3166 code such as FR"))
        else:
            values["country"] = country.upper()
    zone = _text(data.get("timezone"), f"{prefix}timezone", 64, errors)
    if zone is not None:
        if is_valid_timezone(zone):
            values["timezone"] = zone
        else:
            errors.append(FieldError(f"{prefix}timezone", "expected an IANA timezone"))
    locale = _text(data.get("locale"), f"{prefix}locale", 16, errors)
    if locale is not None:
        if not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?", locale):
            errors.append(FieldError(f"{prefix}locale", "expected a language tag such as fr"))
        else:
            values["locale"] = locale.replace("_", "-").lower()
    stage = data.get("stage")
    if stage is not None:
        if stage not in STAGES:
            errors.append(FieldError(f"{prefix}stage", f"expected one of {list(STAGES)}"))
        else:
            values["stage"] = stage
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        errors.append(FieldError(f"{prefix}tags", "expected a list of non-empty strings"))
        tags = []
    custom = data.get("fields") or {}
    if not isinstance(custom, Mapping):
        errors.append(FieldError(f"{prefix}fields", "expected an object"))
        custom = {}
    for key, value in custom.items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            errors.append(FieldError(f"{prefix}fields.{key}", "expected a scalar value"))
        elif isinstance(value, str) and _CONTROL.search(value):
            errors.append(FieldError(f"{prefix}fields.{key}", "control characters are not allowed"))
    rep = data.get("rep")
    if rep is not None:
        if not isinstance(rep, Mapping) or set(rep) - {"name", "email", "phone"}:
            errors.append(FieldError(f"{prefix}rep", "expected {name, email, phone}"))
        else:
            for key in ("name", "email", "phone"):
                limit = 50 if key == "phone" else 200 if key == "name" else 320
                text = _text(rep.get(key), f"{prefix}rep.{key}", limit, errors)
                if text is not None:
                    values[f"rep_{key}"] = text
    consent = _consent(data.get("consent"), f"{prefix}consent", errors)
    touch = _touch(data.get("touch"), f"{prefix}touch", errors)
    if errors:
        raise InvalidInput(errors)
    return LeadInput(
        email=normalised,
        values=values,
        tags=tuple(t.strip() for t in tags),
        fields={k: v for k, v in custom.items() if v not in (None, "")},
        consent=consent,
        touch=touch,
    )


def parse_batch(data: Any, limit: int, fold_subaddress: bool = False) -> list[LeadInput]:
    """`{"leads": [...]}`: every item checked; any problem refuses the whole batch."""
    if not isinstance(data, Mapping) or set(data) != {"leads"}:
        raise InvalidInput([FieldError("$", 'expected {"leads": [lead, ...]}')])
    items = data["leads"]
    if not isinstance(items, list) or not items:
        raise InvalidInput([FieldError("leads", "expected a non-empty list of leads")])
    if len(items) > limit:
        raise InvalidInput([FieldError("leads", f"at most {limit} leads per batch")])
    parsed: list[LeadInput] = []
    errors: list[FieldError] = []
    for number, item in enumerate(items):
        try:
            parsed.append(parse_lead(item, f"leads[{number}].", fold_subaddress))
        except InvalidInput as error:
            errors += error.errors
    if errors:
        raise InvalidInput(errors)
    return parsed


def parse_event(data: Any, now: datetime) -> EventInput:
    errors: list[FieldError] = []
    if not isinstance(data, Mapping):
        raise InvalidInput([FieldError("$", "expected a JSON object")])
    for key in sorted(set(data) - {"name", "properties", "occurred_at", "email"}):
        errors.append(FieldError(key, "unknown field (allowed: name, properties, occurred_at)"))
    name = data.get("name")
    if not isinstance(name, str) or not EVENT_NAME.fullmatch(name):
        errors.append(FieldError("name", "expected an event name such as form_submitted"))
    properties = data.get("properties") or {}
    if not isinstance(properties, Mapping):
        errors.append(FieldError("properties", "expected an object"))
        properties = {}
    occurred: datetime | None = None
    raw = data.get("occurred_at")
    if raw is not None:
        try:
            occurred = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
            if occurred.tzinfo is None:
                raise ValueError
            occurred = occurred.astimezone(UTC)
            if occurred > now:
                errors.append(FieldError("occurred_at", "must not be in the future"))
        except (ValueError, OverflowError):
            errors.append(
                FieldError("occurred_at", "expected an ISO 8601 time with offset, e.g. ...Z")
            )
    if errors:
        raise InvalidInput(errors)
    assert isinstance(name, str)
    return EventInput(name=name, properties=dict(properties), occurred_at=occurred)


def parse_feedback(data: Any, now: datetime) -> tuple[Answer, str | None]:
    """A CRM answer; `external_id` makes replays harmless (defaults to status + time)."""
    errors: list[FieldError] = []
    if not isinstance(data, Mapping):
        raise InvalidInput([FieldError("$", "expected a JSON object")])
    allowed = {"status", "amount", "reason", "occurred_at", "external_id", "sequence"}
    for key in sorted(set(data) - allowed):
        errors.append(FieldError(key, f"unknown field (allowed: {sorted(allowed)})"))
    status = data.get("status")
    if status not in STATUSES:
        errors.append(FieldError("status", f"expected one of {list(STATUSES)}"))
    amount = data.get("amount")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int | float)):
        errors.append(FieldError("amount", "expected a number"))
    elif amount is not None and amount < 0:
        errors.append(FieldError("amount", "must not be negative"))
    reason = _text(data.get("reason"), "reason", 500, errors)
    sequence = _text(data.get("sequence"), "sequence", 100, errors)
    occurred = now
    if data.get("occurred_at") is not None:
        try:
            occurred = datetime.fromisoformat(str(data["occurred_at"]).replace("Z", "+00:00"))
            if occurred.tzinfo is None:
                raise ValueError
            occurred = occurred.astimezone(UTC)
        except (ValueError, OverflowError):
            errors.append(FieldError("occurred_at", "expected an ISO 8601 time with offset"))
    external = _text(data.get("external_id"), "external_id", 200, errors)
    if errors:
        raise InvalidInput(errors)
    assert isinstance(status, str)
    external = external or f"{status}@{occurred.isoformat()}"
    value = float(amount) if amount is not None else None
    return Answer(external, status, occurred, value, reason), sequence
