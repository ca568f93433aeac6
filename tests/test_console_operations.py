"""The console's Operations section through Flask's test client, on a real database: the
CRM outbox with pushes dead-lettered by a real HTTP server answering 500, replayed and
then delivered; uncertain deliveries settled as `nurture deliveries resolve` settles
them; the tracking backlog and the workers; API keys made, used against the JSON API
and revoked; admins only, CSRF on every form."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import func, select, update
from test_console_access import Console, token
from test_console_access import cheap_hashes as cheap_hashes  # autouse: cheap Argon2
from test_console_access import make_console as make_console
from test_dispatch import T0, enter, sequence_file

from nurture.apikeys import create_key
from nurture.cli import cli
from nurture.config import UncertainPolicy
from nurture.crm import CrmPusher, enqueue
from nurture.dispatch import TickReport
from nurture.mail import MemoryMailer, Uncertain
from nurture.models import (
    AlarmState,
    ApiKey,
    CrmPush,
    Delivery,
    Enrollment,
    Lead,
    Promotion,
    TrackingHit,
)

if TYPE_CHECKING:
    from http_receiver import HttpReceiver

pytest_plugins = ["http_receiver"]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the receiver's (tests/http_receiver.py)
LATER = T0 + timedelta(days=5)  # after the pushes gave up (about three days of attempts)
ADMIN = "claire@planifia.example"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def ops(
    make_console: Callable[..., Console],
    http_receiver: HttpReceiver,
    content_dirs: tuple[Path, Path],
) -> Console:
    """The console of an installation that pushes to the receiver, holds uncertain
    emails until an operator settles them, and whose relay leaves two emails uncertain."""
    sequences, templates = content_dirs
    sequence_file(sequences, "two")
    mailer = MemoryMailer([Uncertain("no reply after the data")] * 2)
    return make_console(
        mailer_factory=lambda: mailer,
        sequences_dir=sequences,
        templates_dir=templates,
        crm_webhook_url=http_receiver.url,
        crm_webhook_secret=SECRET,
        crm_allow_local=True,
        uncertain_policy=UncertainPolicy("hold", None),
    )


def promoted(ops: Console, email: str, at: datetime = T0) -> int:
    """A lead handed to sales, its push in the outbox: the push's id."""
    with ops.runtime.sessions.begin() as session:
        lead = Lead(email=email, first_name="Zoé", created_at=at, updated_at=at)
        session.add(lead)
        session.flush()
        promotion = Promotion(
            lead_id=lead.id, cycle=1, reason="score 80 and a demo asked", status_at=at,
            created_at=at,
        )  # fmt: skip
        session.add(promotion)
        session.flush()
        data = {"lead": {"email": email}}
        return enqueue(session, "lead.promoted", data, at, promotion.id).id


def dead_letter(ops: Console, receiver: HttpReceiver, email: str) -> int:
    """A push the CRM answered 500 to at every attempt, until it is dead."""
    push_id = promoted(ops, email)
    receiver.default = receiver.answer(500, body=f"{HOSTILE} database down".encode())
    pusher = CrmPusher(ops.runtime.settings, ops.runtime.sessions)
    while (due := push(ops, push_id).next_attempt_at) is not None:
        assert pusher.deliver_due(due).attempted == 1
    assert push(ops, push_id).status == "dead"
    return push_id


def push(ops: Console, push_id: int) -> CrmPush:
    with ops.runtime.sessions() as session:
        found = session.get(CrmPush, push_id)
        assert found is not None
        return found


def uncertain(ops: Console, *emails: str) -> list[int]:
    """Emails that went out with no answer from the relay (as tests/test_fencing.py)."""
    for email in emails:
        enter(ops.runtime, email)
    assert ops.runtime.dispatcher.tick(T0).uncertain == len(emails)
    with ops.runtime.sessions() as session:
        return list(session.scalars(select(Delivery.id).order_by(Delivery.id)))


def admin(ops: Console) -> FlaskClient:
    return ops.signed_in(ADMIN, "admin")


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None) -> Any:
    """A console form as its page sends it: with the session's CSRF token."""
    fields = {"csrf_token": token(client, "/console/"), **(data or {})}
    return client.post(path, data=fields)


def text(client: FlaskClient, path: str = "/console/operations") -> str:
    page = client.get(path)
    assert page.status_code == 200
    return page.get_data(as_text=True)


def states(ops: Console) -> list[tuple[Any, ...]]:
    """Everything an action could change, to show that a refused one changed nothing."""
    with ops.runtime.sessions() as session:
        return [
            *session.execute(select(CrmPush.id, CrmPush.status, CrmPush.attempts)),
            *session.execute(select(Delivery.id, Delivery.status, Delivery.attempts)),
            *session.execute(select(ApiKey.prefix, ApiKey.revoked_at)),
        ]


# --- the CRM outbox -----------------------------------------------------------------------


def test_the_outbox_shows_pending_pushes_and_dead_letters_with_the_crms_answer(
    ops: Console, http_receiver: HttpReceiver
) -> None:
    dead = dead_letter(ops, http_receiver, "dead@client.example")
    waiting = promoted(ops, "waiting@client.example", at=LATER)
    CrmPusher(ops.runtime.settings, ops.runtime.sessions).deliver_due(LATER)  # a 500 again
    with freeze_time(LATER):
        page = text(admin(ops))
    assert '<span class="figure" id="crm-pending">1</span>' in page
    assert '<span class="figure" id="crm-dead">1</span>' in page
    assert f'<tr id="pending-{waiting}">' in page and "waiting@client.example" in page
    assert f'<tr id="dead-{dead}">' in page and "dead@client.example" in page
    assert "score 80 and a demo asked" in page  # why the lead went to sales
    assert "no 2xx answer after 10 attempts" in page and "HTTP 500" in page
    # The CRM's body, as text: never markup.
    assert "HTTP 500: &lt;script&gt;alert(1)&lt;/script&gt; database down" in page
    assert HOSTILE not in page
    assert f"Replay push {dead}</button>" in page and "Replay every dead letter (1)" in page


def test_replay_puts_a_dead_letter_back_and_the_next_run_delivers_it(
    ops: Console, http_receiver: HttpReceiver
) -> None:
    dead = dead_letter(ops, http_receiver, "dead@client.example")
    with freeze_time(LATER):
        client = admin(ops)
        answer = post(client, f"/console/operations/crm/{dead}/replay")
        assert answer.status_code == 303
        assert answer.headers["Location"] == "/console/operations#crm"
        page = text(client)
    assert f"Push {dead} queued again: pending, due now" in page
    assert f'<tr id="pending-{dead}">' in page and f'<tr id="dead-{dead}">' not in page
    again = push(ops, dead)
    assert (again.status, again.attempts, again.next_attempt_at) == ("pending", 0, LATER)

    http_receiver.default = http_receiver.answer(200)
    report = CrmPusher(ops.runtime.settings, ops.runtime.sessions).deliver_due(LATER)
    assert report.delivered == 1
    assert http_receiver.accepted_ids() == [again.webhook_id]  # the same webhook-id
    assert push(ops, dead).status == "delivered"


def test_replay_all_queues_every_dead_letter_as_the_cli_does(
    ops: Console, http_receiver: HttpReceiver
) -> None:
    first = dead_letter(ops, http_receiver, "one@client.example")
    second = dead_letter(ops, http_receiver, "two@client.example")
    with freeze_time(LATER):
        client = admin(ops)
        assert post(client, "/console/operations/crm/replay").status_code == 303
        page = text(client)
    assert "2 push(es) queued again" in page  # the CLI's words
    assert [push(ops, n).status for n in (first, second)] == ["pending", "pending"]
    assert "No dead letter." in page


def test_replaying_a_push_that_is_no_longer_dead_says_why_and_changes_nothing(
    ops: Console, http_receiver: HttpReceiver
) -> None:
    dead = dead_letter(ops, http_receiver, "dead@client.example")
    with freeze_time(LATER):
        client = admin(ops)
        assert post(client, f"/console/operations/crm/{dead}/replay").status_code == 303
        before = states(ops)
        post(client, f"/console/operations/crm/{dead}/replay")  # a second tab, say
        post(client, "/console/operations/crm/999/replay")
        page = text(client)
    assert f"push {dead}: not a dead letter (it is pending)" in page
    assert "push 999: no such push" in page
    assert states(ops) == before


# --- deliveries to settle -------------------------------------------------------------------


def test_uncertain_deliveries_are_listed_with_their_lead_step_and_holder(ops: Console) -> None:
    first, second = uncertain(ops, "d1@example.com", "d2@example.com")
    with freeze_time(T0 + timedelta(hours=2)):
        page = text(admin(ops))
    for delivery_id, email in ((first, "d1@example.com"), (second, "d2@example.com")):
        assert f'<tr id="delivery-{delivery_id}">' in page and email in page
    assert page.count("two / first") == 2
    assert ops.runtime.dispatcher.holder in page
    assert "2 h ago" in page
    assert '<span class="figure" id="stuck">2</span>' in page
    for label in ("Count as sent", "Resend", "Skip"):
        assert page.count(f">{label}</button>") == 3  # each row, and the selection


def resolved(ops: Console, delivery_id: int) -> tuple[Any, ...]:
    """A delivery and its lead's enrollment, less what names the lead."""
    with ops.runtime.sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        enrollment = session.get(Enrollment, delivery.enrollment_id)
        assert enrollment is not None
        return (
            delivery.status, delivery.attempts, delivery.last_error, delivery.sent_at,
            delivery.next_attempt_at, delivery.updated_at, enrollment.status,
            enrollment.step_id, enrollment.due_at, enrollment.note,
        )  # fmt: skip


@pytest.mark.parametrize(("action", "status"), [
    ("mark-sent", "sent"), ("resend", "retry"), ("skip", "skipped"),
])  # fmt: skip
def test_each_action_settles_a_delivery_as_the_cli_does(
    ops: Console, action: str, status: str
) -> None:
    by_console, by_cli = uncertain(ops, "d1@example.com", "d2@example.com")
    at = T0 + timedelta(hours=1)  # before the wait after the first email ends
    with freeze_time(at):
        client = admin(ops)
        path = f"/console/operations/deliveries/{by_console}/resolve"
        answer = post(client, path, {"action": action})
        assert answer.headers["Location"] == "/console/operations#deliveries"
        env = {
            "NURTURE_DATABASE_URL": ops.runtime.settings.database_url,
            "NURTURE_SECRET_KEY": "x" * 32,
        }
        done = CliRunner().invoke(cli, ["deliveries", "resolve", str(by_cli), f"--{action}"],
                                  env=env)  # fmt: skip
        assert done.exit_code == 0, done.output
        page = text(client)
    assert f"1 deliveries: {action}" in page
    assert resolved(ops, by_console)[0] == status
    assert resolved(ops, by_console) == resolved(ops, by_cli)
    # Each lead resumes at once: resent, or on to its next step.
    report = ops.runtime.dispatcher.tick(at + timedelta(minutes=1))
    assert report.sent == (2 if action == "resend" else 0)


def test_a_selection_is_settled_in_one_go(ops: Console) -> None:
    first, second = uncertain(ops, "d1@example.com", "d2@example.com")
    with freeze_time(T0 + timedelta(hours=1)):
        client = admin(ops)
        answer = post(client, "/console/operations/deliveries/resolve",
                      {"ids": [str(first), str(second)], "action": "skip"})  # fmt: skip
        assert answer.status_code == 303
        page = text(client)
    assert f"2 deliveries: skip (Skip: {first}, {second})." in page
    assert [resolved(ops, n)[0] for n in (first, second)] == ["skipped", "skipped"]
    assert "No uncertain or failed delivery." in page


def test_resend_is_refused_when_the_lead_has_moved_on_and_nothing_changes(ops: Console) -> None:
    first, second = uncertain(ops, "d1@example.com", "d2@example.com")
    with ops.runtime.sessions.begin() as session:
        moved = select(Delivery.enrollment_id).where(Delivery.id == first).scalar_subquery()
        session.execute(update(Enrollment).where(Enrollment.id == moved).values(step_id="second"))
    before = states(ops)
    with freeze_time(T0 + timedelta(hours=1)):
        client = admin(ops)
        post(client, "/console/operations/deliveries/resolve",
             {"ids": [str(first), str(second)], "action": "resend"})  # fmt: skip
        post(client, "/console/operations/deliveries/resolve", {"action": "skip"})
        post(client, f"/console/operations/deliveries/{second}/resolve", {"action": "send"})
        page = text(client)
    assert f"delivery {first}: the lead has moved on; use --mark-sent or --skip" in page
    assert "Tick the deliveries to settle first." in page
    assert "action: expected one of mark-sent, resend, skip" in page
    assert states(ops) == before


def test_a_delivery_that_needs_no_settling_is_refused_with_the_clis_words(
    ops: Console,
) -> None:
    (first,) = uncertain(ops, "d1@example.com")
    with freeze_time(T0 + timedelta(hours=1)):
        client = admin(ops)
        post(client, f"/console/operations/deliveries/{first}/resolve", {"action": "skip"})
        post(client, f"/console/operations/deliveries/{first}/resolve", {"action": "skip"})
        page = text(client)
    assert f"no uncertain, failed, retry delivery with id {first}" in page


# --- tracking backlog, workers, alarms -----------------------------------------------------


def test_the_backlog_the_workers_and_the_alarms_are_shown(ops: Console) -> None:
    (first,) = uncertain(ops, "d1@example.com")
    enter(ops.runtime, "later@example.com")  # due now, not yet claimed
    enter(ops.runtime, "held@example.com")
    folder = ops.runtime.settings.spool_dir
    assert folder is not None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gone-worker.hits").write_bytes(b'{"k":1}\n{"k":2}\n')  # a dead process's
    with ops.runtime.sessions.begin() as session:
        lead_id = session.scalar(select(Delivery.lead_id).where(Delivery.id == first))
        assert lead_id is not None
        for minutes in (5, 1):
            session.add(TrackingHit(delivery_id=first, lead_id=lead_id, kind="open",
                                    method="GET", at=T0 + timedelta(minutes=minutes)))  # fmt: skip
        session.add(AlarmState(name="complaint_rate", raised=True, value=0.004,
                               detail="4 complaints for 1000 emails sent in the last 24 hours",
                               changed_at=T0, checked_at=T0))  # fmt: skip
    at = T0 + timedelta(minutes=10)
    with freeze_time(at):
        client = admin(ops)
        page = text(client)
    assert '<span class="figure" id="hits-waiting">2</span>' in page
    assert "oldest <time" in page and "9 min ago" in page
    assert '<span class="figure" id="spool-hits">2</span>' in page and "1 file(s), 16 bytes" in page
    assert '<span class="figure" id="due-now">2</span>' in page
    assert "Spam-complaint rate</strong>: raised (0.4 %)" in page
    assert "4 complaints for 1000 emails sent" in page
    assert "No email waits on a relay outage." in page
    assert "No delivery is held right now." in page

    with ops.runtime.sessions.begin() as session:  # the relay refused everyone
        session.execute(update(Delivery).where(Delivery.id == first).values(
            status="retry", last_error="relay unavailable: 421 try later"))  # fmt: skip
    ops.runtime.dispatcher._claim(at, TickReport())  # a worker holds the two due now
    with freeze_time(at):
        page = text(client)
    assert "1 email(s) put back because the relay refused everyone" in page
    assert "relay unavailable: 421 try later" in page
    assert '<span class="figure" id="held-count">2</span>' in page
    assert ops.runtime.dispatcher.holder in page and "s left</td>" in page


# --- API keys -------------------------------------------------------------------------------


def once(client: FlaskClient) -> str:
    import re

    found = re.search(r'name="once" value="([^"]+)"', text(client, "/console/operations/keys"))
    assert found
    return found.group(1)


def test_a_key_is_shown_once_works_against_the_api_and_stops_when_revoked(
    ops: Console,
) -> None:
    with ops.runtime.sessions.begin() as session:
        session.add(Lead(email="paul@example.com", created_at=T0, updated_at=T0))
    client = admin(ops)
    answer = post(client, "/console/operations/keys",
                  {"name": "Dashboard", "scopes": ["read"], "once": once(client)})  # fmt: skip
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    made = answer.get_data(as_text=True)
    with ops.runtime.sessions() as session:
        key = session.scalars(select(ApiKey)).one()
    secret = made.split('<code id="secret">')[1].split("</code>")[0]
    assert secret.startswith(f"nk_{key.prefix}.") and key.scopes == "read"

    listing = text(client, "/console/operations/keys")
    assert f"nk_{key.prefix}" in listing and "Dashboard" in listing
    assert secret not in listing and secret.split(".")[1] not in listing

    api = ops.client()
    bearer = {"Authorization": f"Bearer {secret}"}
    lead = api.get("/api/v1/leads/paul@example.com", headers=bearer)
    assert lead.status_code == 200 and lead.get_json()["email"] == "paul@example.com"
    intake = api.post("/api/v1/leads", json={"email": "x@example.com"}, headers=bearer)
    assert intake.status_code == 403  # the scope it was given, no more

    confirm = text(client, f"/console/operations/keys/{key.prefix}/revoke")
    assert f"Revoke key nk_{key.prefix}</button>" in confirm
    assert api.get("/api/v1/leads/paul@example.com", headers=bearer).status_code == 200
    revoked = post(client, f"/console/operations/keys/{key.prefix}/revoke")
    assert revoked.status_code == 303
    assert f"Key nk_{key.prefix} revoked" in text(client, "/console/operations/keys")
    refused = api.get("/api/v1/leads/paul@example.com", headers=bearer)
    assert refused.status_code == 401
    post(client, f"/console/operations/keys/{key.prefix}/revoke")
    assert "no such active key" in text(client, "/console/operations/keys")


def test_the_same_form_sent_twice_makes_one_key_and_shows_no_secret(ops: Console) -> None:
    client = admin(ops)
    form = {"name": "website", "scopes": ["intake", "events"], "once": once(client)}
    assert post(client, "/console/operations/keys", form).status_code == 200
    again = post(client, "/console/operations/keys", form)
    assert again.status_code == 303
    page = text(client, "/console/operations/keys")
    assert "That form was sent already" in page and "nk_" in page
    with ops.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 1


@pytest.mark.parametrize(("form", "message"), [
    ({"name": "  ", "scopes": ["read"]}, "name: give the key a name"),
    ({"name": "x" * 101, "scopes": ["read"]}, "name: at most 100 characters"),
    ({"name": "crm", "scopes": ["sales", "root"]}, "scopes: expected some of intake, events,"
                                                   " read, sales, admin; got [&#39;root&#39;]"),
    ({"name": "crm"}, "scopes: expected some of intake, events, read, sales, admin; got none"),
])  # fmt: skip
def test_bad_key_input_names_the_field_and_changes_nothing(
    ops: Console, form: dict[str, Any], message: str
) -> None:
    client = admin(ops)
    answer = post(client, "/console/operations/keys", form)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and message in page
    assert 'aria-invalid="true"' in page and "nk_" not in page.split("<h2>Keys</h2>")[0]
    with ops.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 0


def test_the_cli_refuses_a_blank_key_name_as_the_console_does(ops: Console) -> None:
    env = {
        "NURTURE_DATABASE_URL": ops.runtime.settings.database_url,
        "NURTURE_SECRET_KEY": "x" * 32,
    }
    result = CliRunner().invoke(cli, ["keys", "create", " "], env=env)
    assert result.exit_code == 1
    assert "Error: name: give the key a name" in result.output
    with ops.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 0


# --- who may -------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/console/operations"),
    ("GET", "/console/operations/keys"),
    ("GET", "/console/operations/keys/{prefix}/revoke"),
    ("POST", "/console/operations/crm/{push}/replay"),
    ("POST", "/console/operations/crm/replay"),
    ("POST", "/console/operations/deliveries/resolve"),
    ("POST", "/console/operations/deliveries/{delivery}/resolve"),
    ("POST", "/console/operations/keys"),
    ("POST", "/console/operations/keys/{prefix}/revoke"),
]
FORM = {"action": "skip", "ids": "1", "name": "mine", "scopes": "admin"}


def something_to_act_on(ops: Console, receiver: HttpReceiver) -> dict[str, Any]:
    (delivery,) = uncertain(ops, "d1@example.com")
    push_id = dead_letter(ops, receiver, "dead@client.example")
    with ops.runtime.sessions.begin() as session:
        prefix = create_key(session, "website", T0).removeprefix("nk_").split(".")[0]
    return {"push": push_id, "delivery": delivery, "prefix": prefix}


@pytest.mark.parametrize("role", ["viewer", "marketer", "sales"])
def test_every_operations_route_is_for_admins_only(
    ops: Console, http_receiver: HttpReceiver, role: str
) -> None:
    ids = something_to_act_on(ops, http_receiver)
    before = states(ops)
    client = ops.signed_in(f"{role}@planifia.example", role)
    csrf = token(client, "/console/")
    for method, route in ROUTES:
        path = route.format(**ids)
        if method == "GET":
            answer = client.get(path)
        else:
            answer = client.post(path, data={**FORM, "csrf_token": csrf})
        assert answer.status_code == 403, (method, path)
        assert "Not for your role" in answer.get_data(as_text=True)
    assert states(ops) == before
    nav = text(client, "/console/")
    assert "/console/operations" not in nav


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    ops: Console, http_receiver: HttpReceiver
) -> None:
    ids = something_to_act_on(ops, http_receiver)
    before = states(ops)
    client = admin(ops)
    for method, route in ROUTES:
        if method == "POST":
            answer = client.post(route.format(**ids), data=FORM)
            assert answer.status_code == 400, route
            assert "Form refused" in answer.get_data(as_text=True)
    assert states(ops) == before
    page = text(client)
    assert f'<tr id="dead-{ids["push"]}">' in page
    assert f'<tr id="delivery-{ids["delivery"]}">' in page
