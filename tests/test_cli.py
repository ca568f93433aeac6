"""The `nurture` command as a marketer and an operator use it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from freezegun import freeze_time

from nurture.cli import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "NURTURE_DATABASE_URL": database_url,
        "NURTURE_SECRET_KEY": "cli-test-secret-0123456789",
        "NURTURE_SEQUENCES_DIR": str(ROOT / "sequences"),
        "NURTURE_TEMPLATES_DIR": str(ROOT / "templates"),
        "NURTURE_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NURTURE_BASE_URL": "https://nurture.test",
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_validate_accepts_the_shipped_content(env: dict[str, str]) -> None:
    result = run(env, "validate")
    assert result.exit_code == 0, result.output
    for sequence in ("whitepaper-evaluation", "webinar-followup", "customer-growth"):
        assert f": {sequence} v" in result.output
    # Each template says which CSS inlining path it uses.
    assert "eval-comparison (fr): fast path" in result.output


def test_a_malformed_sequence_among_good_ones(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "sequences"
    shutil.copytree(ROOT / "sequences", folder)
    (folder / "broken.yaml").write_text(
        "id: broken\nname: Broken\nentry:\n  triggers:\n    - lead_created: {}\n"
        "steps:\n  - id: a\n    wait: 2 dayz\n  - id: b\n    branch:\n      - else: nowhere\n"
    )
    result = run({**env, "NURTURE_SEQUENCES_DIR": str(folder)}, "validate")
    assert result.exit_code == 1
    assert "whitepaper-evaluation v" in result.output  # the good ones still load
    assert f"{folder / 'broken.yaml'}:8:" in result.output
    assert "2 dayz" in result.output
    assert f"{folder / 'broken.yaml'}:11:" in result.output and "nowhere" in result.output


def test_a_template_error_is_caught_by_validate(env: dict[str, str], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    body = templates / "emails" / "eval-comparison" / "fr" / "body.html"
    body.write_text(body.read_text() + "\n<p>{{ lead.favourite_colour }} {% if %}</p>\n")
    result = run({**env, "NURTURE_TEMPLATES_DIR": str(templates)}, "validate")
    assert result.exit_code == 1
    assert "eval-comparison/fr/body.html:" in result.output


def test_validate_reports_an_unknown_template_variable(env: dict[str, str], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    subject = templates / "emails" / "eval-comparison" / "en" / "subject.txt"
    subject.write_text("{{ customer_name }}, compare for yourself")
    result = run({**env, "NURTURE_TEMPLATES_DIR": str(templates)}, "validate")
    assert result.exit_code == 1
    assert "customer_name" in result.output
    assert "whitepaper-evaluation.yaml:" in result.output  # the step that uses it


def test_preview_renders_html_and_text(env: dict[str, str]) -> None:
    result = run(env, "preview", "whitepaper-evaluation", "testimonial", "--locale", "fr")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Subject: ")
    text_part = result.output.split("--- text ---")[1].split("--- html ---")[0]
    assert "Claire" in text_part and "https://nurture.test/u/preview" in text_part
    html_part = result.output.split("--- html ---")[1]
    assert 'style="' in html_part  # CSS inlined
    assert "12 rue des Tisserands" in html_part  # the footer's postal address


def test_preview_unknown_step_is_a_clear_error(env: dict[str, str]) -> None:
    result = run(env, "preview", "whitepaper-evaluation", "pause-1")
    assert result.exit_code != 0
    assert "not an email step" in result.output and "testimonial" in result.output


def test_simulate_prints_local_times_deferrals_and_branches(env: dict[str, str]) -> None:
    result = run(
        env,
        "simulate",
        "whitepaper-evaluation",
        "--start",
        "2026-03-27T19:00:00+01:00",
        "--click",
        "testimonial",
        "--days",
        "40",
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("deferred to the send window, Mon 2026-03-30 09:00 CEST" in line for line in lines)
    assert any(
        line.startswith("Mon 2026-03-30 09:00 CEST") and "sends testimonial" in line
        for line in lines
    )
    assert any("clicked testimonial" in line and "comparison" in line for line in lines)


def test_keys_import_and_tick(env: dict[str, str], tmp_path: Path) -> None:
    key = run(env, "keys", "create", "website")
    assert key.exit_code == 0 and key.output.startswith("nk_")
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text(
        "email,first_name,country,company_size,locale\n"
        "ana@example.com,Ana,FR,250,fr\n"
        "not-an-email,Bob,FR,10,en\n"
        "cy@example.com,Cy,XYZ,10,en\n"
        "ANA@example.com,,FR,,\n"
    )
    result = CliRunner().invoke(cli, ["leads", "import", str(csv_file)], env=env)
    assert result.exit_code == 1  # some rows were refused
    assert f"{csv_file}:3: email:" in result.output
    assert f"{csv_file}:4: country:" in result.output
    assert "imported 1 new, 1 updated, 2 refused" in result.output
    shown = run(env, "leads", "show", "ana@example.com")
    assert '"first_name": "Ana"' in shown.output  # the blank re-import did not erase it
    assert '"company_size": 250' in shown.output


def test_tick_sends_due_emails_to_the_outbox(env: dict[str, str], tmp_path: Path) -> None:
    from nurture.config import load_settings
    from nurture.core.intake import parse_lead
    from nurture.enrollment import on_event
    from nurture.leads import upsert_lead
    from nurture.runtime import Runtime

    run(env, "db", "upgrade")
    runtime = Runtime(load_settings(environ=env))
    moment = "2026-03-03T10:00:00+01:00"
    with freeze_time(moment):
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        with runtime.sessions.begin() as session:
            lead, _, _ = upsert_lead(
                session,
                parse_lead({"email": "lea@example.com", "country": "FR", "company_size": 300}),
                now,
            )
            on_event(
                session,
                runtime.content,
                lead,
                "form_submitted",
                {"form": "whitepaper-planning-roi"},
                now,
            )
        runtime.close()
        result = run(env, "tick")
    assert result.exit_code == 0, result.output
    assert "sent 1" in result.output
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in files[0].read_bytes()


def test_tick_runs_the_inactivity_triggers_and_mails_who_they_enrol(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Cron's `nurture tick` does what the worker does, the periodic triggers included:
    a lead quiet for 121 days enters the shipped re-engagement sequence and is mailed."""
    from datetime import UTC, datetime, timedelta

    from nurture.config import load_settings
    from nurture.core.intake import parse_lead
    from nurture.leads import upsert_lead
    from nurture.runtime import Runtime

    run(env, "db", "upgrade")
    runtime = Runtime(load_settings(environ=env))
    moment = datetime(2026, 7, 7, 8, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Paris
    with runtime.sessions.begin() as session:
        upsert_lead(
            session,
            parse_lead(
                {
                    "email": "quiet@example.com",
                    "country": "FR",
                    "company_size": 300,
                    "locale": "fr",
                    "stage": "lead",
                }
            ),
            moment - timedelta(days=121),
        )
    runtime.close()
    with freeze_time(moment):
        result = run(env, "tick")
    assert result.exit_code == 0, result.output
    assert "triggers: 1 enrolled by" in result.output
    assert "sent 1" in result.output
    [sent] = list((tmp_path / "outbox").glob("*.eml"))
    assert b"To: quiet@example.com" in sent.read_bytes()


def test_bad_setting_stops_the_command_naming_the_variable(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["tick"], env={**env, "NURTURE_FREQUENCY_CAP": "many"})
    assert result.exit_code != 0
    assert "NURTURE_FREQUENCY_CAP" in result.output


def test_a_tick_says_in_one_line_what_it_sent_and_a_quiet_one_says_nothing(
    env: dict[str, str],
) -> None:
    """Without --verbose: one `emails:` line per batch, and none when nothing was due."""
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime

    from nurture.config import load_settings
    from nurture.core.intake import parse_lead
    from nurture.enrollment import on_event
    from nurture.leads import upsert_lead
    from nurture.runtime import Runtime

    run(env, "db", "upgrade")
    runtime = Runtime(load_settings(environ=env))
    now = datetime.now(UTC)
    with runtime.sessions.begin() as session:
        for name in ("lea", "marc"):
            lead, _, _ = upsert_lead(session, parse_lead({"email": f"{name}@example.com",
                                     "country": "FR", "company_size": 300}), now)  # fmt: skip
            form = {"form": "whitepaper-planning-roi"}
            on_event(session, runtime.content, lead, "form_submitted", form, now)
    runtime.close()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}

    def tick() -> list[str]:
        done = subprocess.run([sys.executable, "-m", "nurture", "tick"], env={**clean, **env},
                              capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return [line for line in done.stderr.splitlines() if "nurture.activity" in line]

    first = tick()
    assert len(first) == 1, first
    # Both are due at once: sent now, or deferred to their send window at night.
    assert first[0].endswith(("emails: 2 due, 2 sent", "emails: 2 due, 2 deferred")), first
    assert tick() == []


def test_a_refused_sequence_file_is_named_with_its_line_wherever_it_is_asked_for(
    env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """preview and simulate say why the sequence is not live, the server logs it, and
    /healthz keeps it while it lasts: not a bare "unknown sequence"."""
    from nurture.app import create_app
    from nurture.config import load_settings
    from nurture.runtime import Runtime

    folder = tmp_path / "sequences"
    shutil.copytree(ROOT / "sequences", folder)
    source = folder / "whitepaper-evaluation.yaml"
    source.write_text(source.read_text().replace("wait: ", "wait: soon ", 1))
    env = {**env, "NURTURE_SEQUENCES_DIR": str(folder)}
    for args in (["preview", "whitepaper-evaluation", "guide"],
                 ["simulate", "whitepaper-evaluation"]):  # fmt: skip
        result = run(env, *args)
        assert result.exit_code == 1
        assert "sequence 'whitepaper-evaluation' is not live: its file was refused:" in (
            result.output
        )
        assert f"{source}:" in result.output and "soon" in result.output
    unknown = run(env, "simulate", "no-such-sequence")
    assert "unknown sequence 'no-such-sequence'; the live ones: customer-growth," in (
        unknown.output
    )

    runtime = Runtime(load_settings(environ=env))
    with caplog.at_level("WARNING", logger="nurture.content"):
        health = create_app(runtime=runtime).test_client().get("/healthz").get_json()
    runtime.close()
    assert health["status"] == "ok"
    (refused,) = health["refused_files"]
    assert refused.startswith("whitepaper-evaluation.yaml:") and "soon" in refused
    assert any("sequence file refused: " in r.getMessage() for r in caplog.records)


def test_an_unknown_click_step_or_locale_is_refused_with_what_there_is(
    env: dict[str, str],
) -> None:
    clicked = run(env, "simulate", "whitepaper-evaluation", "--click", "gide")
    assert clicked.exit_code == 2
    assert "--click" in clicked.output and "'gide': not an email step of whitepaper-evaluation" in (
        clicked.output
    )
    assert "(its emails: testimonial, guide, comparison," in clicked.output
    opened = run(env, "simulate", "whitepaper-evaluation", "--open", "guide", "--open", "nope")
    assert opened.exit_code == 2 and "'nope': not an email step" in opened.output
    german = run(env, "preview", "whitepaper-evaluation", "guide", "--locale", "de")
    assert german.exit_code == 2
    assert "--locale" in german.output and "has no such version (it has en, fr)" in german.output
    assert run(env, "preview", "whitepaper-evaluation", "guide", "--locale", "fr").exit_code == 0


@pytest.mark.parametrize(
    ("recycle", "said", "code"),
    [
        ("webinar-followup", "ok  NURTURE_RECYCLE_SEQUENCE: webinar-followup, re-entered after", 0),
        ("customer-growth", "which a lead never enters twice (no reentry)", 1),
        ("nurture-forever", "NURTURE_RECYCLE_SEQUENCE=nurture-forever: no such live sequence", 1),
        ("", "ok  leads sales reject or lose enter recycled-nurture (stage_reached: recycled)", 0),
    ],
)
def test_validate_says_where_rejected_leads_go_and_refuses_a_recycle_that_cannot_work(
    env: dict[str, str], recycle: str, said: str, code: int
) -> None:
    result = run({**env, "NURTURE_RECYCLE_SEQUENCE": recycle}, "validate")
    assert said in result.output
    assert result.exit_code == code, result.output


def test_validate_refuses_sequences_where_a_rejected_lead_would_land_nowhere(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Without NURTURE_RECYCLE_SEQUENCE, some sequence must be entered on
    `stage_reached: recycled`: else a lead sales reject is nurtured nowhere."""
    import shutil

    folder = tmp_path / "sequences"
    folder.mkdir()
    shutil.copy(ROOT / "sequences" / "webinar-followup.yaml", folder)
    result = run({**env, "NURTURE_SEQUENCES_DIR": str(folder), "NURTURE_RECYCLE_SEQUENCE": ""},
                 "validate")  # fmt: skip
    assert "leads sales reject or lose would be nurtured in no sequence" in result.output
    assert result.exit_code == 1, result.output


def test_simulate_takes_a_real_lead_as_it_is(env: dict[str, str]) -> None:
    """Not the whole sequence for everyone: a disqualified or out-of-audience lead gets
    nothing, a lead inside goes on from its step, one that left may not be back yet."""
    from datetime import UTC, datetime, timedelta

    from nurture.config import load_settings
    from nurture.core.intake import parse_lead
    from nurture.enrollment import on_event
    from nurture.intake import take
    from nurture.runtime import Runtime

    run(env, "db", "upgrade")
    runtime = Runtime(load_settings(environ=env))
    monday = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 10:00 in Paris
    target = {"country": "FR", "company_size": 300, "job_title": "Responsable planification"}
    with runtime.sessions.begin() as session:
        for email, extra in (
            ("lea@usine-martin.example", {}),
            ("etudiant@usine.example", {"job_title": "Étudiant en alternance"}),
            ("john@usine-ohio.example", {"country": "US"}),
        ):
            data = parse_lead({**target, **extra, "email": email})
            lead, _ = take(session, runtime.content, runtime.settings, data, monday)
            form = {"form": "whitepaper-planning-roi"}
            on_event(session, runtime.content, lead, "form_submitted", form, monday)
    assert runtime.dispatcher.tick(monday).sent == 1  # the testimonial, to Léa only
    runtime.close()

    def simulate(email: str, at: datetime) -> str:
        result = run(env, "simulate", "whitepaper-evaluation", "--lead", email,
                     "--start", at.isoformat())  # fmt: skip
        assert result.exit_code == 0, result.output
        return result.output

    student = simulate("etudiant@usine.example", monday)
    assert (
        "Nothing from whitepaper-evaluation for this lead: the lead may not be mailed:" in student
    )
    assert "sends" not in student
    ohio = simulate("john@usine-ohio.example", monday)
    assert "Nothing from whitepaper-evaluation for this lead: audience: country must be" in ohio
    inside = simulate("lea@usine-martin.example", monday + timedelta(hours=1))
    assert "is in whitepaper-evaluation at pause-1 since" in inside
    assert "sends testimonial" not in inside  # sent already, never again
    assert "sends guide" in inside
