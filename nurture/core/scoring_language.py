"""The scoring file's shape (sequences/rules/scoring.yaml): fit rules and grades,
behaviour rules, lifecycle thresholds.

nurture.core.scoring_parser checks the file against these shapes and `nurture schema
scoring` publishes them as JSON Schema; docs/scoring.md explains each key.
"""

from __future__ import annotations

from types import MappingProxyType

from nurture.core.scoring import CLASSIFICATIONS, GRADES
from nurture.core.sequence_language import COUNTRY, STAGES_TEXTS
from nurture.core.shapes import Either, Integer, Items, Keys, Language, Ref, Text, Texts

EVENT_NAME = Text(
    "an event name such as form_submitted (a-z, 0-9 and _)", pattern=r"[a-z][a-z0-9_]*"
)
RULE_ID = r"[a-z0-9][a-z0-9_-]*"
POINTS = Integer("a whole number of points, such as 10 or -20")
DURATION = Text('a duration such as "30 days"')
GRADE = Text("a grade: A, B, C or D", enum=GRADES, noun="grade", listed="grades are A, B, C and D")
REASON = Text("a reason in words")
RANGE = Keys(
    MappingProxyType({"min": Integer(), "max": Integer()}),
    what="a range such as {min: 50, max: 5000}",
)
FIT_CONDITION = Keys(
    MappingProxyType(
        {
            "country": Texts(
                Text('a two-letter country code such as "FR"', pattern=COUNTRY),
                "a country code or a list of them",
            ),
            "company_size": RANGE,
            "job_title_contains": Texts(),
            "source": Texts(),
            "campaign": Texts(),
            "locale": Texts(),
            "stage": STAGES_TEXTS,
            "tags": Texts(),
            "fields": Keys(
                values=Either((Texts(), RANGE)),
                what="custom fields, as in {industry: [manufacturing]} or {sites: {min: 2}}",
            ),
        }
    ),
)
FIT_RULE = Keys(
    MappingProxyType({"if": FIT_CONDITION, "points": POINTS, "reason": REASON}),
    required=("if", "points"),
    what="a rule {if: ..., points: ...}",
)
GRADES_SHAPE = Keys(
    MappingProxyType({grade: Integer("a whole number of points") for grade in GRADES}),
    required=("A", "B", "C"),
    what="the least fit points per grade, such as {A: 40, B: 25, C: 10}",
)
FIT = Keys(
    MappingProxyType(
        {"rules": Items(FIT_RULE, "a list of rules", min_items=1), "grades": GRADES_SHAPE}
    ),
    required=("rules", "grades"),
)
CAP = Keys(
    MappingProxyType({"points": Integer("a whole number of points"), "per": DURATION}),
    required=("points", "per"),
    what='a cap such as {points: 30, per: "30 days"}',
)
BEHAVIOUR_RULE = Keys(
    MappingProxyType(
        {
            "id": Text('a rule id made of a-z, 0-9, "_" and "-"', pattern=RULE_ID),
            "on": EVENT_NAME,
            "where": Keys(
                values=Texts(),
                what="event properties and their values, as in {form: [whitepaper-planning-roi]}",
            ),
            "points": POINTS,
            "cap": CAP,
            "count": Texts(
                Text("a classification", enum=CLASSIFICATIONS, noun="classification"),
                "classifications, such as [human, unknown]",
            ),
            "reason": REASON,
        }
    ),
    required=("on", "points"),
    what="a rule {on: ..., points: ...}",
)
BEHAVIOUR = Keys(
    MappingProxyType(
        {
            "half_life": DURATION,
            "rules": Items(Ref("behaviour_rule"), "a list of rules", min_items=1),
        }
    ),
    required=("rules",),
)
THRESHOLDS = Keys(
    MappingProxyType({"score": Integer("a whole number of points", minimum=1), "grade": GRADE}),
    required=("score",),
    what="thresholds such as {score: 40, grade: C}",
)
EVENT_NAMES = Texts(EVENT_NAME, "a list of event names, or {events: [...], grade: C}")
DECISIVE = Keys(
    MappingProxyType({"events": EVENT_NAMES, "grade": GRADE}),
    required=("events",),
)
ACCOUNT = Keys(
    MappingProxyType(
        {
            "engaged_contacts": Integer("a number of contacts, 2 or more", minimum=2),
            "within": DURATION,
            "on": EVENT_NAMES,
            "grade": GRADE,
        }
    ),
    required=("engaged_contacts",),
    what='an account rule such as {engaged_contacts: 3, within: "30 days"}',
)
LIFECYCLE = Keys(
    MappingProxyType(
        {
            "mql": THRESHOLDS,
            "promote": THRESHOLDS,
            "decisive": Either((EVENT_NAMES, DECISIVE)),
            "account": ACCOUNT,
        }
    ),
    required=("mql", "promote"),
)
SCORING = Keys(
    MappingProxyType({"fit": FIT, "behaviour": BEHAVIOUR, "lifecycle": LIFECYCLE}),
    required=("fit", "behaviour", "lifecycle"),
    what="a mapping with fit, behaviour and lifecycle",
)

LANGUAGE = Language(
    name="scoring",
    title="nurture scoring file",
    description="How leads are scored (fit and behaviour) and when they become MQL and SQL.",
    root=SCORING,
    definitions=MappingProxyType({"behaviour_rule": BEHAVIOUR_RULE}),
)
