"""Personal data: export everything, erase everything but a hash, never mail again,
and purge prospects who showed no interest for the retention period."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from conftest import TEST_SECRET
from freezegun import freeze_time
from sqlalchemy import func, select

from nurture.cli import cli
from nurture.core.intake import parse_lead
from nurture.enrollment import on_event
from nurture.evidence import record
from nurture.intake import take
from nurture.leads import upsert_lead
from nurture.mail import MemoryMailer
from nurture.models import Base, Lead, PrivacyLog, Suppression
from nurture.suppression import list_key

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SEQUENCE = """\
id: hello
name: Hello
locales: [en]
entry:
  triggers:
    - event: {name: start}
steps:
  - id: one
    email: {template: example, kind: guide}
"""


def rows_about(runtime: Any) -> dict[str, int]:
    """How many rows each table holds (to see what an erasure leaves)."""
    counts = {}
    with runtime.sessions() as session:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = session.scalar(select(func.count()).select_from(table)) or 0
    return counts


def test_export_then_erase_leaves_only_the_hash_and_the_person_is_never_mailed_again(
    make_runtime: Any, content_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    sequences, templates = content_dirs
    (sequences / "hello.yaml").write_text(SEQUENCE)
    mailer = MemoryMailer()
    runtime = make_runtime(mailer_factory=lambda: mailer, sequences_dir=sequences,
                           templates_dir=templates)  # fmt: skip
    with runtime.sessions.begin() as session:
        lead, _, _ = upsert_lead(session, parse_lead({
            "email": "lucie.bernard@example.com", "first_name": "Lucie",
            "consent": {"granted": True, "text_version": "v3"}}), T0)  # fmt: skip
        on_event(session, runtime.content, lead, "start", {}, T0)
    assert runtime.dispatcher.tick(T0).sent == 1
    env = {
        "NURTURE_DATABASE_URL": runtime.settings.database_url,
        "NURTURE_SECRET_KEY": TEST_SECRET,
        "NURTURE_SEQUENCES_DIR": str(sequences),
        "NURTURE_TEMPLATES_DIR": str(templates),
    }
    out = tmp_path / "lucie.json"
    with freeze_time(T0 + timedelta(days=1)):
        exported = CliRunner().invoke(
            cli, ["gdpr", "export", "lucie.bernard@example.com", "--out", str(out)], env=env
        )
    assert exported.exit_code == 0, exported.output
    data = json.loads(out.read_text())
    assert data["lead"]["first_name"] == "Lucie"
    assert data["consents"][0]["text_version"] == "v3"
    assert [d["step_id"] for d in data["deliveries"]] == ["one"]
    assert {e["name"] for e in data["events"]} == {"start"}

    with freeze_time(T0 + timedelta(days=2)):
        erased = CliRunner().invoke(
            cli, ["gdpr", "erase", "lucie.bernard@example.com", "--yes"], env=env
        )
    assert erased.exit_code == 0 and "erased" in erased.output
    left = {name: n for name, n in rows_about(runtime).items() if n}
    # Only the suppression hash (and its key's fingerprint), the log of the two
    # requests, and what isn't personal (the sequence's version and its template's).
    assert left == {
        "suppressions": 1, "key_fingerprints": 1, "privacy_log": 2, "sequence_versions": 1,
        "template_versions": 1, "template_pins": 1,
    }  # fmt: skip
    with runtime.sessions() as session:
        suppression = session.scalars(select(Suppression)).one()
        assert suppression.email_hash == list_key(runtime.settings).digest(
            "lucie.bernard@example.com"
        )
        assert "lucie" not in suppression.email_hash
        actions = [r.action for r in session.scalars(select(PrivacyLog).order_by(PrivacyLog.id))]
        assert actions == ["export", "erase"]

    # The address comes back (a form, an import): known again, never mailed again.
    later = T0 + timedelta(days=30)
    with runtime.sessions.begin() as session:
        lead, created = take(session, runtime.content, runtime.settings,
                             parse_lead({"email": "Lucie.Bernard@example.com"}), later)  # fmt: skip
        assert created and lead.unsubscribed_at == later
        on_event(session, runtime.content, lead, "start", {}, later)
    assert runtime.dispatcher.tick(later).sent == 0
    assert len(mailer.messages) == 1


def test_retention_purges_prospects_without_clicks_or_replies(make_runtime: Any) -> None:
    runtime = make_runtime()
    long_ago = T0 - timedelta(days=4 * 365)
    with runtime.sessions.begin() as session:
        for email in ("quiet@example.com", "opener@example.com", "clicker@example.com",
                      "customer@example.com"):  # fmt: skip
            upsert_lead(session, parse_lead({"email": email}), long_ago)
        leads = {lead.email: lead for lead in session.scalars(select(Lead))}
        leads["customer@example.com"].stage = "customer"
        recent = T0 - timedelta(days=100)
        record(session, runtime.content, runtime.settings, leads["opener@example.com"],
               "email_opened", {"classification": "human"}, recent)  # fmt: skip
        record(session, runtime.content, runtime.settings, leads["clicker@example.com"],
               "email_clicked", {"classification": "human"}, recent)  # fmt: skip
    env = {"NURTURE_DATABASE_URL": runtime.settings.database_url, "NURTURE_SECRET_KEY": TEST_SECRET}
    with freeze_time(T0):
        dry = CliRunner().invoke(cli, ["gdpr", "retention", "--dry-run"], env=env)
        assert dry.output.splitlines()[:2] == ["quiet@example.com", "opener@example.com"]
        done = CliRunner().invoke(cli, ["gdpr", "retention"], env=env)
    assert "2 prospect(s) purged" in done.output, done.output
    with runtime.sessions() as session:
        left = sorted(session.scalars(select(Lead.email)))
    assert left == ["clicker@example.com", "customer@example.com"]  # opens don't count


def test_stored_api_answers_go_with_an_erasure_and_expire_after_a_day(make_runtime: Any) -> None:
    """An Idempotency-Key keeps the answer, the lead's data in it: erased with the lead,
    and gone after 24 hours for everyone else."""
    from nurture.apikeys import create_key
    from nurture.app import create_app
    from nurture.idempotency import expire
    from nurture.models import IdempotencyKey
    from nurture.privacy import erase

    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        key = create_key(session, "site", datetime(2026, 1, 1, tzinfo=UTC))
    client = create_app(runtime=runtime).test_client()
    created = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with freeze_time(created):
        for email, idem in (("claire@atelier.example", "k1"), ("paul@usine.example", "k2")):
            answer = client.post(
                "/api/v1/leads",
                json={"email": email, "first_name": "Claire"},
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
            )
            assert answer.status_code == 201

    def stored() -> list[str]:
        with runtime.sessions() as session:
            return [json.dumps(b) for b in session.scalars(select(IdempotencyKey.body))]

    assert any("claire@atelier.example" in body for body in stored())
    with runtime.sessions.begin() as session:
        assert erase(session, list_key(runtime.settings), "claire@atelier.example", created)
    assert not any("claire@atelier.example" in body for body in stored())
    assert len(stored()) == 1  # Paul's answer stays, for a day
    with runtime.sessions.begin() as session:
        assert expire(session, created + timedelta(hours=23)) == 0
        assert expire(session, created + timedelta(hours=25)) == 1
    assert stored() == []
