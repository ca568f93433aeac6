"""A/B split steps, the pure part: the file language, the assignment, the statistics,
the walk and the simulation. (Through the dispatcher: tests/test_split_dispatch.py.)"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from nurture.core.experiments import Counts, assign, assignment_text, beats, bucket, winner
from nurture.core.flow import layout
from nurture.core.journey import Facts, Position, SendEmail, Sleep, walk
from nurture.core.profile import LeadProfile
from nurture.core.schema import json_schema, languages
from nurture.core.sequence_parser import parse_sequence
from nurture.core.sequences import HOLDOUT, Sequence, SplitStep, StopRule
from nurture.core.simulation import Standing, simulate
from nurture.core.yamlsource import LocatedList, LocatedMapping, load

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")

HEAD = """\
id: trial
name: Trial
entry:
  triggers: [lead_created]
steps:
"""
GOOD = (
    HEAD
    + """\
  - id: welcome
    split:
      email: {template: welcome, kind: guide, subject: "Welcome"}
      variants:
        control: {weight: 1}
        question: {weight: 1, subject: "A question?"}
        story: {weight: 1, template: welcome-story}
        deep: {weight: 1, goto: deep}
      holdout: 0.2
      stop: {metric: mql, confidence: 0.9, min_per_variant: 50}
  - id: pause
    wait: 2 days
  - id: after
    branch:
      - if: {clicked: welcome}
        goto: end
      - else: deep
  - id: deep
    email: {template: guide, kind: guide}
"""
)


def parsed(text: str = GOOD) -> Sequence:
    result = parse_sequence(text, "trial.yaml")
    assert result.problems == (), result.problems
    assert result.sequence is not None
    return result.sequence


def the_split(sequence: Sequence) -> SplitStep:
    [split] = sequence.splits()
    return split


# --- the file language --------------------------------------------------------------------


def test_a_split_reads_into_its_variants_holdout_and_stop_rule() -> None:
    split = the_split(parsed())
    assert [(v.name, v.weight) for v in split.variants] == [
        ("control", 1), ("question", 1), ("story", 1), ("deep", 1),
    ]  # fmt: skip
    assert split.holdout == 0.2 and split.next == "pause"
    assert split.stop == StopRule("mql", 0.9, 50)
    # Each variant's email: the split's, with the variant's changes; a goto sends none.
    control, question, story = (split.email_of(n) for n in ("control", "question", "story"))
    assert control is not None and (control.template, control.subject) == ("welcome", "Welcome")
    assert question is not None and (question.template, question.subject) == (
        "welcome", "A question?",
    )  # fmt: skip
    assert story is not None and (story.template, story.subject) == ("welcome-story", "Welcome")
    assert split.email_of("deep") is None and split.target_of("deep") == "deep"
    assert split.email_of(HOLDOUT) is None


SPLIT_ONLY = (
    HEAD
    + "  - id: test\n    split:\n{body}  - id: other\n    email: {{template: a, kind: guide}}\n"
)
EMAIL = "      email: {template: a, kind: guide}\n"
TWO = "      variants: {a: {weight: 1}, b: {weight: 1}}\n"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (EMAIL + "      variants: {a: {weight: 0}, b: {weight: 1}}\n",
         "trial.yaml:9: steps[1].split.variants.a.weight: expected a weight, a whole number of"
         ' at least 1, got "0"'),
        (EMAIL + TWO + "      holdout: 1.5\n",
         "trial.yaml:10: steps[1].split.holdout: expected a share from 0 to below 1, such as"
         ' 0.1, got "1.5"'),
        (EMAIL + TWO + "      holdout: yes\n",
         "steps[1].split.holdout: expected a share from 0 to below 1"),
        ("      variants: {a: {weight: 1}, b: {weight: 1, goto: other}}\n",
         "trial.yaml:8: steps[1].split.variants.a: this split has no email to vary: give the"
         " variant a goto, or give the split an email"),
        (EMAIL + "      variants: {a: {weight: 1}, b: {weight: 1, goto: other, subject: x}}\n",
         "steps[1].split.variants.b: a variant either changes the email (subject, template) or"
         " goes to a step (goto), not both"),
        (EMAIL + "      variants: {a: {weight: 1}, b: {weight: 1, goto: nowhere}}\n",
         'steps[1].split.variants.b.goto: no step has the id "nowhere"'),
        (EMAIL + "      variants: {a: {weight: 1}, holdout: {weight: 1}}\n",
         'steps[1].split.variants.holdout: "holdout" is not a variant name'),
        (EMAIL + "      variants: {a: {weight: 1}}\n",
         "steps[1].split: a split needs two variants, or one and a holdout"),
        (EMAIL + "      variants: {a: {weight: 1}}\n      holdout: 0.5\n"
         "      stop: {metric: mql}\n",
         "steps[1].split.stop: a stop rule needs at least two variants"),
        (EMAIL + TWO + "      stop: {metric: opens, confidence: 0.9}\n",
         'steps[1].split.stop.metric: unknown metric "opens"; expected one of human_clicks,'
         " mql, sql"),
        (EMAIL + TWO + "      stop: {metric: sql, confidence: 0.3}\n",
         "steps[1].split.stop.confidence: expected a confidence from 0.5 to below 1"),
        (EMAIL + "      variants: {a: {weight: 1, colour: red}}\n",
         "steps[1].split.variants.a.colour: unknown key; allowed keys here: weight, template,"
         " subject, goto"),
    ],
)  # fmt: skip
def test_a_wrong_split_is_refused_with_its_line_and_field(body: str, problem: str) -> None:
    result = parse_sequence(SPLIT_ONLY.format(body=body), "trial.yaml")
    assert result.sequence is None
    assert any(problem in str(found) for found in result.problems), result.problems


def test_the_split_email_is_checked_and_clicked_on_like_an_email() -> None:
    # A branch may look at the split's clicks; a split with its email is an email on a
    # cycle like any other.
    assert parsed().email_steps()[0].id == "welcome"
    looping = GOOD.replace("goto: end", "goto: welcome")
    problems = [str(p) for p in parse_sequence(looping, "trial.yaml").problems]
    assert any('email step "welcome" is on a cycle' in p for p in problems), problems


def plain(node: object) -> object:
    if isinstance(node, LocatedMapping):
        return {key: plain(value) for key, value in node.entries.items()}
    if isinstance(node, LocatedList):
        return [plain(item) for item in node.items]
    return getattr(node, "value", None)


def test_the_schema_knows_the_split_step() -> None:
    validator = jsonschema.Draft202012Validator(json_schema(languages()["sequence"]))
    root, _ = load(GOOD, "trial.yaml")
    assert list(validator.iter_errors(plain(root))) == []
    wrong = GOOD.replace("weight: 1, goto: deep", "weight: many, goto: deep")
    root, _ = load(wrong, "trial.yaml")
    assert list(validator.iter_errors(plain(root))) != []
    assert parse_sequence(wrong, "trial.yaml").problems != ()


# --- the assignment -----------------------------------------------------------------------


def test_the_same_lead_always_gets_the_same_variant_in_any_process() -> None:
    split = the_split(parsed())
    here = [assign(split, "trial", str(n)) for n in range(200)]
    code = (
        "from nurture.core.experiments import assign\n"
        "from nurture.core.sequence_parser import parse_sequence\n"
        "import sys\n"
        "[split] = parse_sequence(sys.stdin.read(), 'trial.yaml').sequence.splits()\n"
        "print(' '.join(assign(split, 'trial', str(n)) for n in range(200)))\n"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], input=GOOD, capture_output=True, text=True, check=True
    ).stdout.split()
    assert here == there  # no salt, no seed: another process, the same answers
    assert bucket("trial", "welcome", "7") != bucket("trial", "other", "7")  # per split


def test_ten_thousand_leads_are_shared_out_by_the_weights() -> None:
    split = the_split(parsed())  # four variants of weight 1, holdout 0.2: 20 % each
    shares = Counter(assign(split, "trial", f"lead-{n}") for n in range(10_000))
    for name in ("control", "question", "story", "deep", HOLDOUT):
        assert abs(shares[name] / 10_000 - 0.2) < 0.015, shares
    uneven = SplitStep("s", (*split.variants[:1], split.variants[1].__class__("b", 3)))
    shares = Counter(assign(uneven, "trial", f"lead-{n}") for n in range(10_000))
    assert abs(shares["b"] / 10_000 - 0.75) < 0.015, shares


def test_a_winner_goes_to_every_new_lead_and_the_log_says_why() -> None:
    split = the_split(parsed())
    assert {assign(split, "trial", str(n), winner="story") for n in range(50)} == {"story"}
    assert assignment_text(split, "question") == (
        "split: variant question (weight 20 %), email welcome"
    )
    assert assignment_text(split, "deep") == "split: variant deep (weight 20 %), goes to deep"
    assert assignment_text(split, HOLDOUT) == (
        "split: holdout (20 %), gets nothing from this split"
    )


# --- the statistics -----------------------------------------------------------------------


def test_the_confidence_is_the_one_sided_two_proportion_z_test() -> None:
    # By hand: control 20/200 = 10 %, variant 35/200 = 17.5 %; pooled p = 55/400 =
    # 0.1375; SE = sqrt(0.1375 * 0.8625 * (1/200 + 1/200)) = 0.034437; z = 0.075 /
    # 0.034437 = 2.1779; Φ(2.1779) = 0.98529 (normal table: Φ(2.17) = 0.98500,
    # Φ(2.18) = 0.98537).
    control, variant = Counts("a", entered=200, clicked=20), Counts("b", entered=200, clicked=35)
    found = beats(control, variant, "human_clicks")
    assert found == pytest.approx(0.98529, abs=5e-5)
    assert beats(variant, control, "human_clicks") == pytest.approx(1 - 0.98529, abs=5e-5)
    assert beats(Counts("a"), variant, "human_clicks") is None  # no lead: no figure
    assert beats(Counts("a", entered=5), Counts("b", entered=5), "mql") is None  # 0 of 10


def test_the_stop_rule_needs_enough_leads_and_a_clear_leader() -> None:
    stop = StopRule("human_clicks", 0.95, 200)
    a, b = Counts("a", entered=200, clicked=20), Counts("b", entered=200, clicked=35)
    assert winner(stop, [a, b]) == ("b", pytest.approx(0.98529, abs=5e-5))
    assert winner(StopRule("human_clicks", 0.99, 200), [a, b]) is None  # not confident enough
    assert winner(stop, [a, Counts("b", entered=199, clicked=35)]) is None  # too few leads
    c = Counts("c", entered=200, clicked=33)  # close behind b: b does not beat every other
    assert winner(stop, [a, b, c]) is None
    held = Counts(HOLDOUT, entered=500, clicked=0)  # the holdout is never a candidate
    assert winner(stop, [a, b, held]) == ("b", pytest.approx(0.98529, abs=5e-5))


# --- the walk and the simulation ----------------------------------------------------------


def test_the_walk_sends_the_variant_email_and_the_holdout_goes_on_with_nothing() -> None:
    sequence = parsed()
    split = the_split(sequence)
    lead = LeadProfile(email="zoe@example.com")
    by_name: dict[str, str] = {}
    for n in range(100):
        key = str(n)
        by_name.setdefault(assign(split, "trial", key), key)
    start = Position("welcome", T0)

    sent = walk(sequence, start, Facts(lead=lead, lead_key=by_name["question"]), T0, UTC_ZONE)
    assert isinstance(sent.outcome, SendEmail)
    assert (sent.outcome.step.id, sent.outcome.step.subject) == ("welcome", "A question?")
    assert dict(sent.assigned) == {"welcome": "question"}
    assert [d.reason for d in sent.decisions] == [
        "split: variant question (weight 20 %), email welcome"
    ]

    held = walk(sequence, start, Facts(lead=lead, lead_key=by_name[HOLDOUT]), T0, UTC_ZONE)
    assert isinstance(held.outcome, Sleep) and held.outcome.position.step_id == "pause"
    assert dict(held.assigned) == {"welcome": HOLDOUT}

    deep = walk(sequence, start, Facts(lead=lead, lead_key=by_name["deep"]), T0, UTC_ZONE)
    assert isinstance(deep.outcome, SendEmail) and deep.outcome.step.id == "deep"

    # Assigned already (a record): the record wins over the hash, and nothing new is said.
    kept = Facts(lead=lead, lead_key=by_name[HOLDOUT], splits={"welcome": "story"})
    again = walk(sequence, start, kept, T0, UTC_ZONE)
    assert isinstance(again.outcome, SendEmail)
    assert again.outcome.step.template == "welcome-story" and not again.assigned


def test_simulate_shows_the_variants_and_which_one_this_lead_gets() -> None:
    sequence = parsed()
    lead = LeadProfile(email="zoe@example.com")
    timeline = simulate(sequence, lead, T0, 5, standing=Standing(lead_key="3"))
    said = [entry.what for entry in timeline]
    assert said[1] == (
        "split welcome: welcome, kind: guide; control 20 %; question 20 % subject: A question?;"
        " story 20 % template welcome-story; deep 20 % → deep; holdout 20 %: nothing;"
        " stops at 90% on mql, 50 leads each"
    )
    variant = assign(the_split(sequence), "trial", "3")
    assert any(line.startswith(f"split welcome: variant {variant}") or
               line.startswith("split welcome: holdout") for line in said), said  # fmt: skip


def test_the_flow_diagram_draws_one_edge_per_variant() -> None:
    flow = layout(parsed())
    labels = {(e.source, e.target): e.label for e in flow.edges}
    assert labels[("welcome", "deep")] == "variant deep"
    assert (
        labels[("welcome", "pause")]
        == "variant control / variant question / variant story / holdout"
    )
    assert flow.node("welcome").kind == "split"
