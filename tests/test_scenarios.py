"""Scenario files (tests/sequences/*.yaml) played by `nurture test` and from pytest
through `nurture.scenarios`: the shipped journeys pass, a changed wait fails naming
the step and both dates, and a broken scenario says file:line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nurture import scenarios
from nurture.cli import cli
from nurture.core.scenario import parse_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests" / "sequences"
CLICKER = SCENARIOS / "whitepaper-evaluation-clicker.yaml"


def nurture(*args: str, sequences: Path = ROOT / "sequences") -> Result:
    env = {
        "NURTURE_SEQUENCES_DIR": str(sequences),
        "NURTURE_TEMPLATES_DIR": str(ROOT / "templates"),
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_every_shipped_journey_passes_its_scenarios() -> None:
    results = scenarios.run_all(SCENARIOS)
    shipped = {path.stem for path in (ROOT / "sequences").glob("*.yaml")}
    played = (parse_scenario(p.read_text(), str(p))[0] for p in SCENARIOS.glob("*.yaml"))
    tested = {scenario.sequence for scenario in played if scenario is not None}
    assert shipped <= tested, f"no scenario plays {sorted(shipped - tested)}"
    assert [str(f) for result in results for f in result.failures] == []
    assert len(results) == len(list(SCENARIOS.glob("*.yaml")))


def test_nurture_test_runs_the_scenarios_beside_the_sequences_folder() -> None:
    result = nurture("test")
    assert result.exit_code == 0, result.output
    assert "ok   tests/sequences/whitepaper-evaluation-clicker.yaml: A reader who clicks" in (
        result.output.replace(str(ROOT) + "/", "")
    )
    assert result.output.rstrip().endswith(
        f"{len(list(SCENARIOS.glob('*.yaml')))} passed, 0 failed"
    )


def changed_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    folder = tmp_path / "sequences"
    shutil.copytree(ROOT / "sequences", folder)
    source = folder / f"{name}.yaml"
    text = source.read_text(encoding="utf-8")
    assert old in text
    source.write_text(text.replace(old, new, 1), encoding="utf-8")
    return folder


def test_a_scenario_fails_when_a_wait_is_changed(tmp_path: Path) -> None:
    # The story's pause goes from 3 to 5 business days: the comparison, due on
    # Thursday 5 March, now leaves on Monday 9 March, and everything after it moves.
    folder = changed_copy(
        tmp_path, "whitepaper-evaluation", "wait: 3 business days", "wait: 5 business days"
    )
    result = scenarios.run(CLICKER, sequences_dir=folder)
    assert not result.passed
    expected_at = line_of(CLICKER, "- step: comparison")
    first = result.failures[0]
    assert (first.path, first.line) == (str(CLICKER), expected_at)
    assert first.message == (
        "email 2 (comparison): expected on Thu 2026-03-05 10:00 CET, got Mon 2026-03-09 10:00 CET"
    )
    assert len(result.failures) == 4  # the comparison, the two emails after it, the exit

    printed = nurture("test", str(CLICKER), sequences=folder)
    assert printed.exit_code == 1
    assert f"FAIL {CLICKER}" in printed.output
    assert f"{CLICKER}:{expected_at}: email 2 (comparison): expected on Thu 2026-03-05" in (
        printed.output
    )
    assert "sends comparison" in printed.output  # the journey played, to see why
    assert printed.output.rstrip().endswith("0 passed, 1 failed")


def test_a_removed_step_or_a_changed_branch_fails_too(tmp_path: Path) -> None:
    folder = changed_copy(
        tmp_path, "whitepaper-evaluation", "if: {clicked: testimonial}", "if: {opened: guide}"
    )
    failures = scenarios.run(CLICKER, sequences_dir=folder).failures
    assert failures[0].message.startswith(
        "email 2: expected comparison on Thu 2026-03-05 10:00 CET, got guide on Thu 2026-03-05"
    )


def write(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


LEAD = "lead: {country: FR, timezone: Europe/Paris, company_size: 240}\n"
START = "scenario: case\nsequence: whitepaper-evaluation\nstart: 2026-03-02 10:00\n"


AFTER_TESTIMONIAL = [
    "not expected: guide sent on Thu 2026-03-05 10:00 CET",
    "not expected: market-study sent on Wed 2026-03-11 10:00 CET",
    "not expected: self-assessment sent on Wed 2026-03-18 10:00 CET",
]


@pytest.mark.parametrize(
    ("events", "expect", "failures"),
    [
        # A click after the branch looked is too late: the reader gets the guide.
        ("events: [{click: testimonial, at: +5d}]\n",
         "expect: {emails: [{step: testimonial}, {step: comparison}]}\n",
         ["email 2: expected comparison at any time, got guide on Thu 2026-03-05 10:00 CET",
          *AFTER_TESTIMONIAL[1:]]),
        # Sales takes the lead: stage sql is an exit of the sequence.
        ("events: [{stage: sql, at: 2026-03-04 12:00}]\n",
         "expect: {emails: [{step: testimonial}],"
         " leaves: {reason: 'stage: sql', on: 2026-03-04}}\n",
         []),
        ("events: [{event: pricing_form_submitted, at: +1d}]\n",
         "expect: {emails: [{step: testimonial}], leaves: {reason: completed}}\n",
         ['expected to leave for "completed", got "goal: pricing_form_submitted"']),
        # A tolerance: 09:30 is within an hour of 10:00.
        ("", "expect:\n  emails:\n"
         "    - {step: testimonial, at: '2026-03-02 09:30', within: 1 hour}\n"
         "    - {step: guide, on: 2026-03-05}\n    - {step: market-study, on: 2026-03-11}\n"
         "    - {step: self-assessment, on: 2026-03-18}\n", []),
        ("", "expect: {emails: [{step: testimonial, at: '2026-03-02 09:30'}]}\n",
         ["email 1 (testimonial): expected on Mon 2026-03-02 09:30 CET,"
          " got Mon 2026-03-02 10:00 CET",
          *AFTER_TESTIMONIAL]),
        ("", "expect: {emails: [{step: testimonial, template: eval-guide}]}\n",
         [*AFTER_TESTIMONIAL,
          "email 1 (testimonial): expected template eval-guide, got eval-story-moulages-berthier"]),
        ("", "expect: {emails: [{step: testimonial}, {step: guide}, {step: market-study},"
         " {step: self-assessment}, {step: comparison, on: 2026-03-25}]}\n",
         ["email 5 (comparison): expected on 2026-03-25, got no email"]),
    ],
)  # fmt: skip
def test_what_the_lead_does_and_what_is_expected(
    tmp_path: Path, events: str, expect: str, failures: list[str]
) -> None:
    path = write(tmp_path, START + LEAD + events + expect)
    got = [f.message for f in scenarios.run(path, sequences_dir=ROOT / "sequences").failures]
    assert got == failures


@pytest.mark.parametrize(
    ("lead", "expect", "failures"),
    [
        ("lead: {country: FR, company_size: 240, consent: false}\n",
         "expect: {kept_out: consent}\n", []),
        ("lead: {country: FR, company_size: 240, unsubscribed: true}\n",
         "expect: {emails: [{step: testimonial}]}\n",
         ["the lead gets nothing from whitepaper-evaluation: the lead may not be mailed:"
          " unsubscribed"]),
        ("lead: {country: FR, company_size: 240, stage: disqualified}\n",
         "expect: {kept_out: disqualified}\n", []),
        ("lead: {country: FR, company_size: 240}\n", "expect: {kept_out: audience}\n",
         ['expected the lead kept out ("audience"), but it enters']),
    ],
)  # fmt: skip
def test_a_lead_kept_out(tmp_path: Path, lead: str, expect: str, failures: list[str]) -> None:
    path = write(tmp_path, START + lead + expect)
    got = [f.message for f in scenarios.run(path, sequences_dir=ROOT / "sequences").failures]
    assert got == failures


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (START + LEAD + "expect: {}\ncolour: blue\n", 6,
         "colour: unknown key; allowed keys here: scenario, sequence, start, days, lead,"),
        (START + LEAD + "events: [{click: testimonial, at: tomorrow}]\nexpect: {}\n", 5,
         'events[1].at: expected a time: "+3d", "+36h" or "+90m" after the start, or a local'),
        (START + LEAD + "events: [{event: demo_requested}]\nexpect: {}\n", 5,
         'events[1]: missing required key "at"'),
        (START + LEAD + "events: [{at: +1d, click: testimonial, open: guide}]\nexpect: {}\n", 5,
         "events[1]: expected one of click, open, event, form_submitted, webinar_attended,"
         " page_visited, stage, score; found click and open"),
        (START + LEAD + "expect:\n  emails:\n    - {step: guide, on: 5 March}\n", 7,
         'expect.emails[1].on: expected a local date such as "2026-03-04", got "5 March"'),
        (START + LEAD + "expect:\n  emails:\n    - {step: guide, within: 2 business days}\n", 7,
         'expect.emails[1].within: expected a tolerance such as "30 minutes"'),
        (START + "lead: {stage: hot}\nexpect: {}\n", 4,
         'lead.stage: unknown stage "hot"; expected one of subscriber, lead'),
        ("scenario: x\nsequence: whitepaper-evaluation\nlead: {}\nexpect: {}\n", 1,
         'missing required key "start"'),
        ("scenario: [x\n", 2, "YAML syntax error"),
        (START.replace("whitepaper-evaluation", "no-such-journey") + LEAD + "expect: {}\n", 2,
         'sequence: no sequence "no-such-journey" in'),
    ],
)  # fmt: skip
def test_a_bad_scenario_file_says_where_and_what(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, text)
    result = scenarios.run(path, sequences_dir=ROOT / "sequences")
    assert [(f.path, f.line) for f in result.failures][:1] == [(str(path), line)]
    assert message in result.failures[0].message, result.failures
    printed = nurture("test", str(path))
    assert printed.exit_code == 1
    assert f"{path}:{line}: " in printed.output


def test_a_broken_sequence_file_is_named_with_its_problem(tmp_path: Path) -> None:
    folder = changed_copy(tmp_path, "whitepaper-evaluation", "wait: 3 business days", "wait: soon")
    failure = scenarios.run(CLICKER, sequences_dir=folder).failures[0]
    assert failure.line == line_of(CLICKER, "sequence:")
    assert 'no sequence "whitepaper-evaluation"' in failure.message
    assert "whitepaper-evaluation.yaml:" in failure.message and "steps[2].wait" in failure.message


def test_the_default_folder_follows_the_sequences_folder(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "sequences", tmp_path / "sequences")
    (tmp_path / "tests" / "sequences").mkdir(parents=True)
    shutil.copy(CLICKER, tmp_path / "tests" / "sequences")
    result = nurture("test", sequences=tmp_path / "sequences")
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("1 passed, 0 failed")
    (tmp_path / "empty").mkdir()
    empty = nurture("test", str(tmp_path / "empty"), sequences=tmp_path / "sequences")
    assert empty.exit_code == 1 and "no scenario file" in empty.output
    missing = nurture("test", "nowhere.yaml")
    assert missing.exit_code == 1 and "no such file or folder: nowhere.yaml" in missing.output


def test_the_documented_scenario_passes(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "sequences.md").read_text(encoding="utf-8")
    blocks = [b.split("```")[0] for b in text.split("```yaml\n")[1:] if "\nscenario:" in b]
    assert len(blocks) == 1
    result = scenarios.run(write(tmp_path, blocks[0]), sequences_dir=ROOT / "sequences")
    assert result.passed, result.failures
    assert [e.step for e in result.timeline if e.kind == "send"] == [
        "testimonial",
        "comparison",
        "market-study",
        "self-assessment",
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (START + LEAD + "events: [{click: pause-1}]\nexpect: {}\n", 5,
         'click: "pause-1" is not an email step of whitepaper-evaluation (its emails:'
         " testimonial, guide, comparison, market-study, self-assessment)"),
        (START + LEAD + "expect:\n  emails:\n    - {step: welcome}\n", 7,
         'step: "welcome" is not an email step of whitepaper-evaluation'),
        (START + "lead: {timezone: Europe/Lyon}\nexpect: {}\n", 4,
         'lead.timezone: unknown time zone "Europe/Lyon"'),
    ],
)  # fmt: skip
def test_a_step_or_zone_the_sequence_does_not_have_is_named(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    failures = scenarios.run(write(tmp_path, text), sequences_dir=ROOT / "sequences").failures
    assert [(f.line, f.message[: len(message)]) for f in failures] == [(line, message)]


PROMOTED = SCENARIOS / "whitepaper-evaluation-promoted.yaml"


def test_a_scoring_change_that_delays_promotion_fails_the_scenario(tmp_path: Path) -> None:
    # Promotion now needs 95 points: the director stays an mql to the end of the journey.
    folder = changed_copy(tmp_path, "rules/scoring", "promote: {score: 80", "promote: {score: 95")
    result = scenarios.run(PROMOTED, sequences_dir=folder)
    expect, sql, leaves = (line_of(PROMOTED, t) for t in ("expect:", "sql", 'reason: "stage'))
    assert [str(failure) for failure in result.failures] == [
        f"{PROMOTED}:{expect}: not expected: market-study sent on Wed 2026-03-11 10:00 CET",
        f"{PROMOTED}:{expect}: not expected: self-assessment sent on Wed 2026-03-18 10:00 CET",
        f"{PROMOTED}:{sql}: stage 2 (sql): expected on Thu 2026-03-05 15:00 CET, got no stage",
        f'{PROMOTED}:{leaves}: expected to leave for "stage: sql", got "completed"',
        f"{PROMOTED}:{leaves}: expected to leave on Thu 2026-03-05 15:00 CET,"
        " got Wed 2026-03-18 10:00 CET",
    ]
    timeline = [entry.what for entry in result.timeline]
    assert any("stage becomes mql (scoring: score" in what for what in timeline)


def test_without_a_scoring_file_no_stage_is_reached(tmp_path: Path) -> None:
    folder = tmp_path / "sequences"
    shutil.copytree(ROOT / "sequences", folder, ignore=shutil.ignore_patterns("rules"))
    failures = [f.message for f in scenarios.run(PROMOTED, sequences_dir=folder).failures]
    assert "stage 1 (mql): expected on Mon 2026-03-02 10:00 CET, got no stage" in failures
