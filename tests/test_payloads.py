"""The payload formats: every limit refuses its exact bad input with a path, and nothing
nests deep enough to exhaust the stack. Pure: no database, no app."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from nurture.core.intake import (
    InvalidInput,
    parse_batch,
    parse_event,
    parse_feedback,
    parse_lead,
    parse_lookup,
)
from nurture.core.payloads import BATCH_LIMIT, CUSTOM_FIELDS, PROPERTIES
from nurture.core.refusals import MAX_LISTED

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EMAIL = "claire@atelier-martin.example"


def nested(depth: int, leaf: Any = 1, key: str | None = None) -> Any:
    """`depth` arrays (or objects under `key`) around `leaf`, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value] if key is None else {key: value}
    return value


def refusal(parse: Any, data: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidInput) as refused:
        parse(data)
    return [(e.path, e.message) for e in refused.value.errors]


def lead(data: Any) -> Any:
    return parse_lead(data)


def event(data: Any) -> Any:
    return parse_event(data, NOW)


def feedback(data: Any) -> Any:
    return parse_feedback(data, NOW)


DEEP_PROPERTY = "properties.a" + "[0]" * (PROPERTIES.depth - 1)
CONTROL = "control characters are not allowed"
KEY_CONTROL = f"key: {CONTROL}"
FINITE = "expected a finite number"
NAME = "expected an event name such as form_submitted"


@pytest.mark.parametrize(
    ("parse", "data", "expected"),
    [
        # Depth: 5,000 nested brackets in custom fields and in event properties.
        (
            lead,
            {"email": EMAIL, "fields": {"x": nested(5000)}},
            [("fields.x", "expected a scalar value")],
        ),
        (
            event,
            {"name": "page_visited", "properties": {"a": nested(5000)}},
            [(DEEP_PROPERTY, "nested more than 8 levels deep")],
        ),
        (
            event,
            {"name": "page_visited", "properties": nested(5000, key="a")},
            [("properties" + ".a" * PROPERTIES.depth, "nested more than 8 levels deep")],
        ),
        # Deep values where text is expected are refused as what they are.
        (lead, {"email": nested(100_000)}, [("email", "expected a string")]),
        # Key count: 60,000 custom fields.
        (
            lead,
            {"email": EMAIL, "fields": {f"f{n}": n for n in range(60_000)}},
            [("fields", "at most 200 keys")],
        ),
        (
            event,
            {"name": "x", "properties": {"a": {f"p{n}": n for n in range(201)}}},
            [("properties.a", "at most 200 keys")],
        ),
        # Key size: a 500 KB key (the path shows its start and its length).
        (
            lead,
            {"email": EMAIL, "fields": {"k" * 500_000: 1}},
            [("fields." + "k" * 60 + "… (500,000 characters)", "key: at most 100 characters")],
        ),
        # Total size.
        (
            event,
            {"name": "x", "properties": {f"p{n}": "x" * 2000 for n in range(40)}},
            [("properties", "at most 65,536 bytes as JSON")],
        ),
        # Control characters, anywhere.
        (lead, {"email": EMAIL, "first_name": "Bob\x00"}, [("first_name", CONTROL)]),
        (lead, {"email": EMAIL, "fields": {"a\r\nb": 1}}, [("fields.a\\x0d\\x0ab", KEY_CONTROL)]),
        (lead, {"email": EMAIL, "fields": {"note\n": 1}}, [("fields.note\\x0a", KEY_CONTROL)]),
        (lead, {"email": EMAIL, "fields": {"x": "a\x00b"}}, [("fields.x", CONTROL)]),
        (lead, {"email": EMAIL, "tags": ["vip", "v\r\nip"]}, [("tags[1]", CONTROL)]),
        (lead, {"email": EMAIL, "touch": {"utm_term": "a\tb"}}, [("touch.utm_term", CONTROL)]),
        (event, {"name": "page_visited\n"}, [("name", NAME)]),
        (event, {"name": "page\x00visited"}, [("name", NAME)]),
        (event, {"name": "x", "properties": {"a\nb": 1}}, [("properties.a\\x0ab", KEY_CONTROL)]),
        (
            event,
            {"name": "x", "properties": {"a": ["ok", "b\x00"]}},
            [("properties.a[1]", CONTROL)],
        ),
        (feedback, {"status": "lost", "reason": "too\x00expensive"}, [("reason", CONTROL)]),
        # Finite numbers only.
        (lead, {"email": EMAIL, "fields": {"x": float("nan")}}, [("fields.x", FINITE)]),
        (event, {"name": "x", "properties": {"a": [float("inf")]}}, [("properties.a[0]", FINITE)]),
        (feedback, {"status": "won", "amount": float("nan")}, [("amount", FINITE)]),
        (feedback, {"status": "won", "amount": float("-inf")}, [("amount", FINITE)]),
        (feedback, {"status": "won", "amount": 10**400}, [("amount", "expected a number")]),
        (
            lead,
            {"email": EMAIL, "company_size": float("inf")},
            [("company_size", "expected a whole number from 0 to 10000000")],
        ),
        # Texts and tags.
        (lead, {"email": EMAIL, "tags": ["x" * 101]}, [("tags[0]", "at most 100 characters")]),
        (
            lead,
            {"email": EMAIL, "tags": [f"t{n}" for n in range(101)]},
            [("tags", "at most 100 items")],
        ),
        (
            lead,
            {"email": EMAIL, "fields": {"x": "y" * 2001}},
            [("fields.x", "at most 2000 characters")],
        ),
    ],
)
def test_each_limit_refuses_its_bad_input_with_a_path(
    parse: Any, data: Any, expected: list[tuple[str, str]]
) -> None:
    assert refusal(parse, data) == expected


@pytest.mark.parametrize(
    ("parse", "data"),
    [
        (lead, {"email": EMAIL, "fields": {f"f{n}": "x" * 300 for n in range(200)}}),
        (lead, {"email": EMAIL, "fields": {"k" * CUSTOM_FIELDS.key_length: 1}}),
        (event, {"name": "x", "properties": nested(PROPERTIES.depth - 1, key="a")}),
        (event, {"name": "x", "properties": {"a": nested(PROPERTIES.depth - 1)}}),
        (feedback, {"status": "won", "amount": 1e300}),
        (lead, {"email": EMAIL, "tags": ["  vip\n"]}),  # trimmed like any text
    ],
)
def test_values_at_the_limits_are_taken(parse: Any, data: Any) -> None:
    parse(data)


def test_a_lead_is_checked_into_known_values_only() -> None:
    taken = parse_lead(
        {
            "email": "  Marie.Dupont@Example.COM ",
            "first_name": " Marie ",
            "company": "",
            "company_size": " 120 ",
            "country": "fr",
            "locale": "fr_CA",
            "timezone": "Europe/Paris",
            "tags": ["webinar"],
            "fields": {"industry": "food", "plants": 3, "empty": "", "none": None},
            "rep": {"name": "Julie", "phone": ""},
            "consent": {"granted": True, "purpose": ""},
            "touch": {"channel": "webinar", "utm_source": None},
        }
    )
    assert taken.email == "marie.dupont@example.com"
    assert dict(taken.values) == {
        "first_name": "Marie",
        "company_size": 120,
        "country": "FR",
        "timezone": "Europe/Paris",
        "locale": "fr-ca",
        "rep_name": "Julie",
    }
    assert taken.tags == ("webinar",)
    assert dict(taken.fields) == {"industry": "food", "plants": 3}
    assert taken.consent is not None and taken.consent.purpose == "marketing"
    assert taken.touch == {"channel": "webinar"}


def test_every_problem_is_listed_with_its_path() -> None:
    problems = refusal(
        lead,
        {
            "emial": "a@example.com",
            "company_size": "big",
            "country": "France",
            "stage": "hot",
            "consent": {"granted": "yes", "why": 1},
        },
    )
    assert [path for path, _ in problems] == [
        "email",
        "company_size",
        "country",
        "stage",
        "consent.granted",
        "consent.why",
        "emial",
    ]
    said = dict(problems)
    assert said["email"] == "required"
    assert said["emial"].startswith("unknown field (allowed: ['campaign', 'company'")
    assert said["consent.granted"] == "expected true or false"


def test_a_batch_names_its_items_and_lists_at_most_so_many_problems() -> None:
    assert refusal(lambda d: parse_batch(d), {"leads": [{"email": EMAIL}, {"email": "x"}]}) == [
        ("leads[1].email", "An email address must have an @-sign.")
    ]
    many = refusal(lambda d: parse_batch(d), {"leads": [{"email": "x"}] * BATCH_LIMIT})
    assert len(many) == MAX_LISTED + 1
    assert many[-1] == ("$", f"and {BATCH_LIMIT - MAX_LISTED:,} more problems")
    too_many = {"leads": [{"email": EMAIL}] * (BATCH_LIMIT + 1)}
    assert refusal(lambda d: parse_batch(d), too_many) == [("leads", "at most 1,000 items")]
    assert refusal(lambda d: parse_batch(d), [1]) == [("$", "expected a JSON object")]


def test_times_have_an_offset_and_events_are_not_in_the_future() -> None:
    assert refusal(event, {"name": "x", "occurred_at": "2026-03-02T10:00:00Z"}) == [
        ("occurred_at", "must not be in the future")
    ]
    for bad in ("yesterday", "2026-03-01T10:00:00", "9999-12-31T23:00:00-05:00", 1700000000):
        [(path, message)] = refusal(event, {"name": "x", "occurred_at": bad})
        assert path == "occurred_at" and message.startswith("expected an ISO 8601 time")
    taken = parse_event({"name": "x", "occurred_at": "2026-03-02T09:15:00+01:00"}, NOW)
    assert taken.occurred_at == datetime(2026, 3, 2, 8, 15, tzinfo=UTC)


def test_a_lookup_names_one_address() -> None:
    assert parse_lookup({"email": " Anna+News@Example.com "}) == "anna+news@example.com"
    assert parse_lookup({"email": "anna+news@example.com"}, fold_subaddress=True) == (
        "anna@example.com"
    )
    assert refusal(lambda d: parse_lookup(d), {"email": "anna"}) == [
        ("email", "An email address must have an @-sign.")
    ]
