"""The kinds of value a payload field holds, each with its limits stated once.

The payload models (nurture/core/payloads.py) are built from these. pydantic derives
two things from each: the check of what arrives and its JSON Schema (for the OpenAPI
document). What a refusal says is either written here (`Expect`, the free-form JSON
checks) or derived from pydantic's error in nurture/core/refusals.py.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import email_validator
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

# No control characters: a line break in a name is a header-injection attempt, a NUL
# cannot be stored. The same pattern is read by pydantic (Rust regex) and by JSON Schema.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The error type of refusals whose message is written in this package, word for word.
REFUSED = "refused"


def refusal(message: str) -> PydanticCustomError:
    """A refusal saying `message` (braces in it are not a template)."""
    return PydanticCustomError(REFUSED, "{message}", {"message": message})


class Payload(BaseModel):
    """A JSON object as a client sends it: known fields only, no type coercion, and a
    blank text in an optional field means "not given" (it never blanks what is known)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_not_given(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        optional = {name for name, field in cls.model_fields.items() if not field.is_required()}
        blank = {key for key, value in data.items() if isinstance(value, str) and not value.strip()}
        absent = blank & optional
        return {key: None if key in absent else value for key, value in data.items()}


def text(limit: int) -> StringConstraints:
    """Text trimmed of spaces, at most `limit` characters, without control characters."""
    return StringConstraints(strip_whitespace=True, max_length=limit, pattern=NO_CONTROL)


@dataclass(frozen=True)
class Expect:
    """Any refusal of the value says `message`: for values with a shape of their own
    (a country code, a timezone), where "does not match a pattern" would not help."""

    message: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return _saying(self.message, handler(source))


@dataclass(frozen=True)
class OneOf:
    """One of `values`, listed in the JSON Schema as its `enum`."""

    values: tuple[str, ...]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        values = list(self.values)
        return _saying(f"expected one of {values}", core_schema.literal_schema(values))


def _saying(message: str, schema: core_schema.CoreSchema) -> core_schema.CoreSchema:
    """`schema`, whose every refusal says `message`."""
    return core_schema.custom_error_schema(
        schema,
        REFUSED,
        custom_error_message="{message}",
        custom_error_context={"message": message},
    )


def normalise_email(raw: str, fold_subaddress: bool = False) -> str:
    """Lower-cased, IDNA-normalised address; raises ValueError with the reason.

    With `fold_subaddress`, "anna+news@example.com" becomes "anna@example.com", so the
    same person signing up with tags is one lead.
    """
    normalised = _plain(raw)
    if normalised is None:
        try:
            result = validate_email(raw, check_deliverability=False)
        except EmailNotValidError as error:
            raise ValueError(str(error)) from None
        normalised = str(result.normalized).lower()
    if fold_subaddress:
        local, _, domain = normalised.rpartition("@")
        normalised = f"{local.split('+', 1)[0] or local}@{domain}"
    return normalised


# An unquoted ASCII local part (RFC 5322 dot-atom): what nearly every address has.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _plain(raw: str) -> str | None:
    """`raw` normalised without checking its domain again when it is plain: a dot-atom
    local part and a domain already found valid. An import of a million leads has a few
    thousand domains, and checking one costs most of email-validator's time. None: let
    email-validator decide (and word the refusal)."""
    local, at, domain = raw.rpartition("@")
    if not at or len(local) > 64 or not _DOT_ATOM.fullmatch(local):
        return None
    found = _domain(domain)
    if found is None or len(local) + 1 + found[1] > 254:
        return None
    return f"{local}@{found[0]}".lower()


# What email-validator accepts of an all-ASCII domain without Punycode labels, checked
# here at a tenth of its cost (each company of a B2B import has its own domain): labels
# of letters, digits and inner hyphens, at most 63 long, 255 in all, a dot, a top-level
# domain ending with a letter, no "ab--" label, no special-use name. Anything else is
# left to email-validator; tests/test_formats.py compares both on generated domains.
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _ascii_domain(domain: str) -> str | None:
    lowered = domain.lower()
    if (
        not lowered.isascii()
        or len(lowered) > 255
        or not lowered[-1:].isalpha()
        or "." not in lowered
        or "--" in lowered
        or email_validator.TEST_ENVIRONMENT
        or not email_validator.GLOBALLY_DELIVERABLE
    ):
        return None
    if not all(_HOST_LABEL.fullmatch(label) for label in lowered.split(".")):
        return None
    for special in email_validator.SPECIAL_USE_DOMAIN_NAMES:
        if lowered == special or lowered.endswith("." + special):
            return None
    return lowered


@functools.lru_cache(maxsize=65536)
def _domain(domain: str) -> tuple[str, int] | None:
    """The domain as email-validator normalises it and the length of its ASCII form,
    or None when it refuses it."""
    plain = _ascii_domain(domain)
    if plain is not None:
        return plain, len(plain)
    try:
        result = validate_email("x@" + domain, check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.domain, len(result.ascii_domain)


def email_address(value: str, info: ValidationInfo) -> str:
    """An address as `normalise_email` gives it; the validation context's
    `fold_subaddress` folds sub-addresses."""
    try:
        return normalise_email(value, bool((info.context or {}).get("fold_subaddress")))
    except ValueError as error:
        raise refusal(str(error)) from None


TIME_EXPECTED = "expected an ISO 8601 time with offset, e.g. 2026-03-02T09:15:00Z"


def iso_time(value: Any) -> datetime:
    """An ISO 8601 time with an offset (`Z` too), in UTC; a datetime with a zone passes."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if not isinstance(value, str):
        raise refusal(TIME_EXPECTED)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError("no offset")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # past year 9999 or before year 1 in UTC
        raise refusal(TIME_EXPECTED) from None


def not_in_the_future(value: datetime | None, info: ValidationInfo) -> datetime | None:
    """Refuses a time after the validation context's `now` (when one is given)."""
    now = (info.context or {}).get("now")
    if value is not None and now is not None and value > now:
        raise refusal("must not be in the future")
    return value


@dataclass(frozen=True)
class JsonObject:
    """A JSON object with the client's own keys (custom fields, event properties).

    `depth` counts the object itself: 1 allows scalar values only. Keys are at most
    `key_length` characters, each object has at most `keys` of them, texts are at most
    `text_length` characters; no control characters in keys or texts, numbers are
    finite, and the whole is at most `size` bytes as compact JSON. Checked without
    recursion, so no nesting can exhaust the stack; every problem names its path.
    """

    depth: int
    keys: int
    key_length: int
    text_length: int
    size: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        text_schema = {"maxLength": self.text_length, "pattern": NO_CONTROL}
        if self.depth == 1:
            values: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}
            values.update(text_schema)
            shape = "scalar values (text, numbers, true/false, null)"
        else:
            values = {}
            shape = f"any JSON values, objects and arrays nested at most {self.depth} levels"
        return {
            "type": "object",
            "maxProperties": self.keys,
            "propertyNames": {"maxLength": self.key_length, "pattern": NO_CONTROL},
            "additionalProperties": values,
            "description": f"Keys of your own (at most {self.keys} per object, each at most "
            f"{self.key_length} characters) with {shape}. Texts are at most "
            f"{self.text_length} characters; no control characters in keys or texts; numbers"
            f" are finite; at most {self.size:,} bytes as compact JSON.",
        }

    def check(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise refusal("expected an object")
        problems = self._problems(value)
        if not problems:
            encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            if len(encoded.encode("utf-8")) > self.size:
                problems = [((), f"at most {self.size:,} bytes as JSON")]
        if problems:
            raise ValidationError.from_exception_data(
                "JsonObject",
                [
                    InitErrorDetails(type=refusal(message), loc=loc, input=None)
                    for loc, message in problems
                ],
            )
        return value

    def _problems(self, value: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        nested = "expected a scalar value" if self.depth == 1 else None
        # Depth first, in document order, with a stack of our own instead of recursion.
        stack: list[tuple[tuple[str | int, ...], Any, int]] = [((), value, 1)]
        while stack and len(problems) < 20:
            loc, node, depth = stack.pop()
            if isinstance(node, dict | list) and depth > self.depth:
                problems.append((loc, nested or f"nested more than {self.depth} levels deep"))
            elif isinstance(node, dict):
                if len(node) > self.keys:
                    problems.append((loc, f"at most {self.keys} keys"))
                    continue
                children = []
                for key, item in node.items():
                    problem = self._key_problem(key)
                    if problem:
                        problems.append(((*loc, str(key)), problem))
                    else:
                        children.append(((*loc, key), item, depth + 1))
                stack.extend(reversed(children))
            elif isinstance(node, list):
                stack.extend(
                    reversed([((*loc, n), item, depth + 1) for n, item in enumerate(node)])
                )
            elif isinstance(node, str):
                if len(node) > self.text_length:
                    problems.append((loc, f"at most {self.text_length} characters"))
                elif CONTROL.search(node):
                    problems.append((loc, "control characters are not allowed"))
            elif isinstance(node, float) and not math.isfinite(node):
                problems.append((loc, "expected a finite number"))
            elif not isinstance(node, bool | int | float) and node is not None:
                problems.append((loc, "expected a JSON value"))
        return problems

    def _key_problem(self, key: Any) -> str | None:
        if not isinstance(key, str):
            return "key: expected text"
        if len(key) > self.key_length:
            return f"key: at most {self.key_length} characters"
        if CONTROL.search(key):
            return "key: control characters are not allowed"
        return None
