"""The sequence language: what a marketer writes, what the engine gets, what `validate` says."""

from __future__ import annotations

import hashlib
import re
from datetime import time
from pathlib import Path
from textwrap import dedent

import pytest

from nurture.core.problems import Problem
from nurture.core.sequence_parser import load_directory, parse_sequence
from nurture.core.sequences import (
    END,
    BranchStep,
    Clicked,
    Duration,
    EmailStep,
    EventSeen,
    FieldMatches,
    IntRange,
    NotClicked,
    Opened,
    Reentry,
    ScoreAtLeast,
    StageIs,
    Trigger,
    TriggerKind,
    WaitStep,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sequences"
EXAMPLE = FIXTURES / "good" / "whitepaper-evaluation.yaml"


def parse(text: str, path: str = "sequences/x.yaml") -> tuple[Problem, ...]:
    return parse_sequence(dedent(text).lstrip("\n"), path).problems


def only_problem(text: str) -> Problem:
    problems = parse(text)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


class FakeTemplates:
    """Knows a few templates; `fr` is missing for one of them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...], str | None]] = []

    def check(self, template: str, locales: tuple[str, ...], subject: str | None) -> list[str]:
        self.calls.append((template, locales, subject))
        if template == "missing":
            return [f'unknown template "{template}"']
        if template == "english-only":
            return ["no fr translation of english-only", "unknown variable lead.nickname"]
        return []


# --- a valid file ------------------------------------------------------------------


def test_full_example_parses_into_the_values_the_engine_uses() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    result = parse_sequence(text, "sequences/whitepaper-evaluation.yaml")

    assert result.problems == ()
    seq = result.sequence
    assert seq is not None
    assert (seq.id, seq.name, seq.enabled, seq.priority) == (
        "whitepaper-evaluation",
        "White-paper downloaders in evaluation",
        True,
        50,
    )
    assert (seq.locales, seq.default_locale, seq.timezone) == (("en", "fr"), "en", "Europe/Paris")
    assert seq.path == "sequences/whitepaper-evaluation.yaml"
    assert seq.source == text
    assert seq.version == hashlib.sha256(text.encode()).hexdigest()[:16]

    assert seq.triggers == (
        Trigger(TriggerKind.LEAD_CREATED, line=11),
        Trigger(
            TriggerKind.LEAD_CREATED,
            match={"source": "webinar", "campaign": "spring-2026"},
            line=12,
        ),
        Trigger(
            TriggerKind.EVENT, event="form_submitted", match={"form": "whitepaper-roi"}, line=13
        ),
        Trigger(TriggerKind.EVENT, event="webinar_attended", line=14),
        Trigger(TriggerKind.EVENT, event="page_visited", match={"path": "/pricing"}, line=15),
        Trigger(TriggerKind.EVENT, event="trial_started", match={"plan": "pro"}, line=16),
        Trigger(TriggerKind.STAGE_REACHED, stage="mql", line=17),
        Trigger(TriggerKind.TAG_ADDED, tag="evaluation", line=18),
    )
    audience = seq.audience
    assert audience.countries == {"FR", "BE", "CH"}  # "fr" was written in lower case
    assert audience.company_size == IntRange(50, 5000)
    assert audience.job_title_contains == ("directeur", "directrice", "head", "vp")
    assert audience.sources == {"website", "webinar"}
    assert audience.locales == {"fr", "en"}
    assert audience.stages == {"lead", "mql"}
    assert audience.fields == {"industry": {"manufacturing", "logistics"}}
    assert seq.reentry == Reentry(allowed=True, cooldown=Duration(90, "days"))
    assert seq.exit.events == {"demo_requested", "pricing_form_submitted"}
    assert seq.exit.stages == {"sql", "customer", "disqualified"}
    assert seq.window is not None
    assert seq.window.days == {0, 1, 2, 3, 4}
    assert (seq.window.start, seq.window.end) == (time(9, 0), time(17, 30))

    assert [step.id for step in seq.steps] == [
        "testimonial",
        "pause-1",
        "webinar-wait",
        "clicked-guide?",
        "comparison",
        "pause-2",
        "market-study",
        "guide",
    ]
    assert seq.step("testimonial") == EmailStep(
        id="testimonial",
        template="customer-story-acme",
        kind="testimonial",
        subject="{{ lead.first_name }}, how Acme cut planning time",
        next="pause-1",
        line=38,
    )
    assert seq.step("pause-1") == WaitStep(
        id="pause-1", duration=Duration(3, "business_days"), next="webinar-wait", line=43
    )
    wait = seq.step("webinar-wait")
    assert isinstance(wait, WaitStep)
    assert (wait.until_event, dict(wait.until_match), wait.timeout) == (
        "webinar_attended",
        {"webinar": "planning-101"},
        Duration(7, "days"),
    )
    assert (wait.on_event, wait.next) == ("guide", "clicked-guide?")
    branch = seq.step("clicked-guide?")
    assert isinstance(branch, BranchStep)
    assert [(rule.condition, rule.goto) for rule in branch.rules] == [
        (Clicked("testimonial"), "comparison"),
        (NotClicked("testimonial"), "pause-2"),
        (Opened("testimonial"), "pause-2"),
        (ScoreAtLeast(40), "market-study"),
        (FieldMatches("company_size", range=IntRange(min=500)), "market-study"),
        (StageIs(frozenset({"mql"})), END),
        (EventSeen("webinar_attended"), "guide"),
    ]
    assert branch.otherwise == "guide"
    assert [rule.line for rule in branch.rules] == [53, 55, 57, 59, 61, 63, 65]
    assert seq.step("comparison").next == "guide"  # type: ignore[union-attr]
    assert seq.step("market-study").next == "guide"  # type: ignore[union-attr]
    assert seq.step("guide").next == END  # type: ignore[union-attr]


def test_a_short_file_gets_the_documented_defaults() -> None:
    text = dedent(
        """
        name: Welcome
        entry:
          triggers: [lead_created]
        steps:
          - email: {template: welcome, kind: onboarding}
          - wait: 1 day
          - wait: {until: webinar_attended, timeout: 2 weeks}
          - branch:
              - if: {field: {industry: retail}}
                goto: step-2
        """
    ).lstrip()
    result = parse_sequence(text, "sequences/welcome-series.yml")

    assert result.problems == ()
    seq = result.sequence
    assert seq is not None
    assert seq.id == "welcome-series"  # from the file name
    assert (seq.enabled, seq.priority, seq.timezone, seq.window) == (True, 0, "UTC", None)
    assert (seq.locales, seq.default_locale) == (("en",), "en")
    assert seq.reentry == Reentry(allowed=False)
    assert seq.triggers == (Trigger(TriggerKind.LEAD_CREATED, line=3),)
    assert [step.id for step in seq.steps] == ["step-1", "step-2", "step-3", "step-4"]
    assert [getattr(step, "next", None) for step in seq.steps] == [
        "step-2",
        "step-3",
        "step-4",
        None,
    ]
    wait_until = seq.steps[2]
    assert isinstance(wait_until, WaitStep)
    assert wait_until.on_event == wait_until.next == "step-4"
    branch = seq.steps[3]
    assert isinstance(branch, BranchStep)
    assert branch.rules[0].condition == FieldMatches("industry", values=frozenset({"retail"}))
    assert branch.otherwise == END


def test_unquoted_yaml_words_keep_the_text_the_marketer_wrote() -> None:
    # YAML 1.1 would read `no` as false and 9:00 as 540; a locale and hours are text.
    problems = parse(
        """
        name: Norsk
        locales: [no, en]
        entry: {triggers: [lead_created]}
        send_window: {days: mon-fri, hours: 9:00-17:00}
        steps:
          - email: {template: hello, kind: newsletter}
        """
    )
    assert problems == ()


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("[mon, wed, fri]", {0, 2, 4}),
        ('"mon, wed,fri"', {0, 2, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ("weekdays", {0, 1, 2, 3, 4}),
        ("every day", set(range(7))),
    ],
)
def test_send_window_days_as_a_marketer_writes_them(days: str, expected: set[int]) -> None:
    text = (
        "name: x\n"
        "entry: {triggers: [lead_created]}\n"
        f"send_window: {{days: {days}, hours: 08:00-12:00}}\n"
        "steps: [{wait: 1 day}]\n"
    )
    seq = parse_sequence(text, "sequences/x.yaml").sequence

    assert seq is not None and seq.window is not None
    assert seq.window.days == expected
    assert (seq.window.start, seq.window.end) == (time(8, 0), time(12, 0))


# --- bad files: each mistake at its line, saying what was expected ------------------

BAD = [
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - email: {template: a, kind: guide}
          - wait: 2 dayz
        """,
        5,
        'steps[2].wait: expected a duration such as "2 days"',
        id="bad-duration",
    ),
    pytest.param(
        """
        name: x
        entry:
          triggers: [lead_created]
        steps:
          - wait: 1 day
        colour: blue
        """,
        6,
        "colour: unknown key; allowed keys here: id, name, enabled",
        id="unknown-top-key",
    ),
    pytest.param(
        """
        name: x
        entry:
          triggers: [lead_created]
        steps:
          - id: hello
            email: {template: a, kind: guide, subjct: Hi}
        """,
        6,
        "steps[1].email.subjct: unknown key; allowed keys here: template, kind, subject",
        id="unknown-email-key",
    ),
    pytest.param(
        """
        entry:
          triggers: [lead_created]
        steps:
          - wait: 1 day
        """,
        1,
        'missing required key "name"',
        id="missing-name",
    ),
    pytest.param(
        """
        name: x
        entry:
          audience: {country: FR}
        steps:
          - wait: 1 day
        """,
        3,
        'entry: missing required key "triggers"',
        id="missing-triggers",
    ),
    pytest.param(
        """
        name: x
        entry:
          triggers: []
        steps:
          - wait: 1 day
        """,
        3,
        "entry.triggers: expected at least one trigger",
        id="no-triggers",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps: []
        """,
        3,
        "steps: expected at least one step",
        id="empty-steps",
    ),
    pytest.param(
        """
        name: x
        priority: high
        entry: {triggers: [lead_created]}
        steps:
          - wait: 1 day
        """,
        2,
        'priority: expected a whole number, got "high"',
        id="wrong-type",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: a
            email: {template: a, kind: guide}
          - id: a
            wait: 1 day
        """,
        6,
        'steps[2].id: duplicate step id "a" (first used at line 4)',
        id="duplicate-step-id",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - email: {template: a, kind: guide}
            next: thank-you
        """,
        5,
        'steps[1].next: no step has the id "thank-you"',
        id="dangling-next",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: a
            email: {template: a, kind: guide}
          - branch:
              - if: {clicked: a}
                goto: b
        """,
        8,
        'steps[2].branch[1].goto: no step has the id "b"',
        id="dangling-goto",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: a
            email: {template: a, kind: guide}
          - branch:
              - if: {clicked: a}
                goto: end
              - else: nowhere
        """,
        9,
        'steps[2].branch[2].else: no step has the id "nowhere"',
        id="dangling-else",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - wait: {until: webinar_attended, timeout: 3 days, then: replay}
        """,
        4,
        'steps[1].wait.then: no step has the id "replay"',
        id="dangling-then",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - email: {template: a, kind: brochure}
        """,
        4,
        'unknown content kind "brochure"; expected one of testimonial, guide',
        id="unknown-kind",
    ),
    pytest.param(
        """
        name: x
        entry:
          triggers:
            - stage_reached: hot
        steps:
          - wait: 1 day
        """,
        4,
        'entry.triggers[1].stage_reached: unknown stage "hot"; stages are subscriber, lead',
        id="unknown-stage-trigger",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        exit:
          stages: [sql, won]
        steps:
          - wait: 1 day
        """,
        4,
        'exit.stages: unknown stage "won"',
        id="unknown-stage-exit",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        send_window:
          days: mon-fri
          hours: "17:30-09:00"
        steps:
          - wait: 1 day
        """,
        5,
        'send_window.hours: expected hours such as "09:00-17:30"',
        id="bad-hours",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        send_window:
          days: [mon, tues-day]
          hours: "09:00-17:30"
        steps:
          - wait: 1 day
        """,
        4,
        "send_window.days: expected days such as",
        id="bad-days",
    ),
    pytest.param(
        """
        name: x
        timezone: Europe/Lyon
        entry: {triggers: [lead_created]}
        steps:
          - wait: 1 day
        """,
        2,
        'timezone: unknown time zone "Europe/Lyon"',
        id="unknown-timezone",
    ),
    pytest.param(
        """
        name: x
        entry:
          triggers: [lead_created]
          reentry: sometimes
        steps:
          - wait: 1 day
        """,
        4,
        'entry.reentry: expected never, or {after: a duration such as "90 days"}, got "sometimes"',
        id="bad-reentry",
    ),
    pytest.param(
        """
        name: x
        entry:
          triggers: [lead_created]
          reentry: {after: soon}
        steps:
          - wait: 1 day
        """,
        4,
        "entry.reentry.after: expected a duration",
        id="bad-reentry-duration",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: pause
            wait: 2 days
          - branch:
              - if: {clicked: pause}
                goto: end
        """,
        7,
        'steps[2].branch[1].if.clicked: "pause" is not an email step',
        id="clicked-on-a-wait",
    ),
    pytest.param(
        """
        name: x
        locales: [en, fr]
        default_locale: de
        entry: {triggers: [lead_created]}
        steps:
          - wait: 1 day
        """,
        3,
        'default_locale: "de" is not one of locales (en, fr)',
        id="default-locale-not-listed",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: hello
            email: {template: a, kind: guide}
            wait: 1 day
        """,
        4,
        "steps[1]: expected exactly one of email, wait, branch, split; found email and wait",
        id="two-step-kinds",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: a
            email: {template: a, kind: guide}
          - branch:
              - else: end
              - if: {opened: a}
                goto: end
        """,
        7,
        "steps[2].branch[1]: else must be the last rule of a branch",
        id="else-not-last",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - wait: {until: demo_requested}
        """,
        4,
        'steps[1].wait: missing required key "timeout"',
        id="wait-until-without-timeout",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: Welcome Mail
            email: {template: a, kind: guide}
        """,
        4,
        'steps[1].id: expected a step id made of a-z, 0-9, "_", "-" and "?", got "Welcome Mail"',
        id="bad-step-id",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - email: {template: ../../etc/passwd, kind: guide}
        """,
        4,
        "steps[1].email.template: expected a template folder name",
        id="template-outside-folder",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - wait: 1 day
          - wait: 2 days
            next: end
          - email: {template: a, kind: guide}
        """,
        7,
        'steps[3]: step "step-3" can never be reached',
        id="unreachable",
    ),
    pytest.param(
        """
        name: x
        entry:
          triggers:
            - event: {match: {plan: pro}}
        steps:
          - wait: 1 day
        """,
        4,
        'entry.triggers[1].event: missing required key "name"',
        id="event-without-name",
    ),
    pytest.param(
        """
        name: x
        entry:
          triggers: [lead_created]
          audience:
            company_size: {min: 500, max: 50}
        steps:
          - wait: 1 day
        """,
        5,
        "entry.audience.company_size: min (500) is greater than max (50)",
        id="empty-size-range",
    ),
    pytest.param(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: end
            wait: 1 day
        """,
        4,
        '"end" is reserved',
        id="step-named-end",
    ),
    pytest.param(
        """
        name: [unclosed
        entry: {triggers: [lead_created]}
        """,
        2,
        "YAML syntax error",
        id="yaml-syntax",
    ),
    pytest.param(
        "",
        1,
        "the file is empty",
        id="empty-file",
    ),
]


@pytest.mark.parametrize(("text", "line", "phrase"), BAD)
def test_a_bad_file_says_where_and_what_was_expected(text: str, line: int, phrase: str) -> None:
    problem = only_problem(text)

    assert problem.path == "sequences/x.yaml"
    assert problem.line == line, str(problem)
    assert phrase in problem.message
    assert str(problem).startswith(f"sequences/x.yaml:{line}: ")


def test_every_problem_of_a_file_is_reported_in_line_order() -> None:
    result = parse_sequence(
        dedent(
            """\
            name: x
            timezone: Mars/Olympus
            entry:
              triggers: [lead_created]
            steps:
              - email: {template: a, kind: brochure}
              - wait: 2 dayz
              - email: {template: b, kind: guide}
                next: nowhere
            """
        ),
        "sequences/x.yaml",
    )

    assert result.sequence is None
    assert [(p.line, p.message.split(":")[0]) for p in result.problems] == [
        (2, "timezone"),
        (6, "steps[1].email.kind"),
        (7, "steps[2].wait"),
        (9, "steps[3].next"),
    ]


def test_duplicate_keys_are_reported_instead_of_the_last_one_winning() -> None:
    problems = parse(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: hello
            email:
              template: welcome
              kind: guide
              template: welcome-v2
        """
    )

    assert [str(p) for p in problems] == [
        'sequences/x.yaml:8: duplicate key "template" (first given at line 6)'
    ]


def test_a_python_tag_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = parse_sequence(
        "name: x\n"
        "entry: {triggers: [lead_created]}\n"
        "steps:\n"
        f'  - wait: !!python/object/apply:os.system ["touch {marker}"]\n',
        "sequences/x.yaml",
    )

    assert result.sequence is None
    assert [str(p) for p in result.problems] == [
        "sequences/x.yaml:4: unsupported YAML tag !!python/object/apply:os.system"
    ]
    assert not marker.exists()


def test_a_file_too_large_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """An 11 MB file of 350,000 steps once took 2.5 GB to parse."""
    from nurture.core.scoring_parser import load_scoring
    from nurture.core.yamlsource import MAX_FILE_BYTES

    folder = tmp_path / "sequences"
    folder.mkdir()
    step = "  - wait: 1 day\n"
    huge = "name: x\nentry: {triggers: [lead_created]}\nsteps:\n" + step * (
        MAX_FILE_BYTES // len(step) + 1
    )
    (folder / "huge.yaml").write_text(huge)
    (folder / "fine.yaml").write_text(
        "name: y\nentry: {triggers: [lead_created]}\nsteps:\n  - wait: 1 day\n"
    )
    catalog = load_directory(folder)
    [problem] = catalog.problems
    assert str(problem).startswith(f"{folder / 'huge.yaml'}:1: the file is ")
    assert f"more than the {MAX_FILE_BYTES:,} an authored file may have: split it" in str(problem)
    assert list(catalog.sequences) == ["fine"]  # the others load
    (folder / "scoring.yaml").write_text("# " + "x" * MAX_FILE_BYTES)
    assert "split it" in str(load_scoring(folder / "scoring.yaml").problems[0])


def test_a_sequence_with_too_many_steps_says_how_many_it_may_have() -> None:
    from nurture.core.sequence_parser import MAX_STEPS

    steps = "".join(f"  - {{id: s{n}, wait: 1 day}}\n" for n in range(MAX_STEPS + 1))
    result = parse_sequence(
        "name: x\nentry: {triggers: [lead_created]}\nsteps:\n" + steps, "sequences/x.yaml"
    )
    assert result.sequence is None
    assert [str(p) for p in result.problems] == [
        f"sequences/x.yaml:4: steps: {MAX_STEPS + 1:,} of them: a sequence has at most"
        f" {MAX_STEPS}; split the journey into sequences that hand over to each other"
    ]


def test_a_recursive_anchor_is_a_problem_not_a_hang() -> None:
    problems = parse(
        """
        name: x
        entry: {triggers: &loop [*loop]}
        steps:
          - wait: 1 day
        """
    )

    assert any("alias refers to itself" in p.message for p in problems)


@pytest.mark.parametrize("replacement", [None, "[]", "{}", "~", "7"])
def test_no_edit_of_one_line_makes_a_file_vanish_without_a_reason(replacement: str | None) -> None:
    # Deleting a line, or replacing its value with a value of the wrong shape, must
    # either still parse or say why: validate never stays silent about a lost file.
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    for number, line in enumerate(lines):
        key = re.match(r"\s*(- )?[\w?-]+:", line)
        if replacement is None:
            edited = lines[:number] + lines[number + 1 :]
        elif key is not None:
            edited = [*lines[:number], f"{key.group(0)} {replacement}\n", *lines[number + 1 :]]
        else:
            continue
        result = parse_sequence("".join(edited), "sequences/x.yaml")
        assert (result.sequence is None) == bool(result.problems), (number + 1, replacement)


# --- flow: cycles ------------------------------------------------------------------


def test_a_loop_through_a_wait_is_allowed() -> None:
    problems = parse(
        """
        name: Nudge until they book
        entry: {triggers: [lead_created]}
        steps:
          - id: invite
            email: {template: invite, kind: event_invitation}
          - id: wait-for-booking
            wait: {until: meeting_booked, timeout: 3 days, then: end}
          - id: still-interested?
            branch:
              - if: {score_at_least: 20}
                goto: wait-for-booking
        """
    )
    assert problems == ()


def test_a_cycle_without_a_wait_names_its_steps() -> None:
    problems = parse(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - wait: 1 day
          - id: hot?
            branch:
              - if: {score_at_least: 50}
                goto: end
              - else: cold?
          - id: cold?
            branch:
              - if: {stage: lead}
                goto: hot?
        """
    )

    assert [str(p) for p in problems] == [
        "sequences/x.yaml:5: steps[2]: cycle without a wait: hot? -> cold? -> hot?"
    ]


def test_an_email_on_a_cycle_is_refused_even_with_a_wait() -> None:
    problems = parse(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: reminder
            email: {template: reminder, kind: other}
          - id: pause
            wait: 1 week
            next: reminder
        """
    )

    assert [str(p) for p in problems] == [
        'sequences/x.yaml:4: steps[1]: email step "reminder" is on a cycle'
        " (reminder -> pause -> reminder); an email is sent at most once per enrollment"
    ]


def test_a_step_that_jumps_to_itself_is_a_cycle_without_a_wait() -> None:
    problem = only_problem(
        """
        name: x
        entry: {triggers: [lead_created]}
        steps:
          - id: again
            branch:
              - if: {event: trial_started}
                goto: again
        """
    )
    assert (problem.line, problem.message) == (
        4,
        "steps[1]: cycle without a wait: again -> again",
    )


# --- templates ------------------------------------------------------------------------


def test_template_checker_messages_appear_at_the_email_step_line() -> None:
    templates = FakeTemplates()
    text = dedent(
        """\
        name: x
        locales: [fr, en]
        default_locale: en
        entry: {triggers: [lead_created]}
        steps:
          - id: fine
            email: {template: welcome, kind: onboarding, subject: "Hi {{ lead.first_name }}"}
          - wait: 1 day
          - id: gone
            email: {template: missing, kind: guide}
          - id: partial
            email:
              template: english-only
              kind: guide
        """
    )

    result = parse_sequence(text, "sequences/x.yaml", templates)

    assert [str(p) for p in result.problems] == [
        'sequences/x.yaml:9: steps[3].email: unknown template "missing"',
        "sequences/x.yaml:11: steps[4].email: no fr translation of english-only",
        "sequences/x.yaml:11: steps[4].email: unknown variable lead.nickname",
    ]
    # The default locale comes first: it is the one a missing translation falls back to.
    assert templates.calls == [
        ("welcome", ("en", "fr"), "Hi {{ lead.first_name }}"),
        ("missing", ("en", "fr"), None),
        ("english-only", ("en", "fr"), None),
    ]


# --- versions and folders ----------------------------------------------------------


def test_the_version_changes_when_the_file_changes(tmp_path: Path) -> None:
    file = tmp_path / "welcome.yaml"
    file.write_text(
        "name: Welcome\nentry: {triggers: [lead_created]}\nsteps:\n  - wait: 1 day\n",
        encoding="utf-8",
    )
    before = load_directory(tmp_path).sequences["welcome"].version
    again = load_directory(tmp_path).sequences["welcome"].version
    file.write_text(file.read_text(encoding="utf-8").replace("1 day", "2 days"), encoding="utf-8")
    after = load_directory(tmp_path).sequences["welcome"].version

    assert before == again
    assert after != before
    assert len(after) == 16 and int(after, 16) >= 0


def test_a_broken_file_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)

    catalog = load_directory(Path("mixed"))

    assert sorted(catalog.sequences) == ["onboarding", "renewal"]
    assert catalog.sequences["renewal"].path == "mixed/renewal.yml"
    assert [(p.path, p.line) for p in catalog.problems] == [
        ("mixed/broken.yaml", 7),
        ("mixed/same-id.yaml", 1),
    ]
    assert "YAML syntax error" in catalog.problems[0].message
    assert catalog.problems[1].message == (
        'id: "renewal" is already the id of mixed/renewal.yml; ids must be unique'
    )


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes("name: Été\n".encode("latin-1"))

    catalog = load_directory(tmp_path)

    assert catalog.sequences == {}
    assert [p.message for p in catalog.problems] == [
        "the file is not UTF-8 text (invalid continuation byte)"
    ]


def test_a_missing_folder_is_a_problem(tmp_path: Path) -> None:
    catalog = load_directory(tmp_path / "nope")

    assert catalog.sequences == {}
    assert [str(p) for p in catalog.problems] == [f"{tmp_path / 'nope'}:0: not a folder"]


@pytest.mark.parametrize(
    ("text", "where", "shape_key"),
    [
        ("name: x\ncolour: blue\n", "colour", ()),
        ("steps:\n  - {id: a, delay: 2 days}\n", "steps[1].delay", ("steps",)),
        ("steps:\n  - email: {template: a, kind: guide, cc: x}\n", "steps[1].email.cc",
         ("steps", "email")),
        ("entry: {triggers: [lead_created], audience: {size: 3}}\n", "entry.audience.size",
         ("entry", "audience")),
    ],
)  # fmt: skip
def test_the_keys_a_file_may_use_are_the_language_s_own(
    text: str, where: str, shape_key: tuple[str, ...]
) -> None:
    """The parser lists the allowed keys from the shapes `nurture schema` publishes."""
    from nurture.core.sequence_language import SEQUENCE, STEP
    from nurture.core.shapes import Keys

    shape: Keys = SEQUENCE
    for key in shape_key:
        shape = STEP if key == "steps" else shape.nested(key)
    problems = [p.message for p in parse_sequence(text, "sequences/x.yaml").problems]
    allowed = ", ".join(shape.allowed or ())
    assert f"{where}: unknown key; allowed keys here: {allowed}" in problems
