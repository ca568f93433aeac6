"""An account promoted by three contacts' clicks, end to end: real emails at an SMTP
server, their tracking links followed through the app, the worker's tick (hits, the
account rule, the CRM push) at chosen times, and the promotion received by a real
HTTP endpoint with the account in it. Two contacts do not suffice; a link scanner's
clicks do not count; the account is promoted once.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from nurture.apikeys import create_key
from nurture.app import create_app
from nurture.models import AccountPromotion, CrmPush, Lead, Promotion, TrackingHit
from nurture.scheduler import find_triggered, work

if TYPE_CHECKING:
    from http_receiver import HttpReceiver
    from smtp_server import SmtpTestServer

pytest_plugins = ["smtp_server", "http_receiver"]

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)
SEQUENCE = """\
id: evaluation
name: Evaluation
locales: [en, fr]
entry:
  triggers:
    - form_submitted: {form: whitepaper-planning-roi}
exit:
  stages: [sql, customer, disqualified]
steps:
  - id: testimonial
    email: {template: eval-story-moulages-berthier, kind: testimonial}
  - id: pause
    wait: 3 days
  - id: guide
    email: {template: eval-implementation-guide, kind: guide}
"""
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DOMAIN = "rochat-decolletage.example"
# Four people of one plant (one of them on a sub-domain), and one on a personal mailbox
# who names the same company: never in its account.
PEOPLE = {
    f"anne.favre@{DOMAIN}": "Responsable méthodes",
    f"bruno.keller@{DOMAIN}": "Directeur industriel",
    f"chloe.roth@ch.{DOMAIN}": "Planificatrice",
    f"david.meier@{DOMAIN}": "Acheteur",
    "eric.rochat@gmail.com": "Consultant",
}


class World:
    def __init__(self, runtime: Any, receiver: HttpReceiver, smtp: SmtpTestServer) -> None:
        self.runtime = runtime
        self.receiver = receiver
        self.smtp = smtp
        self.client = create_app(runtime=runtime).test_client()
        with runtime.sessions.begin() as session:
            self.key = create_key(session, "test", T0, ("admin",))
        self.links: dict[str, str] = {}
        self.honeypots: dict[str, str] = {}

    def api(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.client.open(
            f"/api/v1{path}", method=method, json=body,
            headers={"Authorization": f"Bearer {self.key}"},
        )  # fmt: skip
        assert answer.status_code in (200, 201), answer.get_data(as_text=True)
        return answer.get_json()

    def arrive(self) -> None:
        """Everyone downloads the white paper (enrolled), and gets its first email."""
        with freeze_time(T0 - timedelta(minutes=5)):
            for email, title in PEOPLE.items():
                self.api("POST", "/leads", {
                    "email": email, "company": "Rochat Décolletage", "company_size": 180,
                    "country": "CH", "locale": "fr", "job_title": title,
                    # The director says what the plant does: grade A, the others B.
                    **({"fields": {"industry": "metalworking"}} if "Directeur" in title else {}),
                })  # fmt: skip
                self.api("POST", f"/leads/{email}/events",
                         {"name": "form_submitted",
                          "properties": {"form": "whitepaper-planning-roi"}})  # fmt: skip
        # The personal mailbox is disqualified (b2b only): four emails.
        assert self.runtime.dispatcher.tick(T0).sent == len(PEOPLE) - 1
        for received in self.smtp.received:
            html = received.message.get_body(("html",)).get_content()
            hidden = re.search(r'display:none[^>]*>\s*<a href="([^"]+)"', html)
            button = re.search(r'<a class="button" href="([^"]+/c/[^"]+)"', html)
            assert hidden and button
            to = str(received.message["To"]).split("<")[-1].rstrip(">")
            self.links[to] = urlsplit(button.group(1)).path
            self.honeypots[to] = urlsplit(hidden.group(1)).path

    def click(self, email: str, at: datetime) -> None:
        """The person clicks the email's call to action, in a browser."""
        with freeze_time(at):
            answer = self.client.get(self.links[email], headers={"User-Agent": CHROME})
        assert answer.status_code == 302

    def scan(self, email: str, at: datetime) -> None:
        """A security gateway walks the email as it arrives: the hidden link, the rest."""
        with freeze_time(at):
            for path in (self.honeypots[email], self.links[email]):
                answer = self.client.get(path, headers={"User-Agent": "Mozilla/5.0"})
                assert answer.status_code == 302

    def tick(self, at: datetime) -> str:
        """What a worker does around `at`: tracking hits (and emails, CRM pushes...),
        the periodic triggers and the account rule, then the next tick's CRM push.
        Returns what the triggers job says."""
        self.runtime.spool.flush()
        work(self.runtime, at)
        said = find_triggered(self.runtime, at)
        work(self.runtime, at + timedelta(minutes=1))
        return said


@pytest.fixture
def world(
    make_runtime: Any, tmp_path: Path, smtp_server: SmtpTestServer, http_receiver: HttpReceiver
) -> Iterator[World]:
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    (sequences / "evaluation.yaml").write_text(SEQUENCE)
    rules = sequences / "rules"
    shutil.copytree(ROOT / "sequences" / "rules", rules)
    scoring = rules / "scoring.yaml"  # the shipped file: 3 contacts within 30 days
    runtime = make_runtime(
        base_url="https://nurture.test",
        sequences_dir=sequences,
        scoring_file=scoring,
        routing_file=rules / "routing.yaml",
        smtp_url=smtp_server.url,
        crm_webhook_url=http_receiver.url,
        crm_allow_local=True,
        crm_webhook_secret=SECRET,
    )
    assert runtime.content.scoring is not None and runtime.content.scoring.account is not None
    yield World(runtime, http_receiver, smtp_server)


NONE = "0 enrolled by 0 triggers"  # and no account: the rule's line is left out
PROMOTED = "accounts: 1 promoted for 1 accounts; 0 enrolled by 0 triggers"


def test_three_contacts_clicking_within_30_days_promote_their_account_once(
    world: World,
) -> None:
    world.arrive()
    anne, bruno, chloe, david = (e for e in PEOPLE if DOMAIN in e)
    hour = timedelta(hours=1)

    # Two people of the plant click: not yet a buying group.
    world.click(anne, T0 + hour)
    world.click(bruno, T0 + 26 * hour)
    assert world.tick(T0 + 27 * hour) == NONE
    # Chloé's mail filter walks her email on arrival: its clicks are no one's interest.
    world.scan(chloe, T0 + timedelta(seconds=4))
    assert world.tick(T0 + 28 * hour) == NONE
    with world.runtime.sessions() as session:
        verdicts = {(h.lead_id, h.classification) for h in session.scalars(select(TrackingHit))}
        chloe_id = session.scalars(select(Lead.id).where(Lead.email == chloe)).one()
        assert {v for lead, v in verdicts if lead == chloe_id} == {"scanner"}
        assert session.scalars(select(CrmPush)).first() is None
    with freeze_time(T0 + 28 * hour):
        assert world.api("GET", f"/accounts/{DOMAIN}")["engaged_contacts"] == 2

    # Twelve days later Chloé reads it and clicks, herself: three contacts in 30 days.
    world.click(chloe, T0 + 12 * 24 * hour)
    assert world.tick(T0 + 12 * 24 * hour + timedelta(minutes=1)) == PROMOTED

    [push] = world.receiver.requests
    assert push.signature_ok  # signed (its timestamp is the simulated clock's, long gone)
    body = json.loads(push.body)
    assert body["type"] == "lead.promoted"
    data = body["data"]
    # The best engaged contact goes to sales: the director (grade A), with the reason.
    assert data["lead"]["email"] == bruno
    assert data["promotion"]["reason"] == "account: 3 contacts engaged in 30 days"
    assert data["account"] == {
        "id": data["account"]["id"],
        "domain": DOMAIN,
        "company_id": None,
        "name": "Rochat Décolletage",
        "contacts": 4,
        "engaged_contacts": 3,
        "engaged_within": "30 days",
        "score": data["account"]["score"],
        "best_grade": "A",
    }
    assert data["account"]["score"] > 0

    # The account is with sales: more clicks (David's) promote nobody else.
    world.click(david, T0 + 12 * 24 * hour + 2 * hour)
    assert world.tick(T0 + 12 * 24 * hour + 3 * hour) == NONE
    with world.runtime.sessions() as session:
        assert len(session.scalars(select(Promotion)).all()) == 1
        [row] = session.scalars(select(AccountPromotion)).all()
        assert (row.cycle, row.engaged) == (1, 3)
        personal = select(Lead.account_id).where(Lead.email == "eric.rochat@gmail.com")
        assert session.scalars(personal).one() is None
    assert len(world.receiver.requests) == 1

    with freeze_time(T0 + 12 * 24 * hour + 3 * hour):
        shown = world.api("GET", f"/accounts/{DOMAIN}")
        listed = world.api("GET", "/accounts?engaged=true")["accounts"]
    assert (shown["contacts"], shown["engaged_contacts"]) == (4, 4)
    assert shown["by_stage"] == {"lead": 3, "sql": 1}
    engaged_first = [p["email"] for p in shown["people"] if p["engaged_at"]]
    assert sorted(engaged_first) == sorted([anne, bruno, chloe, david])
    assert [p["reason"] for p in shown["promotions"]] == ["account: 3 contacts engaged in 30 days"]
    assert [a["domain"] for a in listed] == [DOMAIN]


def test_clicks_spread_over_more_than_the_window_promote_no_account(world: World) -> None:
    world.arrive()
    anne, bruno, chloe, _ = (e for e in PEOPLE if DOMAIN in e)
    day = timedelta(days=1)
    world.click(anne, T0 + day)
    world.click(bruno, T0 + 20 * day)
    world.click(chloe, T0 + 32 * day)  # Anne's click is 31 days old by now
    assert world.tick(T0 + 32 * day + timedelta(minutes=1)) == NONE
    assert world.receiver.requests == []
