"""The broadcast language's shape: every key of a broadcast file, its type and values.

A broadcast reuses the sequence language where it can: its segment is a sequence's
`entry.audience` with three more conditions (tags, score, recent activity), its email
and send window are written as in a sequence. The parser
(nurture.core.broadcast_parser) checks files against these shapes and `nurture schema
broadcast` publishes them as JSON Schema. docs/broadcasts.md explains each key.
"""

from __future__ import annotations

from types import MappingProxyType

from nurture.core.sequence_language import (
    AUDIENCE,
    DURATION,
    EMAIL,
    LOCALE,
    RANGE,
    SEND_WINDOW,
    SEQUENCE_ID,
)
from nurture.core.shapes import Boolean, Either, Integer, Keys, Language, Text, Texts

EVERY = ("day", "week", "month")

SEGMENT = Keys(
    MappingProxyType(
        {
            **AUDIENCE.keys,
            "tags": Texts(Text("a tag"), description="the lead has at least one of these tags"),
            "score": RANGE,
            "active_within": Text(
                'a duration such as "90 days"',
                description="a human click or a form within this duration before the send",
            ),
        }
    ),
    what="a segment: audience conditions (country, stage, fields, tags, score, ...)",
)
AT = Text(
    'a local time: "2026-12-10 09:00" once, or "09:00" with every',
    description="the time in each lead's own time zone",
)
SEND = Keys(
    MappingProxyType(
        {
            "at": AT,
            "every": Text("how often", enum=EVERY, noun="period"),
            "day": Either(
                (Integer("a day of the month, 1 to 31"), Text("a day of the week such as mon")),
                description="with every: month, the day of the month; with every: week, the"
                " day of the week",
            ),
            "starting": Text('a date such as "2027-01-01"'),
            "until": Text('a date such as "2027-12-31"'),
        }
    ),
    required=("at",),
    what='{at: "2026-12-10 09:00"} or {every: month, day: 1, at: "09:00"}',
)
BROADCAST = Keys(
    MappingProxyType(
        {
            "id": Text('an id made of a-z, 0-9 and "-"', pattern=SEQUENCE_ID),
            "name": Text(),
            "enabled": Boolean(),
            "priority": Integer(description="higher goes first under the frequency cap"),
            "locales": Texts(Text('a language code such as "en", "fr" or "pt-BR"', pattern=LOCALE)),
            "timezone": Text(
                'a time zone name such as "Europe/Paris"',
                description="for leads with neither a time zone nor a known country",
            ),
            "segment": SEGMENT,
            "send": SEND,
            "send_window": SEND_WINDOW,
            "email": EMAIL,
        }
    ),
    required=("name", "send", "email"),
    what="a mapping with name, send and email",
)

LANGUAGE = Language(
    name="broadcast",
    title="nurture broadcast file",
    description="A one-off or recurring send to a segment, at a local time in each lead's"
    " time zone.",
    root=BROADCAST,
)

__all__ = ["AT", "BROADCAST", "DURATION", "EVERY", "LANGUAGE", "SEGMENT", "SEND"]
