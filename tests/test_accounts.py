"""Accounts: who is grouped with whom (pure), an account's figures on a small fixed
history, erasure leaving nothing of a person in an account, and `rebuild`."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from nurture.accounts import figures_of, find, rebuild
from nurture.core.accounts import AccountKey, account_key, name_of, organisation_domain
from nurture.core.intake import parse_lead
from nurture.core.qualification import FREE_MAIL_DOMAINS
from nurture.evidence import record
from nurture.intake import take
from nurture.models import Account, AccountPromotion, Lead
from nurture.privacy import erase
from nurture.runtime import Runtime
from nurture.suppression import list_key

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


# --- who is grouped with whom ---------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "fields", "expected"),
    [
        ("anne@usine-x.example", {}, AccountKey("domain", "usine-x.example")),
        # A sub-domain is its organisation's: mail.acme, fr.acme are acme.
        ("bob@fr.usine-x.example", {}, AccountKey("domain", "usine-x.example")),
        ("bob@MAIL.Usine-X.example", {}, AccountKey("domain", "usine-x.example")),
        # ... keeping a country's second level: acme.co.uk, not co.uk.
        ("kate@plant.acme.co.uk", {}, AccountKey("domain", "acme.co.uk")),
        ("jo@acme.com.au", {}, AccountKey("domain", "acme.com.au")),
        # The CRM's company id wins over the domain, whatever the mailbox.
        ("anne@usine-x.example", {"company_id": " CRM-42 "}, AccountKey("company_id", "CRM-42")),
        ("eric@gmail.com", {"company_id": 42}, AccountKey("company_id", "42")),
        ("eric@gmail.com", {"company_id": ""}, None),
        # Personal mailboxes are never grouped.
        ("eric@gmail.com", {}, None),
        ("eric@hotmail.fr", {}, None),
        ("eric@yahoo.co.uk", {}, None),
        ("eric@gmx.de", {}, None),
        ("eric@orange.fr", {}, None),
        ("eric@free.fr", {}, None),
        ("eric@laposte.net", {}, None),
        ("eric@icloud.com", {}, None),
        ("eric@proton.me", {}, None),
        # A shared mailbox is still the company's.
        ("contact@usine-x.example", {}, AccountKey("domain", "usine-x.example")),
        ("not-an-address", {}, None),
    ],
)
def test_a_lead_is_grouped_by_company_id_else_by_domain_never_by_free_mail(
    email: str, fields: dict[str, Any], expected: AccountKey | None
) -> None:
    assert account_key(email, fields, FREE_MAIL_DOMAINS) == expected


def test_the_free_mail_list_is_extended_by_the_qualification_file() -> None:
    assert account_key("a@caramail.com", {}, FREE_MAIL_DOMAINS) is not None
    assert account_key("a@caramail.com", {}, FREE_MAIL_DOMAINS | {"caramail.com"}) is None


def test_an_account_is_named_as_most_of_its_contacts_name_their_company() -> None:
    assert name_of(["Usine X", "usine x sas", "Usine X", None, " "]) == "Usine X"
    assert name_of(["B", "A"]) == "A"  # a tie: the first in alphabetical order
    assert name_of([None]) is None
    assert organisation_domain("a.b.c.example.") == "c.example"


# --- figures on a fixed history -----------------------------------------------------------


def runtime_for(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "sequences" / "rules", rules)
    return make_runtime(
        sequences_dir=tmp_path, scoring_file=rules / "scoring.yaml",
        qualification_file=rules / "qualification.yaml",
    )  # fmt: skip


def arrive(runtime: Runtime, body: dict[str, Any], at: datetime) -> None:
    with runtime.sessions.begin() as session:
        take(session, runtime.content, runtime.settings, parse_lead(body), at)


def did(runtime: Runtime, email: str, name: str, at: datetime, classification: str) -> None:
    with runtime.sessions.begin() as session:
        lead = session.scalars(select(Lead).where(Lead.email == email)).one()
        record(session, runtime.content, runtime.settings, lead, name, {"kind": "testimonial"},
               at, occurred_at=at, classification=classification)  # fmt: skip


def a_plant(runtime: Runtime) -> None:
    """Three people of one plant (one on a sub-domain), one named by a company id."""
    start = NOW - 60 * DAY
    target = {"company": "Usine X", "country": "FR", "company_size": 300}
    arrive(runtime, {"email": "anne@usine-x.example", **target,
                     "job_title": "Directrice industrielle",
                     "fields": {"industry": "metalworking"}}, start)  # fmt: skip
    arrive(runtime, {"email": "bob@usine-x.example", **target, "job_title": "Planner"}, start)
    arrive(runtime, {"email": "carl@fr.usine-x.example", "company": "Usine X SAS"}, start)
    arrive(runtime, {"email": "dan@usine-x.example", "fields": {"company_id": "CRM-9"}}, start)
    did(runtime, "anne@usine-x.example", "email_clicked", NOW - 2 * DAY, "human")  # +5
    did(runtime, "anne@usine-x.example", "email_opened", NOW - 2 * DAY, "human")  # +1
    did(runtime, "bob@usine-x.example", "email_clicked", NOW - DAY, "scanner")  # nothing
    did(runtime, "bob@usine-x.example", "email_opened", NOW - DAY, "machine_open")  # nothing
    did(runtime, "carl@fr.usine-x.example", "email_clicked", NOW - 40 * DAY, "human")  # +5


def test_an_accounts_figures_on_a_fixed_history(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    runtime = runtime_for(make_runtime, tmp_path)
    a_plant(runtime)
    with runtime.sessions() as session:
        account = find(session, "usine-x.example")
        assert account is not None
        assert find(session, "someone@fr.usine-x.example") is account  # an address finds it
        assert find(session, str(account.id)) is account
        by_id = find(session, "CRM-9")
        assert by_id is not None and by_id.kind == "company_id"
        found = figures_of(session, runtime.content, account.id, NOW)
    assert found.contacts == 3  # dan is in the CRM-9 account
    assert found.name == "Usine X"
    assert found.best_grade == "A"
    assert dict(found.by_stage) == {"lead": 3}
    # Only Anne: Bob's clicks were a scanner's, Carl's is 40 days old.
    assert found.engaged_contacts == 1
    # Anne's 6 points two days old, Carl's 5 forty days old, with a 30-day half-life.
    assert found.score == round(6 * 0.5 ** (2 / 30) + 5 * 0.5 ** (40 / 30))  # 5.73 + 1.98
    assert found.score == 8


def test_the_command_lists_and_shows_accounts(
    make_runtime: Callable[..., Runtime], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from freezegun import freeze_time

    from nurture.cli import cli

    runtime = runtime_for(make_runtime, tmp_path)
    a_plant(runtime)
    monkeypatch.setenv("NURTURE_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("NURTURE_SEQUENCES_DIR", str(tmp_path))
    monkeypatch.setenv("NURTURE_SECRET_KEY", runtime.secret_key)
    runner = CliRunner()
    with freeze_time(NOW):
        listed = runner.invoke(cli, ["accounts", "list"])
        shown = runner.invoke(cli, ["accounts", "show", "usine-x.example"])
        missing = runner.invoke(cli, ["accounts", "show", "nowhere.example"])
    assert listed.exit_code == 0, listed.output
    first = listed.output.splitlines()[1]
    assert "usine-x.example" in first and "Usine X" in first and " 3 " in first
    assert shown.exit_code == 0, shown.output
    assert "3 contacts (3 lead), best grade A; 1 engaged within 30 days" in shown.output
    assert "anne@usine-x.example  lead, grade A" in shown.output.splitlines()[2]
    assert missing.exit_code == 1 and "no account 'nowhere.example'" in missing.output


# --- erasure and rebuild ----------------------------------------------------------------


def test_erasing_a_person_leaves_nothing_of_them_in_an_account(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    runtime = runtime_for(make_runtime, tmp_path)
    a_plant(runtime)
    key = list_key(runtime.settings)
    with runtime.sessions.begin() as session:
        anne = session.scalars(select(Lead).where(Lead.email == "anne@usine-x.example")).one()
        session.add(AccountPromotion(account_id=anne.account_id, cycle=1, lead_id=anne.id,
                                     engaged=3, reason="account: 3 contacts engaged in 30 days",
                                     run="r", at=NOW))  # fmt: skip
    with runtime.sessions.begin() as session:
        erase(session, key, "anne@usine-x.example", NOW)
        erase(session, key, "dan@usine-x.example", NOW)  # the only one of CRM-9
    with runtime.sessions() as session:
        [row] = session.scalars(select(AccountPromotion)).all()
        assert row.lead_id is None and row.reason.startswith("account: 3")
        assert [a.value for a in session.scalars(select(Account))] == ["usine-x.example"]
        account = find(session, "usine-x.example")
        assert account is not None
        found = figures_of(session, runtime.content, account.id, NOW)
    assert (found.contacts, found.best_grade, found.engaged_contacts) == (2, "B", 0)


def test_rebuild_groups_stored_leads_and_follows_a_longer_free_mail_list(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    runtime = runtime_for(make_runtime, tmp_path)
    a_plant(runtime)
    with runtime.sessions.begin() as session:  # as stored before accounts existed
        session.execute(update(Lead).values(account_id=None))
        session.execute(AccountPromotion.__table__.delete())
        session.execute(Account.__table__.delete())
    done = rebuild(runtime.sessions, runtime.content, NOW, chunk=3)
    assert (done.leads, done.moved, done.removed) == (4, 4, 0)
    with runtime.sessions() as session:
        grouped = {e: a for e, a in session.execute(select(Lead.email, Lead.account_id))}
        values = {id_: v for id_, v in session.execute(select(Account.id, Account.value))}
    assert {email: values[id_] for email, id_ in grouped.items()} == {
        "anne@usine-x.example": "usine-x.example",
        "bob@usine-x.example": "usine-x.example",
        "carl@fr.usine-x.example": "usine-x.example",
        "dan@usine-x.example": "CRM-9",
    }
    assert rebuild(runtime.sessions, runtime.content, NOW).moved == 0  # idempotent

    # The plant's domain turns out to be a mailbox provider: its people are ungrouped.
    rules = tmp_path / "rules" / "qualification.yaml"
    listed = "free_mail_domains: ["
    text = rules.read_text().replace(listed, f"{listed}usine-x.example, ")
    rules.write_text(text)
    runtime.content.reload()
    done = rebuild(runtime.sessions, runtime.content, NOW)
    assert (done.moved, done.removed) == (3, 1)
    with runtime.sessions() as session:
        assert [a.value for a in session.scalars(select(Account))] == ["CRM-9"]


# --- the account rule's guard -------------------------------------------------------------


@pytest.mark.postgres
def test_two_workers_applying_the_account_rule_at_once_promote_the_account_once(
    postgres_url: str, make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    import threading

    from sqlalchemy import text

    from nurture.account_promotion import promote_accounts
    from nurture.models import Promotion

    runtime = runtime_for(make_runtime, tmp_path)  # the shipped rule: 3 within 30 days
    a_plant(runtime)
    did(runtime, "bob@usine-x.example", "email_clicked", NOW - DAY, "human")
    did(runtime, "carl@fr.usine-x.example", "email_clicked", NOW - DAY, "human")
    sla = runtime.settings.sla
    first = runtime.sessions()
    first.begin()
    assert promote_accounts(first, runtime.content, NOW, sla).found == 1  # not committed yet
    second: list[Any] = []

    def other_worker() -> None:
        try:
            with runtime.sessions.begin() as session:
                second.append(promote_accounts(session, runtime.content, NOW, sla))
        except Exception as error:  # said by the assertion below, not lost in the thread
            second.append(error)

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        # The other worker's insert waits on the first one's row (its unique key).
        # Each look in its own transaction: within one, PostgreSQL shows the activity
        # as it was at the first look, and a wait begun after it is never seen.
        with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
            waiting = text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            waited = False
            for _ in range(500):
                waited = bool(watcher.execute(waiting).scalar())
                if waited:
                    break
                thread.join(0.01)
            activity = text(
                "SELECT state, wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            seen = [] if waited else [tuple(row) for row in watcher.execute(activity)]
        assert waited, f"the other worker did not wait: {second}; the server's sessions: {seen}"
        first.commit()
    finally:
        # Whatever failed above, the open transaction must not outlive the test: the
        # next test empties the tables and would wait on its locks for ever.
        first.close()
        thread.join(60)
    assert not thread.is_alive()
    assert [(s.found, s.promoted) for s in second] == [(0, 0)]
    with runtime.sessions() as session:
        assert len(session.scalars(select(AccountPromotion)).all()) == 1
        assert len(session.scalars(select(Promotion)).all()) == 1
