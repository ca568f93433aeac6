"""The sequence language's shape: every key of a sequence file, its type and values.

The parser (nurture.core.sequence_parser, nurture.core.sequence_steps) checks files
against these shapes and `nurture schema sequence` publishes them as JSON Schema.
docs/sequences.md explains each key.
"""

from __future__ import annotations

from types import MappingProxyType

from nurture.core.sequences import CONTENT_KINDS, SPLIT_METRICS, STAGES
from nurture.core.shapes import (
    Boolean,
    Either,
    Integer,
    Items,
    Keys,
    Language,
    Nothing,
    Number,
    Ref,
    Text,
    Texts,
)

SEQUENCE_ID = r"[a-z0-9-]+"
STEP_ID = r"[a-z0-9_?-]+"
LOCALE = r"[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*"
COUNTRY = r"[A-Za-z]{2}"
TEMPLATE = r"[A-Za-z0-9][A-Za-z0-9_.-]*"

DURATION = Text('a duration such as "2 days"')
STAGE = Text("a stage", enum=STAGES, noun="stage")
STAGES_TEXTS = Texts(STAGE, "a stage or a list of stages")
TARGET = Text('a step id or "end"')
EVENT_NAME = Text("an event name")
PROPERTIES = Keys(values=Text(), what="a mapping of names to texts")
RANGE = Keys(
    MappingProxyType({"min": Integer(), "max": Integer()}),
    what="a range such as {min: 50, max: 500}",
)

# Shorthands for common events: the key names the event, the one allowed
# property narrows it (e.g. `form_submitted: {form: whitepaper-roi}`).
EVENT_SHORTHANDS = MappingProxyType(
    {"form_submitted": "form", "webinar_attended": "webinar", "page_visited": "path"}
)
LEAD_CREATED = Keys(MappingProxyType({"source": Text(), "campaign": Text()}))
EVENT_TRIGGER = Keys(
    MappingProxyType({"name": EVENT_NAME, "match": PROPERTIES}), required=("name",)
)
INACTIVE_TRIGGER = Keys(
    MappingProxyType({"days": Integer("a number of days, at least 1", minimum=1)}),
    required=("days",),
    what="{days: a number of days without a human click or a form}",
)
DAYS = Text('a number of days or weeks such as "60 days"')
FIELD_NAME = Text(
    "a lead field name (letters, digits, '_', '-')", pattern=r"[A-Za-z0-9_][A-Za-z0-9_-]*"
)
DATE_TRIGGER = Keys(
    MappingProxyType(
        {
            "field": FIELD_NAME,
            "before": DAYS,
            "after": DAYS,
            "every": Text("how often the date comes back", enum=("year",)),
        }
    ),
    required=("field",),
    what='{field: a lead field holding a date, before or after: "60 days", every: year}',
)
ACCOUNT_TRIGGER = Keys(
    MappingProxyType(
        {
            "contacts": Integer("a number of people, at least 2", minimum=2),
            "within": DAYS,
        }
    ),
    required=("contacts", "within"),
    what='{contacts: how many people of the account, within: "30 days"}',
)
TRIGGER = Keys(
    MappingProxyType(
        {
            "lead_created": Either((Nothing(), LEAD_CREATED)),
            **{
                kind: Either((Nothing(), Keys(MappingProxyType({prop: Text()}))))
                for kind, prop in EVENT_SHORTHANDS.items()
            },
            "event": EVENT_TRIGGER,
            "stage_reached": STAGE,
            "tag_added": Text("a tag"),
            "inactive": INACTIVE_TRIGGER,
            "date": DATE_TRIGGER,
            "account_engaged": ACCOUNT_TRIGGER,
        }
    ),
    exactly_one=True,
)
TRIGGER_KINDS = tuple(TRIGGER.keys)
TRIGGER_WORDS = ("lead_created", *EVENT_SHORTHANDS)  # may be written bare: `- lead_created`
WRITTEN_TRIGGER = Either((Text("a trigger written alone", enum=TRIGGER_WORDS), TRIGGER))

AUDIENCE = Keys(
    MappingProxyType(
        {
            "country": Texts(Text('a two-letter country code such as "FR"', pattern=COUNTRY)),
            "company_size": RANGE,
            "job_title_contains": Texts(),
            "source": Texts(),
            "locale": Texts(),
            "stage": STAGES_TEXTS,
            "fields": Keys(values=Texts()),
        }
    )
)
REENTRY_AFTER = Keys(
    MappingProxyType({"after": DURATION}),
    required=("after",),
    what='never, or {after: a duration such as "90 days"}',
)
ENTRY = Keys(
    MappingProxyType(
        {
            "triggers": Items(Ref("trigger"), "a list of triggers", min_items=1),
            "audience": AUDIENCE,
            "reentry": Either((Text(enum=("never",)), REENTRY_AFTER)),
        }
    ),
    required=("triggers",),
)
EXIT = Keys(MappingProxyType({"events": Texts(), "stages": STAGES_TEXTS}))
SEND_WINDOW = Keys(
    MappingProxyType(
        {
            "days": Texts(what='days such as "mon-fri"'),
            "hours": Text('hours such as "09:00-17:30"'),
            "holidays": Boolean(description="false: send on public holidays too"),
        }
    ),
    required=("days", "hours"),
)

TEMPLATE_NAME = Text("a template folder name (letters, digits, '-', '_', '.')", pattern=TEMPLATE)
EMAIL = Keys(
    MappingProxyType(
        {
            "template": TEMPLATE_NAME,
            "kind": Text("a content kind", enum=CONTENT_KINDS, noun="content kind"),
            "subject": Text("a subject line"),
        }
    ),
    required=("template", "kind"),
)
WAIT_UNTIL = Keys(
    MappingProxyType(
        {"until": EVENT_NAME, "match": PROPERTIES, "timeout": DURATION, "then": TARGET}
    ),
    required=("until", "timeout"),
    what='a duration such as "2 days", or {until: an event, timeout: a duration}',
)
WAIT = Either((DURATION, WAIT_UNTIL))
CONDITION = Keys(
    MappingProxyType(
        {
            "clicked": Text("an email step id"),
            "not_clicked": Text("an email step id"),
            "opened": Text("an email step id"),
            "score_at_least": Integer("a number of points"),
            "field": Keys(
                values=Either((Texts(), RANGE)),
                exactly_one=True,
                what="{a_field: [values]} or {a_field: {min: .., max: ..}}",
            ),
            "stage": STAGES_TEXTS,
            "event": EVENT_NAME,
        }
    ),
    exactly_one=True,
)
CONDITIONS = tuple(CONDITION.keys)
RULE = Keys(
    MappingProxyType({"if": CONDITION, "goto": TARGET}),
    required=("if", "goto"),
    what="a rule {if: ..., goto: ...}",
)
ELSE = Keys(MappingProxyType({"else": TARGET}), required=("else",))
BRANCH = Items(
    Either((RULE, ELSE)),
    "a list of rules ({if: ..., goto: ...} and a last else)",
    min_items=1,
)
VARIANT_NAME = r"[a-z0-9_-]+"
VARIANT = Keys(
    MappingProxyType(
        {
            "weight": Integer("a weight, a whole number of at least 1", minimum=1),
            "template": TEMPLATE_NAME,
            "subject": Text("a subject line"),
            "goto": TARGET,
        }
    ),
    required=("weight",),
    what="a variant {weight: .., subject or template: ..} or {weight: .., goto: a step id}",
)
VARIANTS = Keys(values=VARIANT, what="a mapping of variant names to variants")
STOP = Keys(
    MappingProxyType(
        {
            "metric": Text("a metric", enum=SPLIT_METRICS, noun="metric"),
            "confidence": Number("a confidence from 0.5 to below 1, such as 0.95", 0.5, 1),
            "min_per_variant": Integer("a number of leads, at least 1", minimum=1),
        }
    ),
    required=("metric",),
    what="{metric: human_clicks, mql or sql, confidence: 0.95, min_per_variant: 200}",
)
SPLIT = Keys(
    MappingProxyType(
        {
            "email": EMAIL,
            "variants": VARIANTS,
            "holdout": Number("a share from 0 to below 1, such as 0.1", 0, 1),
            "stop": STOP,
        }
    ),
    required=("variants",),
    what="a split {email: .., variants: {name: {weight: ..}}, holdout: .., stop: ..}",
)
STEP_KINDS = ("email", "wait", "branch", "split")
STEP = Keys(
    MappingProxyType(
        {
            "id": Text('a step id made of a-z, 0-9, "_", "-" and "?"', pattern=STEP_ID),
            "next": TARGET,
            "email": EMAIL,
            "wait": WAIT,
            "branch": BRANCH,
            "split": SPLIT,
        }
    ),
    one_of=STEP_KINDS,
    what="a step with one of email, wait, branch, split",
)
STAY = "stay"
# `nurture apply` moves leads in flight on earlier versions: old step id -> step id of
# this file, or "stay" (they finish on the version they are on). docs/sequences.md.
MIGRATE = Keys(
    values=Text('a step id of this file, or "stay"', pattern=STEP_ID),
    what='a mapping of earlier step ids to step ids of this file (or "stay")',
    description="Where `nurture apply` moves leads in flight on earlier versions of this"
    ' file: old step id: a step id of this file, or "stay".',
)
SEQUENCE = Keys(
    MappingProxyType(
        {
            "id": Text('an id made of a-z, 0-9 and "-"', pattern=SEQUENCE_ID),
            "name": Text(),
            "enabled": Boolean(),
            "sunset": Boolean(
                description="true: a lead that reaches the end without a click or a form"
                " since it entered gets no more sequence emails"
            ),
            "priority": Integer(),
            "locales": Texts(Text('a language code such as "en", "fr" or "pt-BR"', pattern=LOCALE)),
            "default_locale": Text("a language code"),
            "timezone": Text('a time zone name such as "Europe/Paris"'),
            "entry": ENTRY,
            "exit": EXIT,
            "send_window": SEND_WINDOW,
            "steps": Items(Ref("step"), "a list of steps", min_items=1),
            "migrate": MIGRATE,
        }
    ),
    required=("name", "entry", "steps"),
    what="a mapping with name, entry and steps",
)

LANGUAGE = Language(
    name="sequence",
    title="nurture sequence file",
    description="A nurture sequence: who enters, when it leaves, and the steps between.",
    root=SEQUENCE,
    definitions=MappingProxyType({"trigger": WRITTEN_TRIGGER, "step": STEP}),
)
