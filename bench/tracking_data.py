"""The tracking benchmark's data: a throwaway database, readers with deliveries, the paths.

Every lead is of grade B and sits in the white-paper sequence, its first email sent an
hour ago (a delivery with three links and a honeypot, as the dispatcher records one).
A few leads are one click from a stage change, so processing the clicks does all it
does in production. `tally` counts what the routes wrote; `process_hits` turns the hits
into events as a worker does, and times it.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, text

from nurture.config import load_settings
from nurture.core.links import campaign_target
from nurture.db import upgrade
from nurture.hits import process
from nurture.models import Delivery, Enrollment, Event, Lead, Promotion, StageChange, TrackingHit
from nurture.runtime import Runtime
from nurture.spool import recover
from nurture.tracking import Tokens

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-tracking-secret-0123456789"
SEQUENCE_ID = "whitepaper-evaluation"
STEP_ID = "testimonial"  # the step whose email the readers got
SITE = "https://www.planifia.example"
LINKS = [  # index 0 is the honeypot, as the link rewriter puts it first
    SITE,
    f"{SITE}/fr/clients/moulages-berthier",
    f"{SITE}/fr/tarifs",
    f"{SITE}/fr/demo",
]


class Database:
    """One throwaway database: a file in a temporary folder, or `nurture_bench_tracking_<pid>`."""

    def __init__(self, kind: str, folder: Path, postgres_admin: str) -> None:
        self.kind = kind
        self.postgres_admin = postgres_admin
        self.name = f"nurture_bench_tracking_{os.getpid()}"
        self.spool = folder / f"spool-{kind}"  # the web workers' spool files
        if kind == "sqlite":
            self.url = f"sqlite:///{folder / 'tracking.sqlite'}"
        else:
            self.url = f"{postgres_admin.rsplit('/', 1)[0]}/{self.name}"
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{self.name}"')

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.postgres_admin, autocommit=True, connect_timeout=10) as c:
            c.execute(statement.encode())  # psycopg takes a literal query or bytes

    def drop(self) -> None:
        if self.kind == "postgres":
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def environment(database_url: str, spool: Path | None = None) -> dict[str, str]:
    """The engine's settings, as gunicorn workers read them (NURTURE_* variables)."""
    rules = ROOT / "sequences" / "rules"
    found = {"NURTURE_SPOOL_DIR": str(spool)} if spool is not None else {}
    return found | {
        "NURTURE_DATABASE_URL": database_url,
        "NURTURE_SECRET_KEY": SECRET,
        "NURTURE_SEQUENCES_DIR": str(ROOT / "sequences"),
        "NURTURE_TEMPLATES_DIR": str(ROOT / "templates"),
        "NURTURE_SCORING_FILE": str(rules / "scoring.yaml"),
        "NURTURE_ROUTING_FILE": str(rules / "routing.yaml"),
    }


def runtime_for(database_url: str) -> Runtime:
    values = environment(database_url)
    return Runtime(load_settings(environ={**os.environ, **values}))


@dataclass(frozen=True)
class Seeded:
    deliveries: list[int]
    promote_ready: int  # leads one click away from sales
    mql_ready: int  # leads one click away from marketing-qualified
    seconds: float


def seed(
    database_url: str, count: int, now: datetime, promote_share: float, mql_share: float
) -> Seeded:
    """`count` leads of grade B, each in the white-paper sequence with one email sent an
    hour ago (a delivery with three links and a honeypot), waiting for the next step.

    Most leads have no points yet; `promote_share` of them are one click from promotion
    (78 points, mql) and `mql_share` one click from mql (37 points), so the click route
    also moves stages and promotes, as it does in production now and then.
    """
    started = time.perf_counter()
    upgrade(database_url)
    runtime = runtime_for(database_url)
    content = runtime.content
    sequence = content.get(SEQUENCE_ID)
    if sequence is None:
        raise SystemExit(f"sequence {SEQUENCE_ID} not found in {ROOT / 'sequences'}")
    sent = now - timedelta(hours=1)
    rng = random.Random(20260310)
    with runtime.sessions.begin() as session:
        content.store_versions(session, now)
    deliveries: list[int] = []
    promote = mql = 0
    chunk = 5000
    for offset in range(0, count, chunk):
        numbers = range(offset + 1, min(count, offset + chunk) + 1)
        leads = []
        for n in numbers:
            draw = rng.random()
            points, stage = 0.0, "lead"
            if draw < promote_share:
                points, stage = 78.0, "mql"
                promote += 1
            elif draw < promote_share + mql_share:
                points = 37.0
                mql += 1
            leads.append(
                {
                    "email": f"reader{n}@tracking.example",
                    "first_name": f"Reader{n}",
                    "company": f"Atelier {n % 997}",
                    "job_title": "Directrice des opérations",
                    "company_size": 240,
                    "country": "FR",
                    "timezone": "Europe/Paris",
                    "locale": "fr" if n % 2 else "en",
                    "stage": stage,
                    "score": round(points),
                    "grade": "B",
                    "behaviour_points": points,
                    "last_activity_at": sent if points else None,
                    "cycle": 1,
                    "tags": [],
                    "fields": {},
                    "created_at": now - timedelta(days=30),
                    "updated_at": sent,
                }
            )
        with runtime.sessions.begin() as session:
            lead_ids = list(
                session.scalars(
                    insert(Lead).returning(Lead.id, sort_by_parameter_order=True), leads
                )
            )
            enrollment_ids = list(
                session.scalars(
                    insert(Enrollment).returning(Enrollment.id, sort_by_parameter_order=True),
                    [
                        {
                            "lead_id": lead_id,
                            "sequence_id": sequence.id,
                            "version": sequence.version,
                            "cycle": 1,
                            "status": "active",
                            "step_id": "pause-1",
                            "step_started_at": sent,
                            "due_at": now + timedelta(days=3),
                            "priority": sequence.priority,
                            "trigger": "form_submitted",
                            "entered_at": sent - timedelta(minutes=5),
                        }
                        for lead_id in lead_ids
                    ],
                )
            )
            deliveries += session.scalars(
                insert(Delivery).returning(Delivery.id, sort_by_parameter_order=True),
                [
                    {
                        "enrollment_id": enrollment_id,
                        "lead_id": lead_id,
                        "sequence_id": sequence.id,
                        "version": sequence.version,
                        "step_id": STEP_ID,
                        "template": "eval-story-moulages-berthier",
                        "kind": "testimonial",
                        "status": "sent",
                        "attempts": 1,
                        "message_id": f"tracking-{n}@planifia.example",
                        "to_email": f"reader{n}@tracking.example",
                        "subject": "Comment Moulages Berthier a repris la main sur son planning",
                        "locale": "fr" if n % 2 else "en",
                        "links": LINKS,
                        "honeypot": 0,
                        "created_at": sent,
                        "updated_at": sent,
                        "sent_at": sent,
                    }
                    for n, lead_id, enrollment_id in zip(
                        numbers, lead_ids, enrollment_ids, strict=True
                    )
                ],
            )
    with runtime.engine.begin() as connection:
        # As autovacuum soon would; stable plans. Only the seeded tables: statistics
        # saying "empty" would make PostgreSQL scan events and score changes whole
        # (as it would here, where autovacuum is off) once they fill up.
        for table in ("leads", "enrollments", "deliveries", "sequence_versions"):
            connection.execute(text(f"ANALYZE {table}"))
    runtime.close()
    return Seeded(deliveries, promote, mql, time.perf_counter() - started)


def write_paths(folder: Path, deliveries: list[int]) -> dict[str, Path]:
    """The request paths each target takes in turn, one delivery after another: the
    links as the dispatcher writes them now (`click`: the target in the token), and as
    it wrote them before (`click-stored`: the target looked up)."""
    tokens = Tokens(SECRET)
    opens = [f"/o/{tokens.open(d)}.gif" for d in deliveries]
    # One link per delivery (1..3, never the honeypot at 0): no burst of distinct links.
    chosen = [(d, 1 + d % 3) for d in deliveries]
    clicks = [
        f"/c/{tokens.link(d, i, campaign_target(LINKS[i], SEQUENCE_ID, STEP_ID))}"
        for d, i in chosen
    ]
    stored = [f"/c/{tokens.click(d)}/{i}" for d, i in chosen]
    files = {"bare": folder / "opens.txt", "pixel": folder / "opens.txt"}
    files["click"] = folder / "clicks.txt"
    files["click-stored"] = folder / "clicks-stored.txt"
    files["pixel"].write_text("\n".join(opens) + "\n")
    files["click"].write_text("\n".join(clicks) + "\n")
    files["click-stored"].write_text("\n".join(stored) + "\n")
    return files


@dataclass(frozen=True)
class Tally:
    hits: Counter[str]  # "open human", "click human", "click waiting" (not processed) ...
    events: int
    promotions: int
    stage_changes: int
    failed: int  # hits set aside with an error
    by_agent: Counter[tuple[str, str]]  # (user agent, "click human"): each target has its own

    def rows(self, kind: str) -> int:
        return sum(n for key, n in self.hits.items() if key.startswith(f"{kind} "))

    def labels(self, agent: str) -> Counter[str]:
        return Counter({key: n for (a, key), n in self.by_agent.items() if a == agent})


def tally(database_url: str) -> Tally:
    runtime = runtime_for(database_url)
    with runtime.sessions() as session:
        hits: Counter[str] = Counter()
        by_agent: Counter[tuple[str, str]] = Counter()
        columns = (TrackingHit.kind, TrackingHit.classification, TrackingHit.user_agent)
        for kind, label, agent, number in session.execute(
            select(*columns, func.count()).group_by(*columns)
        ):
            hits[f"{kind} {label or 'waiting'}"] += number
            by_agent[(agent or "", f"{kind} {label or 'waiting'}")] += number
        failed = session.scalar(
            select(func.count()).select_from(TrackingHit).where(TrackingHit.error.is_not(None))
        )
        events = session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.name.in_(["email_opened", "email_clicked"]))
        )
        promotions = session.scalar(select(func.count()).select_from(Promotion))
        stages = session.scalar(select(func.count()).select_from(StageChange))
    runtime.close()
    return Tally(hits, events or 0, promotions or 0, stages or 0, failed or 0, by_agent)


@dataclass(frozen=True)
class Processing:
    recovered: int  # hits found in spool files the web workers left behind (should be 0)
    processed: int
    failed: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.processed / self.seconds if self.seconds else 0.0


def process_hits(database: Database, batch: int) -> Processing:
    """What `nurture worker` does with the hits: classify, record, score, promote; timed."""
    runtime = runtime_for(database.url)
    runtime.content.scoring  # noqa: B018  # rules parsed before the clock starts
    recovered = recover(database.spool, runtime.engine)
    with runtime.engine.begin() as connection:
        connection.execute(text("ANALYZE tracking_hits"))  # as autovacuum would, after so many
    started = time.perf_counter()
    done = process(runtime.sessions, runtime.content, runtime.settings, datetime.now(UTC), batch)
    seconds = time.perf_counter() - started
    runtime.close()
    return Processing(recovered, done.done, done.failed, seconds)
