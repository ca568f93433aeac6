"""The one definition of each request body: its fields, their types and limits.

The JSON API checks bodies against these models (through nurture/core/intake.py, as
website forms and CSV import do for leads), the OpenAPI document shows their JSON
Schema (nurture/web/openapi.py), and the limits table in docs/api.md is `limits()`
(tests/test_openapi.py compares them). A limit changed here changes all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import StringConstraints as Chars

from nurture.core.formats import (
    NO_CONTROL,
    Expect,
    JsonObject,
    OneOf,
    Payload,
    email_address,
    iso_time,
    not_in_the_future,
    text,
)
from nurture.core.sales import STATUSES
from nurture.core.sequences import STAGES
from nurture.core.timing import is_valid_timezone

MAX_BODY = 1024 * 1024  # bytes in one request body; beyond, 413 before it is read
BATCH_LIMIT = 1000  # leads per batch
MAX_SIZE = 10_000_000  # employees: more than any company, less than the column holds
MAX_TAGS = 100  # tags added by one request
TAG_LENGTH = 100
EVENT_NAME_LENGTH = 100
EVENT_NAME = rf"^[a-z][a-z0-9_.-]{{0,{EVENT_NAME_LENGTH - 1}}}$"
CUSTOM_FIELDS = JsonObject(depth=1, keys=200, key_length=100, text_length=2000, size=64 * 1024)
PROPERTIES = JsonObject(depth=8, keys=200, key_length=100, text_length=2000, size=64 * 1024)


def _timezone(name: str) -> str:
    if not is_valid_timezone(name):
        raise ValueError("not an IANA timezone")
    return name


def _whole_number(value: int | str) -> int:
    number = int(value)
    if not 0 <= number <= MAX_SIZE:
        raise ValueError("out of range")
    return number


Email = Annotated[
    str,
    Chars(strip_whitespace=True, min_length=1, max_length=254),
    AfterValidator(email_address),
    Field(
        description="An email address: trimmed, checked (no deliverability lookup), lower-cased.",
        json_schema_extra={"format": "email"},
    ),
]
Time = Annotated[datetime, BeforeValidator(iso_time)]
CompanySize = Annotated[
    Annotated[int, Field(ge=0, le=MAX_SIZE)] | Annotated[str, Chars(pattern=r"^\s*[0-9]{1,9}\s*$")],
    AfterValidator(_whole_number),
    Expect(f"expected a whole number from 0 to {MAX_SIZE}"),
]
Country = Annotated[
    str,
    Chars(strip_whitespace=True, pattern=r"^[A-Za-z]{2}$"),
    AfterValidator(str.upper),
    Expect("expected an ISO 3166 code such as FR"),
]
Timezone = Annotated[str, text(64), AfterValidator(_timezone), Expect("expected an IANA timezone")]
Locale = Annotated[
    str,
    Chars(strip_whitespace=True, max_length=16, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"),
    AfterValidator(lambda tag: tag.replace("_", "-").lower()),
    Expect("expected a language tag such as fr"),
]
Tag = Annotated[str, text(TAG_LENGTH), Chars(min_length=1)]


class RepPayload(Payload):
    """The sales rep who owns the lead, for emails signed by them."""

    name: Annotated[str, text(200)] | None = None
    email: Annotated[str, text(320)] | None = None
    phone: Annotated[str, text(50)] | None = None


class ConsentPayload(Payload):
    """Consent given (or withdrawn) for a purpose, with the version of the text shown."""

    purpose: Annotated[str, text(50)] | None = Field("marketing", description="What it is for.")
    granted: bool
    text_version: Annotated[str, text(100)] | None = Field(
        None, description="The version of the consent text shown."
    )
    source: Annotated[str, text(100)] | None = Field(
        None, description="Where it was given; defaults to the door the lead came in by."
    )


class TouchPayload(Payload):
    """Attribution of this arrival: the lead keeps its first and its latest."""

    channel: Annotated[str, text(200)] | None = None
    campaign: Annotated[str, text(200)] | None = None
    utm_source: Annotated[str, text(200)] | None = None
    utm_medium: Annotated[str, text(200)] | None = None
    utm_campaign: Annotated[str, text(200)] | None = None
    utm_term: Annotated[str, text(200)] | None = None
    utm_content: Annotated[str, text(200)] | None = None


class LeadPayload(Payload):
    """A lead as it arrives. Known values only: a field absent, null or empty never
    blanks what is stored. Unknown fields are refused."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "claire@atelier-martin.example",
                    "first_name": "Claire",
                    "company": "Atelier Martin",
                    "company_size": 240,
                    "country": "FR",
                    "locale": "fr",
                    "tags": ["webinar-2026"],
                    "consent": {"purpose": "marketing", "granted": True, "text_version": "2026-01"},
                    "touch": {
                        "channel": "paid_search",
                        "utm_source": "google",
                        "utm_medium": "cpc",
                    },
                }
            ]
        }
    )

    email: Email
    first_name: Annotated[str, text(200)] | None = None
    last_name: Annotated[str, text(200)] | None = None
    company: Annotated[str, text(300)] | None = None
    job_title: Annotated[str, text(300)] | None = None
    company_size: CompanySize | None = Field(
        None, description="Employees: a whole number, or the same as a string of digits."
    )
    country: Country | None = Field(None, description="ISO 3166-1 alpha-2; stored upper-cased.")
    timezone: Timezone | None = Field(None, description="An IANA timezone such as Europe/Paris.")
    locale: Locale | None = Field(
        None, description="A language tag such as fr or fr-CA; stored lower-cased."
    )
    source: Annotated[str, text(100)] | None = None
    campaign: Annotated[str, text(200)] | None = None
    stage: Annotated[str, OneOf(STAGES)] | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = Field(
        None, description="Added to the lead's tags; tags are never removed here."
    )
    fields: Annotated[dict[str, Any], CUSTOM_FIELDS] | None = Field(
        None, description="Custom fields, merged into the known ones."
    )
    rep: RepPayload | None = None
    consent: ConsentPayload | None = None
    touch: TouchPayload | None = None


class BatchPayload(Payload):
    """All or nothing: one refused item refuses the batch, nothing is stored. The same
    email twice in a batch is one lead."""

    leads: Annotated[list[LeadPayload], Field(min_length=1, max_length=BATCH_LIMIT)]


class EventPayload(Payload):
    """Something a lead did, as your systems saw it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "form_submitted", "properties": {"form": "whitepaper-planning-roi"}}
            ]
        }
    )

    name: Annotated[
        str,
        Chars(pattern=EVENT_NAME),
        Expect("expected an event name such as form_submitted"),
        Field(description="Lower-case letters, digits, `_`, `.` and `-`, from a letter."),
    ]
    properties: Annotated[dict[str, Any], PROPERTIES] | None = None
    occurred_at: Annotated[Time | None, AfterValidator(not_in_the_future)] = Field(
        None,
        description="ISO 8601 with an offset, not in the future; defaults to the time of "
        "the request.",
    )
    email: Any = Field(None, description="Accepted and ignored: the path names the lead.")


class FeedbackPayload(Payload):
    """The CRM's answer about a promoted lead."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "won",
                    "amount": 36000,
                    "external_id": "deal-4411-won",
                    "occurred_at": "2026-04-02T10:00:00Z",
                }
            ]
        }
    )

    status: Annotated[str, OneOf(STATUSES)]
    amount: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    reason: Annotated[str, text(500)] | None = Field(None, description="Why (rejected, lost).")
    occurred_at: Time | None = Field(
        None, description="ISO 8601 with an offset; defaults to the time of the request."
    )
    external_id: Annotated[str, text(200)] | None = Field(
        None, description="Makes replays harmless; defaults to the status and occurred_at."
    )
    sequence: Annotated[str, text(100)] | None = Field(
        None, description="The nurture sequence a rejected lead enters."
    )


class LookupPayload(Payload):
    """Which lead: its address goes in the body, never in a URL (URLs land in logs)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "claire@atelier-martin.example"}]}
    )

    email: Email


def text_limits(model: type[BaseModel]) -> dict[str, int]:
    """Every free-text field of `model` (dotted path) with its length limit."""
    schema = model.model_json_schema()
    found: dict[str, int] = {}

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, field in properties.items():
            for option in field.get("anyOf", [field]):
                if "$ref" in option:
                    nested = schema["$defs"][option["$ref"].rsplit("/", 1)[1]]
                    walk(nested["properties"], f"{prefix}{name}.")
                elif option.get("pattern") == NO_CONTROL and "maxLength" in option:
                    found[prefix + name] = option["maxLength"]

    walk(schema["properties"], "")
    return found


@dataclass(frozen=True)
class Limit:
    """One row of the limits table in docs/api.md."""

    what: str
    value: str
    beyond: str


def _json_object(limits: JsonObject) -> str:
    each = "" if limits.depth == 1 else " per object"
    return (
        f"at most {limits.keys} keys{each}, each at most {limits.key_length} characters;"
        f" texts at most {limits.text_length:,} characters; {limits.size:,} bytes as JSON"
    )


def _texts(model: type[BaseModel]) -> str:
    by_limit: dict[int, list[str]] = {}
    for path, limit in text_limits(model).items():
        by_limit.setdefault(limit, []).append(f"`{path}`")
    return "; ".join(f"{', '.join(paths)}: {limit}" for limit, paths in sorted(by_limit.items()))


def limits() -> tuple[Limit, ...]:
    """The rows of the limits table in docs/api.md, from the definitions above."""
    return (
        Limit("request body", f"{MAX_BODY:,} bytes ({MAX_BODY / 2**20:g} MiB)", "`413`"),
        Limit("leads per batch", f"{BATCH_LIMIT:,}", "`422`, path `leads`"),
        Limit("lead texts (characters)", _texts(LeadPayload), "`422` with the path"),
        Limit("`company_size`", f"0 to {MAX_SIZE:,}", "`422`, path `company_size`"),
        Limit("`tags`", f"{MAX_TAGS} per request, each at most {TAG_LENGTH} characters", "`422`"),
        Limit(
            "custom `fields`",
            f"scalar values; {_json_object(CUSTOM_FIELDS)}",
            "`422` with the path",
        ),
        Limit(
            "event `properties`",
            f"nested at most {PROPERTIES.depth} levels; {_json_object(PROPERTIES)}",
            "`422` with the path",
        ),
        Limit("event name", f"{EVENT_NAME_LENGTH} characters", "`422`, path `name`"),
        Limit("feedback texts (characters)", _texts(FeedbackPayload), "`422` with the path"),
        Limit("any text, key or tag", "no control characters (NUL, CR, LF, tab…)", "`422`"),
        Limit("numbers", "finite (no NaN, no Infinity, no 1e400)", "`400` (NaN) or `422`"),
    )


# --- costs, reports and the decision log ------------------------------------------------

MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
DAY = r"^\d{4}-\d{2}-\d{2}$"
Month = Annotated[str, Chars(pattern=MONTH), Expect("expected a month as YYYY-MM, such as 2026-11")]


class CostPayload(Payload):
    """What a source, or one campaign of it, cost in a month (again: replaced)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"source": "salon-industrie", "month": "2026-11", "amount": 1200}]
        }
    )

    source: Annotated[str, text(100), Chars(min_length=1)]
    campaign: Annotated[str, text(200)] | None = None
    month: Month
    amount: Annotated[float, Field(ge=0, le=999_999_999_999.99, allow_inf_nan=False)]
    currency: Annotated[str, Chars(pattern=r"^[A-Za-z]{3}$"),
                        Expect("expected a currency code such as EUR")] | None = None  # fmt: skip
    rate: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)] | None = Field(
        default=None, description="Converts `currency` to the installation's currency."
    )


class Query(BaseModel):
    """A query string: known parameters only, as the texts they arrive as."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ReportQuery(Query):
    """The period and grouping of a report (each report allows some groupings)."""

    first: Annotated[str, Chars(pattern=DAY)] = Field(
        alias="from", description="First day, included (UTC), YYYY-MM-DD."
    )
    last: Annotated[str, Chars(pattern=DAY)] = Field(
        alias="to", description="Last day, included (UTC), YYYY-MM-DD."
    )
    by: Annotated[str, OneOf(("source", "campaign", "sequence", "rep", "month", "day"))] | None = (
        Field(default=None, description="Grouping, as the report allows (docs/reports.md).")
    )
    view: Annotated[str, OneOf(("cohort", "period"))] | None = Field(
        default=None, description="funnel only: cohort (default) or period."
    )
    attribution: Annotated[str, OneOf(("first", "last"))] | None = Field(
        default=None, description="sources only: first (default) or last touch."
    )
    live: Annotated[str, OneOf(("true", "false"))] | None = Field(
        default=None,
        description="true: every day counted from the history, instead of the closed days"
        " read from the daily summary (docs/reports.md).",
    )


class CostQuery(Query):
    """Which months of costs (both included)."""

    first: Month | None = Field(default=None, alias="from")
    last: Month | None = Field(default=None, alias="to")


class DecisionQuery(Query):
    """Which part of a lead's story."""

    sequence: Annotated[str, text(100)] | None = None
    step: Annotated[str, text(100)] | None = Field(
        default=None, description="Only with `sequence`: a step of it."
    )


class TopLeadsQuery(Query):
    """Whose list."""

    rep: Annotated[str, text(320)] | None = Field(
        default=None, description="One rep's email; else every rep's list."
    )


class AccountsQuery(Query):
    """Which accounts: the first `limit`, the most engaged first."""

    limit: Annotated[int, Field(ge=1, le=500)] = Field(
        default=50, description="How many accounts (1 to 500)."
    )
    engaged: Annotated[str, OneOf(("true", "false"))] | None = Field(
        default=None, description="true: only accounts with a contact engaged in the window."
    )
