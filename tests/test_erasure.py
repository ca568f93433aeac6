"""Erasure that erases: a person who went through every path (API with an idempotency
key, a website form, a CSV import, emails sent, a click, a CRM push, sales feedback)
is erased, and then nothing anywhere names them: not the database file (after a
checkpoint), not the outbox, the spool, the journal, nor the logs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from conftest import TEST_SECRET
from freezegun import freeze_time
from sqlalchemy import inspect, select, text
from test_promotion_loop import ROOT, SECRET, SEQUENCE, Site, reading_later, settle

from nurture.cli import cli
from nurture.core.intake import parse_lead
from nurture.intake import take
from nurture.models import Digest, KeyFingerprint, Lead, Promotion, Suppression
from nurture.privacy import Removed, erase, forget_files
from nurture.suppression import KeyChanged, legacy_digest, list_key

if TYPE_CHECKING:
    from http_receiver import HttpReceiver

pytest_plugins = ["http_receiver"]

EMAIL = "ysoline.quernec@quernec-thermo.example"
# What must not survive, in any form we can think of reading back.
TRACES = (EMAIL, "Ysoline", "Quernec", "quernec-thermo")


@pytest.fixture
def world(
    make_runtime: Any, tmp_path: Path, http_receiver: HttpReceiver
) -> Iterator[tuple[Any, Site]]:
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    (sequences / "evaluation.yaml").write_text(SEQUENCE)
    site = Site()
    runtime = make_runtime(
        base_url=site.base_url,
        sequences_dir=sequences,
        scoring_file=ROOT / "sequences" / "rules" / "scoring.yaml",
        routing_file=ROOT / "sequences" / "rules" / "routing.yaml",
        crm_webhook_url=http_receiver.url,
        crm_allow_local=True,
        crm_webhook_secret=SECRET,
    )  # no SMTP URL: emails are written to the outbox folder
    site.serve(runtime)
    yield runtime, site
    site.server.shutdown()


def cli_env(runtime: Any) -> dict[str, str]:
    settings = runtime.settings
    return {
        "NURTURE_DATABASE_URL": settings.database_url,
        "NURTURE_SECRET_KEY": TEST_SECRET,
        "NURTURE_SEQUENCES_DIR": str(settings.sequences_dir),
        "NURTURE_OUTBOX_DIR": str(settings.outbox_dir),
        "NURTURE_SPOOL_DIR": str(settings.spool_dir),
        "NURTURE_JOURNAL_DIR": str(settings.journal_dir),
    }


def through_every_path(runtime: Any, site: Site, tmp_path: Path) -> None:
    # The API, with an idempotency key (the answer, holding the lead, is kept a day).
    site_key = {"Idempotency-Key": "signup-1"}
    status, _, body = site.request(
        "POST",
        "/api/v1/leads",
        {"email": EMAIL, "first_name": "Ysoline", "last_name": "Quernec",
         "company": "Quernec Thermoformage", "company_size": 300, "country": "FR",
         "locale": "fr", "job_title": "Directrice industrielle",
         "fields": {"site": "Quernec Thermoformage, Brest"}},
        headers=site_key,
    )  # fmt: skip
    assert status == 201, body
    # A website form.
    status, _, body = site.request(
        "POST",
        "/forms/whitepaper-planning-roi",
        form={"email": EMAIL, "first_name": "Ysoline", "company": "Quernec Thermoformage SAS",
              "consent": "yes", "consent_text": "v2"},
    )  # fmt: skip
    assert status in (200, 303), body
    # A CSV import (a changed title goes to the field history).
    csv = tmp_path / "crm-export.csv"
    csv.write_text(f"email,last_name,job_title\n{EMAIL},Quernec,Directrice des operations\n")
    imported = CliRunner().invoke(cli, ["leads", "import", str(csv)], env=cli_env(runtime))
    assert imported.exit_code == 0, imported.output
    # Warm enough that one human click promotes.
    for name, props in (
        ("webinar_attended", {"webinar": "planifia-live"}),
        ("page_visited", {"path": "/pricing"}),
        ("page_visited", {"path": "/fr/tarifs"}),
        ("webinar_registered", {"webinar": "planifia-live"}),
        ("page_visited", {"path": "/customers"}),
        ("page_visited", {"path": "/integrations"}),
        ("page_visited", {"path": "/fr/clients"}),
        ("form_submitted", {"form": "newsletter"}),
        ("form_submitted", {"form": "contact-us"}),
    ):
        status, _, body = site.request(
            "POST", f"/api/v1/leads/{EMAIL}/events", {"name": name, "properties": props}
        )
        assert status == 201, body


def sent_links(runtime: Any) -> list[str]:
    """The call-to-action link of the one email in the outbox."""
    [eml] = list(runtime.settings.outbox_dir.glob("*.eml"))
    message = message_from_bytes(eml.read_bytes(), policy=default)
    html = message.get_body(("html",)).get_content()
    return re.findall(r'<a class="button" href="[^"]*(/c/[^"]+)"', html)  # the call to action


def traces_in(data: bytes) -> list[str]:
    lowered = data.lower()
    return [t for t in TRACES if t.lower().encode() in lowered]


def test_after_erasure_nothing_anywhere_names_the_person(
    world: tuple[Any, Site],
    tmp_path: Path,
    http_receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    runtime, site = world
    through_every_path(runtime, site, tmp_path)
    assert runtime.dispatcher.tick(datetime.now(UTC)).sent == 1  # to the outbox
    reading_later(monkeypatch)
    [click] = sent_links(runtime)
    status, _, _ = site.request("GET", click)
    assert status == 302
    settle(runtime)
    assert runtime.crm.deliver_due(datetime.now(UTC) + timedelta(minutes=2)).delivered == 1
    assert EMAIL in http_receiver.requests[0].body.decode()  # the CRM got the lead
    with runtime.sessions() as session:
        promotion = session.scalars(select(Promotion)).one()
    status, _, body = site.request(
        "POST", f"/api/v1/promotions/{promotion.id}/feedback",
        {"status": "won", "amount": 36000, "external_id": "crm-7", "reason": "Ysoline signed"},
    )  # fmt: skip
    assert status == 200, body
    with runtime.sessions.begin() as session:  # the daily digest named her to sales
        lead = session.scalars(select(Lead)).one()
        session.add(Digest(rep_email="julien@planifia.example", day="2026-12-01",
                           leads=[lead.public_id, EMAIL, "other@example.com"],
                           sent_at=datetime.now(UTC)))  # fmt: skip
    runtime.spool.flush()
    before = everything(runtime)
    assert traces_in(before)  # the scan itself sees her before

    erased = CliRunner().invoke(cli, ["gdpr", "erase", EMAIL, "--yes"], env=cli_env(runtime))
    assert erased.exit_code == 0, erased.output
    assert "erased" in erased.output

    assert traces_in(everything(runtime)) == []
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records) + caplog.text
    assert traces_in(logged.encode()) == []
    with runtime.sessions() as session:
        digest = session.scalars(select(Digest)).one()
        assert digest.leads == ["other@example.com"]
        assert session.scalars(select(Suppression.email_hash)).all() == [
            list_key(runtime.settings).digest(EMAIL)
        ]


def everything(runtime: Any) -> bytes:
    """Every byte nurture keeps: database (file, or every row as text), outbox, spool,
    journal."""
    settings = runtime.settings
    chunks: list[bytes] = []
    url = settings.database_url
    if url.startswith("sqlite:///"):
        database = Path(url.removeprefix("sqlite:///"))
        for path in database.parent.glob(database.name + "*"):  # the file, -wal, -shm
            chunks.append(path.read_bytes())
    else:
        with runtime.sessions() as session:
            for table in inspect(session.connection()).get_table_names():
                rows = session.execute(text(f'SELECT t::text FROM "{table}" t')).scalars()
                chunks.extend(row.encode() for row in rows)
    for folder in (settings.outbox_dir, settings.spool_dir, settings.journal_dir):
        if folder is not None and Path(folder).exists():
            chunks.extend(p.read_bytes() for p in Path(folder).rglob("*") if p.is_file())
    return b"\n".join(chunks)


# --- the suppression list is keyed ------------------------------------------------------


def test_the_suppression_list_cannot_be_reversed_by_hashing_guesses(make_runtime: Any) -> None:
    runtime = make_runtime()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    key = list_key(runtime.settings)
    with runtime.sessions.begin() as session:
        erase(session, key, "paul.martin@example.com", now)
    with runtime.sessions() as session:
        [kept] = session.scalars(select(Suppression.email_hash)).all()
    assert kept != legacy_digest("paul.martin@example.com")  # a dictionary finds nothing
    assert kept == key.digest("Paul.Martin@example.com ")
    other = list_key(make_runtime(secret_key="another-secret-key-0123456789").settings)
    assert kept != other.digest("paul.martin@example.com")


def test_a_changed_secret_stops_intake_instead_of_letting_everyone_back_in(
    make_runtime: Any,
) -> None:
    import nurture.suppression

    now = datetime(2026, 12, 1, tzinfo=UTC)
    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        erase(session, list_key(runtime.settings), "paul.martin@example.com", now)
    nurture.suppression._checked.clear()  # a new process
    rotated = make_runtime(secret_key="a-rotated-secret-key-0123456789")
    lead = parse_lead({"email": "paul.martin@example.com"})
    with (
        pytest.raises(KeyChanged, match="NURTURE_SUPPRESSION_SECRET"),
        rotated.sessions.begin() as s,
    ):
        take(s, rotated.content, rotated.settings, lead, now)
    with rotated.sessions() as session:
        assert session.scalars(select(Lead)).all() == []
    # Told what to do: the previous key keeps the list working.
    kept = make_runtime(
        secret_key="a-rotated-secret-key-0123456789", suppression_secret=TEST_SECRET
    )
    with kept.sessions.begin() as session:
        made, _ = take(session, kept.content, kept.settings, lead, now)
        assert made.unsubscribed_at == now  # known again, never mailed again
    with kept.sessions() as session:
        assert session.get(KeyFingerprint, "suppression") is not None


def test_entries_written_before_the_list_was_keyed_still_hold_and_are_rekeyed(
    make_runtime: Any,
) -> None:
    runtime = make_runtime()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with runtime.sessions.begin() as session:
        session.add(Suppression(email_hash=legacy_digest("old@example.com"), reason="erased",
                                at=now - timedelta(days=400)))  # fmt: skip
    with runtime.sessions.begin() as session:
        lead, _ = take(
            session,
            runtime.content,
            runtime.settings,
            parse_lead({"email": "old@example.com"}),
            now,
        )
        assert lead.unsubscribed_at == now
    with runtime.sessions() as session:
        rows = session.scalars(select(Suppression)).all()
    assert [(r.email_hash, r.reason) for r in rows] == [
        (list_key(runtime.settings).digest("old@example.com"), "erased")
    ]


def test_outbox_files_naming_the_person_go_and_others_stay(tmp_path: Path) -> None:
    from email.message import EmailMessage

    outbox = tmp_path / "outbox"
    outbox.mkdir()

    def write(name: str, to: str, body: str) -> Path:
        message = EmailMessage()
        message["To"] = to
        message["Subject"] = "Vos leads du jour"
        message.set_content(body, cte="quoted-printable")
        path = outbox / f"{name}.eml"
        path.write_bytes(bytes(message))
        return path

    sent = write("a1", "marc@example.com", "Bonjour")
    digest = write("d1", "rep@planifia.example", "Top: " + "x" * 70 + " marc@example.com (81)")
    other = write("o1", "lea@example.com", "Bonjour")
    assert b"marc@example.com" not in digest.read_bytes()  # split by quoted-printable
    gone = forget_files(outbox, Removed(("marc@example.com",), ("a1",)))
    assert gone == 2 and not sent.exists() and not digest.exists() and other.exists()


def test_json_rows_are_scanned_as_text_on_every_database(make_runtime: Any) -> None:
    """The digest scrub relies on the JSON column read as text holding the address."""
    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        session.add(Digest(rep_email="r@example.com", day="2026-12-01",
                           leads=["a_b%c@example.com"], sent_at=datetime.now(UTC)))  # fmt: skip
    with runtime.sessions.begin() as session:
        take(session, runtime.content, runtime.settings,
             parse_lead({"email": "a_b%c@example.com"}), datetime.now(UTC))  # fmt: skip
    with runtime.sessions.begin() as session:
        erase(session, list_key(runtime.settings), "a_b%c@example.com", datetime.now(UTC))
    with runtime.sessions() as session:
        assert session.scalars(select(Digest.leads)).one() == []


@freeze_time("2026-12-01 09:00:00")
def test_nothing_held_is_said_plainly_and_still_suppresses(make_runtime: Any) -> None:
    runtime = make_runtime()
    done = CliRunner().invoke(
        cli, ["gdpr", "erase", "nobody@example.com", "--yes"], env=cli_env(runtime)
    )
    assert done.exit_code == 0
    assert "no data held; the address is suppressed anyway" in done.output
    with runtime.sessions() as session:
        assert len(session.scalars(select(Suppression)).all()) == 1


def test_database_errors_never_show_the_values_of_the_statement(make_runtime: Any) -> None:
    """An error's text goes to logs and terminals: it names the statement, not the person."""
    from sqlalchemy.exc import IntegrityError

    runtime = make_runtime()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(IntegrityError) as raised, runtime.sessions.begin() as session:
        for _ in range(2):
            session.add(Lead(email=EMAIL, first_name="Ysoline", created_at=now, updated_at=now))
            session.flush()
    said = str(raised.value)
    assert "INSERT INTO leads" in said
    assert "Ysoline" not in said  # a value of the statement
    # PostgreSQL's own detail names the duplicate key (the address): logs mask it.
    from nurture.redaction import log_line

    assert traces_in(log_line(said).encode()) == []


def test_a_submission_awaiting_double_opt_in_is_exported_and_erased(make_runtime: Any) -> None:
    from nurture.app import create_app

    runtime = make_runtime(double_opt_in_forms=frozenset({"newsletter"}))
    client = create_app(runtime=runtime).test_client()
    posted = client.post("/forms/newsletter", data={"email": EMAIL, "first_name": "Ysoline"})
    assert posted.status_code in (200, 303)
    env = cli_env(runtime)
    exported = CliRunner().invoke(cli, ["gdpr", "export", EMAIL], env=env)
    assert exported.exit_code == 0, exported.output
    assert '"form": "newsletter"' in exported.output and "Ysoline" in exported.output
    erased = CliRunner().invoke(cli, ["gdpr", "erase", EMAIL, "--yes"], env=env)
    assert erased.output.startswith("erased"), erased.output
    assert traces_in(everything(runtime)) == []
