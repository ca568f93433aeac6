"""The set-based intake (nurture.intake_batch) leaves exactly what the row path
(nurture.intake.take_many) leaves: every table compared, on the same mixed input."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, func, select, text

import nurture.csvimport as csvimport
import nurture.intake_batch
import nurture.suppression
from nurture.accounts import forget_empty
from nurture.core.intake import LeadInput, parse_lead
from nurture.csvimport import import_csv
from nurture.intake import take, take_many
from nurture.intake_batch import Taken, take_batch
from nurture.models import Account, Base, Lead, Suppression
from nurture.runtime import Runtime
from nurture.suppression import legacy_digest, list_key, suppress

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
BEFORE = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)

# Enters new webinar leads and evaluators; a customer leaves it, and may come back
# only 30 days after leaving (a refusal the decision log shows).
WELCOME = """\
id: welcome
name: Welcome
priority: 30
locales: [en, fr]
timezone: Europe/Paris
entry:
  triggers:
    - lead_created: {source: webinar}
    - tag_added: evaluation
  audience:
    country: [FR, BE, CH, CA, GB]
  reentry: {after: 30 days}
exit:
  stages: [customer]
send_window: {days: mon-fri, hours: "09:00-17:30"}
steps:
  - id: story
    email: {template: eval-story-moulages-berthier, kind: testimonial}
"""

TARGET = {"company_size": 300, "country": "FR", "job_title": "Directeur industriel"}
SOON = {"project_timeline": "this quarter", "industry": "manufacturing"}

# Known before the batch (taken one by one, the same way for both paths).
KNOWN: list[dict[str, Any]] = [
    {"email": "bob@usine-b.example", "company": "Old", "country": "FR", "company_size": 80,
     "fields": {"erp": "sap"}, "tags": ["evaluation"]},
    {"email": "carl@gmail.com", "first_name": "Carl", "country": "BE"},  # disqualified
    {"email": "gil@usine-g.example", "country": "GB", "company_size": 120, "source": "salon"},
    {"email": "hugo@usine-h.example", "country": "FR", "company_size": 90},
    {"email": "ivan@usine-i.example", "country": "FR", "company": "Usine I"},  # ines' colleague
]  # fmt: skip

# The batch: new, known, merged by sub-address, disqualified, suppressed, duplicated.
BATCH: list[dict[str, Any]] = [
    {"email": "anne@usine-a.example", "first_name": "Anne", "country": "FR", "company_size": 60,
     "source": "webinar", "campaign": "live-3", "tags": ["evaluation"],
     "consent": {"granted": True, "text_version": "v2"},
     "touch": {"channel": "webinar", "utm_source": "newsletter"}},
    {"email": "bob+news@usine-b.example", "company": "New",
     "fields": {"erp": "sage", "company_id": "CRM-B"}},  # moves to its CRM account
    {"email": "jean.dupont@gmail.com", "first_name": "Jean", "country": "FR"},
    {"email": "dora@usine-d.example", "country": "FR", "company_size": 70, "source": "webinar"},
    {"email": "eve@usine-e.example", "country": "CH", "company_size": 70},
    {"email": "iris@usine-i.example", "country": "FR", "company": "Usine I"},  # ines' colleague
    {"email": "ines@usine-i.example", **TARGET, "fields": SOON},  # sales-ready: promoted
    {"email": "kim@usine-k.example", "country": "FR", "company_size": 200, "source": "webinar",
     "stage": "customer", "tags": ["evaluation"]},
    {"email": "anne@usine-a.example", "first_name": "Anna", "tags": ["salon"], "stage": "mql"},
    {"email": "bob@usine-b.example", "tags": ["evaluation", "webinar-2026"]},
    {"email": "lou@usine-l.example", "country": "CA", "source": "webinar", "locale": "fr"},
    {"email": "carl@gmail.com", "last_name": "Martin"},
    {"email": "max@usine-m.example", "country": "FR", "company_size": 300, "fields": SOON},
    {"email": "max@usine-m.example", "job_title": "Directeur industriel"},  # now sales-ready
    {"email": "hugo@usine-h.example", "stage": "customer"},  # a known lead's stage: row path
    {"email": "gil@usine-g.example", "source": "webinar", "consent": {"granted": False}},
    {"email": "gil@usine-g.example", "tags": ["evaluation"]},  # fires a trigger: row path
    {"email": "nora+promo@usine-n.example", "country": "BE", "company_size": 55,
     "fields": {"industry": "food"}},
    {"email": "nora@usine-n.example", "fields": {"industry": "pharma"}},
    {"email": "paul@usine-p.example", **TARGET, "fields": SOON},  # after hugo: one by one
]  # fmt: skip


# A CSV file of the same mix: refused at lines 4, 7 and 12.
CSV_LINES = [
    "email,first_name,company,company_size,country,source,stage,fields.erp,tags",
    "anne@usine-a.example,Anne,A,60,FR,webinar,,,evaluation",
    "bob+x@usine-b.example,,New,,,,,sage,",
    "not-an-email,X,,,FR,,,,",
    "jean.dupont@gmail.com,Jean,,,FR,,,,",
    "kim@usine-k.example,Kim,K,200,FR,webinar,customer,,evaluation",
    "ines@usine-i.example,Ines,I,300,France,,,,",
    "olga@usine-o.example,Olga,O,300,FR,referral,,,",
    "anne@usine-a.example,Anna,,,,,mql,,salon",
    "dora@usine-d.example,Dora,D,70,FR,webinar,,,",
    "hugo@usine-h.example,,,,,,,,salon;evaluation",
    "max@usine-m.example,Max,M,many,FR,,,,",
]


def runtime_for(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Runtime:
    sequences = tmp_path / "sequences"
    shutil.copytree(ROOT / "sequences", sequences)
    (sequences / "welcome.yaml").write_text(WELCOME)
    rules = sequences / "rules"
    return make_runtime(
        sequences_dir=sequences, fold_subaddress=True,
        scoring_file=rules / "scoring.yaml", routing_file=rules / "routing.yaml",
        qualification_file=rules / "qualification.yaml",
    )  # fmt: skip


def items(runtime: Runtime, bodies: list[dict[str, Any]]) -> list[LeadInput]:
    return [parse_lead(body, "", runtime.settings.fold_subaddress) for body in bodies]


def take_rows(session: Any, content: Any, settings: Any, items: Any, now: Any, source: Any) -> Any:
    """The row path, answering as `take_batch` does."""
    results = take_many(session, content, settings, items, now, source)
    return [Taken(lead.public_id, lead.email, created) for lead, created in results]


def start_over(runtime: Runtime) -> None:
    """Empty every table, then the state known before the batch."""
    with runtime.sessions.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
    nurture.suppression._checked.clear()
    runtime.content.forget_stored()  # the versions and pins went with the tables
    key = list_key(runtime.settings)
    with runtime.sessions.begin() as session:
        for body in items(runtime, KNOWN):
            take(session, runtime.content, runtime.settings, body, BEFORE, "api")
        suppress(session, key, "dora@usine-d.example", "unsubscribed", BEFORE)
        # Written before the list was keyed: re-keyed when the address comes back.
        session.add(Suppression(email_hash=legacy_digest("eve@usine-e.example"),
                                reason="erased", at=BEFORE))  # fmt: skip


def snapshot(runtime: Runtime) -> dict[str, list[str]]:
    """Every table's rows, ids replaced by what they point at (a lead by its email, an
    event by its lead and name, a promotion by its lead, an account by its key), sorted."""
    with runtime.sessions() as session:
        emails = {id_: email for id_, email in session.execute(select(Lead.id, Lead.email))}
        promotions = {
            id_: lead_id
            for id_, lead_id in session.execute(text("SELECT id, lead_id FROM promotions"))
        }
        accounts = {
            id_: f"{kind}:{value}"
            for id_, kind, value in session.execute(text("SELECT id, kind, value FROM accounts"))
        }
        events = {
            id_: (emails[lead_id], name)
            for id_, lead_id, name in session.execute(text("SELECT id, lead_id, name FROM events"))
        }
        tables: dict[str, list[str]] = {}
        for table in Base.metadata.sorted_tables:
            rows = []
            for row in session.execute(table.select()).mappings():
                values = dict(row)
                values.pop("id", None)
                values.pop("public_id", None)
                values.pop("webhook_id", None)
                if table.name == "import_runs":
                    values.pop("updated_at")  # when each chunk committed: a clock's reading
                if "lead_id" in values:
                    values["lead_id"] = emails.get(values["lead_id"])
                if values.get("promotion_id") is not None:
                    values["promotion_id"] = emails[promotions[values["promotion_id"]]]
                if values.get("account_id") is not None:
                    values["account_id"] = accounts[values["account_id"]]
                if values.get("event_id") is not None:
                    values["event_id"] = events[values["event_id"]]
                if table.name == "crm_pushes":
                    values["payload"]["data"]["promotion"].pop("id")
                    if values["payload"]["data"]["account"] is not None:
                        account = values["payload"]["data"]["account"]
                        account["id"] = accounts[account["id"]]
                rows.append(json.dumps(values, sort_keys=True, default=str))
            tables[table.name] = sorted(rows)
            for column in table.columns:  # SQL NULL, not JSON `null`, where nothing was said
                if isinstance(column.type, JSON):
                    nulls = session.scalar(select(func.count()).where(column.is_(None)))
                    tables[f"{table.name}.{column.name} is null"] = [str(nulls)]
    return tables


def both_paths(runtime: Runtime, run: Callable[[Any], Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Run `run(taker)` with the row path and with the set path, from the same state."""
    outcomes = []
    for taker in (take_rows, take_batch):
        start_over(runtime)
        outcomes.append((run(taker), snapshot(runtime)))
    return outcomes


def test_a_mixed_batch_leaves_every_table_as_the_row_path_does(
    make_runtime: Callable[..., Runtime], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_for(make_runtime, tmp_path)
    batch = items(runtime, BATCH)
    one_by_one: list[str] = []

    def counted(session: Any, content: Any, settings: Any, data: LeadInput, *args: Any,
                **kwargs: Any) -> Any:  # fmt: skip
        one_by_one.append(data.email)
        return take(session, content, settings, data, *args, **kwargs)

    monkeypatch.setattr(nurture.intake_batch, "take", counted)

    def run(taker: Any) -> list[tuple[str, bool]]:
        with runtime.sessions.begin() as session:
            taken = taker(session, runtime.content, runtime.settings, batch, NOW, "api")
            return [(t.email, t.created) for t in taken]

    (rows_answer, rows), (set_answer, sets) = both_paths(runtime, run)
    assert set_answer == rows_answer
    for table in rows:
        if sets[table] != rows[table]:
            _debug_dump(rows[table], sets[table])
        assert sets[table] == rows[table], table
    # The input did reach every case (else the comparison proves little).
    answer = dict(rows_answer)
    assert answer["bob@usine-b.example"] is False and answer["kim@usine-k.example"] is True
    assert len(rows["field_history"]) >= 4
    assert len(rows["promotions"]) == 3 and len(rows["crm_pushes"]) == 3
    assert any('"to_stage": "disqualified"' in row for row in rows["stage_changes"])
    assert any("re-entry is allowed 30 days" in row for row in rows["decisions"])
    assert any('"status": "exited"' in row for row in rows["enrollments"])
    unsubscribed = [row for row in rows["leads"] if '"unsubscribed_at": null' not in row]
    assert len(unsubscribed) == 2  # dora and eve: on the list, known again, never mailed
    assert len(rows["consents"]) == 2
    bob = next(row for row in rows["leads"] if '"bob@usine-b.example"' in row)
    assert '"account_id": "company_id:CRM-B"' in bob
    ines = next(row for row in rows["crm_pushes"] if "ines@usine-i.example" in row)
    # Her account counts ivan (stored before the batch) and iris (earlier in the batch).
    assert '"contacts": 3' in ines and '"domain": "usine-i.example"' in ines
    # One by one: a known lead's stage or tag that its enrolments react to, a person's
    # arrivals after its promotion (max's second), a promotion after an arrival taken
    # one by one (paul: the reps' load follows the batch's order); bob's new tag fires
    # no trigger.
    assert one_by_one == [
        "max@usine-m.example", "hugo@usine-h.example", "gil@usine-g.example",
        "paul@usine-p.example",
    ]  # fmt: skip


def test_a_csv_import_refuses_and_stores_the_same_rows_by_both_paths(
    make_runtime: Callable[..., Runtime], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_for(make_runtime, tmp_path)
    path = tmp_path / "leads.csv"
    path.write_text("\n".join(CSV_LINES) + "\n", encoding="utf-8")

    def run(taker: Any) -> tuple[int, int, list[tuple[int, str]]]:
        monkeypatch.setattr(csvimport, "take_batch", taker)
        report = import_csv(runtime, path, NOW, source="salon")
        return report.created, report.updated, report.refused

    (rows_report, rows), (set_report, sets) = both_paths(runtime, run)
    assert set_report == rows_report
    assert [line for line, _ in rows_report[2]] == [4, 7, 12]
    for table in rows:
        assert sets[table] == rows[table], table


@pytest.mark.postgres
def test_imports_and_api_batches_at_once_give_one_lead_per_person(
    postgres_url: str, make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    """Two imports and API batches of the same people at the same time (PostgreSQL)."""
    runtime = runtime_for(make_runtime, tmp_path)
    people = [f"p{n}@usine{n % 7}.example" for n in range(1500)]
    files = []
    for number in range(2):
        path = tmp_path / f"import{number}.csv"
        order = people if number == 0 else list(reversed(people))
        rows = [f"{email},F{number},{number},FR" for email in order]
        path.write_text("email,first_name,fields.import,country\n" + "\n".join(rows) + "\n")
        files.append(path)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def guarded(work: Callable[[], Any]) -> Callable[[], None]:
        def go() -> None:
            try:
                start.wait()
                work()
            except BaseException as error:  # reported by the assertion below
                errors.append(error)

        return go

    def batches(offset: int) -> None:
        # No second try: a batch waits for the others holding its people, then finds
        # them stored (before, it could insert one of them again and fail).
        for first in range(offset, len(people), 500):
            bodies = [{"email": e, "fields": {"api": "yes"}} for e in people[first : first + 500]]
            with runtime.sessions.begin() as session:
                take_batch(session, runtime.content, runtime.settings,
                           items(runtime, bodies), NOW, "api")  # fmt: skip

    work = [
        guarded(lambda: import_csv(runtime, files[0], NOW)),
        guarded(lambda: import_csv(runtime, files[1], NOW)),
        guarded(lambda: batches(0)),
        guarded(lambda: batches(250)),
    ]
    threads = [threading.Thread(target=job) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with runtime.sessions() as session:
        leads = session.scalars(select(Lead)).all()
    assert sorted(lead.email for lead in leads) == sorted(people)  # one lead per person
    assert all({"import", "api"} <= set(lead.fields) for lead in leads)  # every arrival merged


def take_one(runtime: Runtime, session: Any, email: str) -> None:
    take_batch(session, runtime.content, runtime.settings, items(runtime, [{"email": email}]),
               NOW, "csv import")  # fmt: skip


@pytest.mark.postgres
def test_a_batch_is_not_held_up_by_another_open_batch_of_the_same_company(
    postgres_url: str, make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    """The parts of an import share companies, not people: one part's open transaction
    must not stop the other (its new account is committed at once, apart)."""
    runtime = runtime_for(make_runtime, tmp_path)
    with runtime.sessions.begin() as session:  # the first batch ever records the list's key
        take_one(runtime, session, "carl@atelier.example")
    with runtime.sessions.begin() as first:
        take_one(runtime, first, "ann@usine-z.example")
        with runtime.sessions.begin() as second:
            # Without the fix the second batch waited until the first one ended.
            second.execute(text("SET LOCAL lock_timeout = '2s'"))
            take_one(runtime, second, "bob@usine-z.example")
    with runtime.sessions() as session:
        accounts = dict(session.execute(select(Lead.email, Lead.account_id)).all())
    assert accounts["ann@usine-z.example"] == accounts["bob@usine-z.example"] is not None


@pytest.mark.postgres
def test_an_erasure_meanwhile_leaves_the_account_of_an_open_batch(
    postgres_url: str, make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    """A new company's account is committed before its first contact: the empty
    accounts an erasure removes must not include it."""
    runtime = runtime_for(make_runtime, tmp_path)
    with runtime.sessions.begin() as batch:
        take_one(runtime, batch, "ann@usine-y.example")
        with runtime.sessions.begin() as erasing:
            assert forget_empty(erasing) == 0
    with runtime.sessions() as session:
        account = session.scalar(select(Lead.account_id))
        assert session.get(Account, account) is not None


def _debug_dump(rows: list[str], sets: list[str]) -> None:  # pragma: no cover
    import difflib

    print("\n".join(difflib.unified_diff(rows, sets, lineterm="")))
