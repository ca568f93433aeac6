"""CRM pushes as the receiving CRM sees them: signed, retried for days with the same id,
never followed through a redirect, stopped by 410, slowed by 429, dead-lettered and
replayed; and never sent twice by two workers; each attempt signed with its own time.
A real HTTP receiver, a real database; time is passed as `now` or as a `Clock`, frozen
where the test controls it."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pytest
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from standardwebhooks.webhooks import Webhook

from nurture.clock import Clock
from nurture.config import ConfigError, Settings
from nurture.crm import (
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    CrmPusher,
    PushReport,
    body_of,
    check_secret,
    disable_endpoint,
    enable_endpoint,
    enqueue,
    generate_secret,
    judge,
    outbox_summary,
    replay,
    retry_after,
    signed_headers,
)
from nurture.models import CrmPush, EndpointState
from nurture.runtime import Runtime
from nurture.scheduler import work
from nurture.webhook_transport import MemoryTransport, Response, TransportError, UrllibTransport

if TYPE_CHECKING:
    from http_receiver import HttpReceiver

pytest_plugins = ["http_receiver"]  # the http_receiver and http_receiver_factory fixtures

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the specification's test key, as the receiver's
LEAD = {"lead": {"email": "claire@atelier-martin.example", "company": "Atelier Martin"}}


# --- helpers ---------------------------------------------------------------------------


def crm_runtime(make_runtime: Callable[..., Runtime], url: str | None) -> Runtime:
    return make_runtime(crm_webhook_url=url, crm_webhook_secret=SECRET, crm_allow_local=True)


def add_push(runtime: Runtime, now: datetime = START, data: dict[str, Any] = LEAD) -> CrmPush:
    with runtime.sessions.begin() as session:
        return enqueue(session, "lead.promoted", data, now)


def reload(runtime: Runtime, push: CrmPush) -> CrmPush:
    with runtime.sessions() as session:
        found = session.get(CrmPush, push.id)
        assert found is not None
        return found


def attempt_until_settled(pusher: CrmPusher, runtime: Runtime, push: CrmPush) -> list[datetime]:
    """Call the pusher each time the push is due, as ticks would; the attempt times."""
    times: list[datetime] = []
    now = reload(runtime, push).next_attempt_at
    while now is not None:
        # Not a moment early: one second before the due time nothing is sent.
        assert pusher.deliver_due(now - timedelta(seconds=1)).attempted == 0
        assert pusher.deliver_due(now).attempted == 1
        times.append(now)
        now = reload(runtime, push).next_attempt_at
    return times


class SlowAnswers:
    """The real transport, each answer taking `seconds` of frozen time: `advance` is
    the frozen clock's `tick`. Keeps the frozen time at which each POST left."""

    def __init__(self, advance: Callable[[float], object], seconds: float) -> None:
        self.advance = advance
        self.seconds = seconds
        self.inner = UrllibTransport()
        self.sent_at: list[datetime] = []

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        self.sent_at.append(datetime.now(UTC))
        try:
            return self.inner.post(url, body, headers, timeout)
        finally:
            self.advance(self.seconds)


@pytest.fixture
def crm(
    make_runtime: Callable[..., Runtime], http_receiver: HttpReceiver
) -> tuple[Runtime, CrmPusher]:
    runtime = crm_runtime(make_runtime, http_receiver.url)
    return runtime, CrmPusher(runtime.settings, runtime.sessions)


# --- delivered, signed --------------------------------------------------------------------


def test_a_push_arrives_signed_and_the_receiver_verifies_it(
    crm: tuple[Runtime, CrmPusher], http_receiver: HttpReceiver
) -> None:
    runtime, pusher = crm
    now = datetime.now(UTC)  # the receiver checks the timestamp against the real clock
    push = add_push(runtime, now)

    report = pusher.deliver_due(now)

    assert (report.delivered, report.retried, report.dead) == (1, 0, 0)
    [request] = http_receiver.requests
    assert request.verified, request.error
    assert request.method == "POST" and request.path == http_receiver.path
    assert request.webhook_id == push.webhook_id
    assert request.timestamp == int(now.timestamp())
    assert request.headers["content-type"] == "application/json"
    assert request.body == body_of(push.payload)
    assert Webhook(SECRET).verify(request.body, dict(request.headers)) == {
        "type": "lead.promoted",
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": LEAD,
    }
    done = reload(runtime, push)
    assert (done.status, done.attempts, done.last_status) == ("delivered", 1, 200)
    assert done.delivered_at == now and done.next_attempt_at is None and done.lease_until is None
    assert pusher.deliver_due(now + timedelta(days=1)).attempted == 0  # never again


def test_a_receiver_with_another_secret_rejects_the_signature(
    make_runtime: Callable[..., Runtime], http_receiver_factory: Callable[..., HttpReceiver]
) -> None:
    other = http_receiver_factory(secret=generate_secret())
    runtime = crm_runtime(make_runtime, other.url)
    now = datetime.now(UTC)
    add_push(runtime, now)
    CrmPusher(runtime.settings, runtime.sessions).deliver_due(now)
    [request] = other.requests
    assert not request.signature_ok and request.error == "No matching signature found"


# --- each attempt at its own time -------------------------------------------------------------


def test_a_push_delayed_6_minutes_verifies_at_a_standard_receiver(
    make_runtime: Callable[..., Runtime], http_receiver_factory: Callable[..., HttpReceiver]
) -> None:
    receiver = http_receiver_factory(strict=True)  # 400 to what `standardwebhooks` refuses
    runtime = crm_runtime(make_runtime, receiver.url)
    real_now = datetime.now(UTC)  # the receiver checks the timestamp against the real clock
    # A tick that began 6 minutes ago: its emails took that long before the CRM's turn.
    tick = Clock(real_now - timedelta(minutes=6), started=time.monotonic() - 360)
    push = add_push(runtime, tick.start)

    report = CrmPusher(runtime.settings, runtime.sessions).deliver_due(tick)

    [request] = receiver.requests
    assert request.verified, request.error
    assert (request.status, request.webhook_id) == (200, push.webhook_id)
    assert request.timestamp is not None and request.timestamp >= int(real_now.timestamp())
    assert (report.delivered, report.retried) == (1, 0)
    done = reload(runtime, push)
    assert done.status == "delivered"
    assert done.delivered_at is not None and done.delivered_at >= real_now


def test_two_attempts_carry_the_same_id_and_each_the_time_it_left(
    make_runtime: Callable[..., Runtime], http_receiver: HttpReceiver
) -> None:
    runtime = crm_runtime(make_runtime, http_receiver.url)
    push = add_push(runtime)
    http_receiver.script(http_receiver.answer(503, {"Retry-After": "120"}), 200)
    answered_in = 2  # seconds the receiver takes to answer

    with freeze_time(START + timedelta(minutes=4)) as frozen:
        transport = SlowAnswers(frozen.tick, answered_in)
        pusher = CrmPusher(runtime.settings, runtime.sessions, transport)
        # The first tick began at START; its emails took 4 minutes.
        assert pusher.deliver_due(Clock(START, started=time.monotonic() - 240)).retried == 1
        due = reload(runtime, push).next_attempt_at
        # Retry-After counts from the answer, not from the POST nor the tick's start.
        assert due == START + timedelta(minutes=4, seconds=answered_in + 120)
        # The next tick began when the push was due; its emails took 90 seconds.
        frozen.move_to(due + timedelta(seconds=90))
        assert pusher.deliver_due(Clock(due, started=time.monotonic() - 90)).delivered == 1

    sent = [START + timedelta(minutes=4), due + timedelta(seconds=90)]
    assert transport.sent_at == sent
    first, second = http_receiver.requests
    assert (first.status, second.status) == (503, 200)
    assert [first.timestamp, second.timestamp] == [int(at.timestamp()) for at in sent]
    assert first.timestamp != second.timestamp
    assert first.webhook_id == second.webhook_id == push.webhook_id
    assert first.body == second.body
    assert first.verified and second.verified  # the receiver's clock was frozen too
    done = reload(runtime, push)
    assert (done.status, done.attempts) == ("delivered", 2)
    assert done.delivered_at == sent[1] + timedelta(seconds=answered_in)


def test_a_claim_takes_its_lease_from_the_time_of_the_claim(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = crm_runtime(make_runtime, "https://crm.example/hooks")
    push = add_push(runtime)
    crashing = CrmPusher(
        runtime.settings, runtime.sessions, MemoryTransport([RuntimeError("worker killed")])
    )
    with freeze_time(START + timedelta(minutes=6)):
        tick = Clock(START, started=time.monotonic() - 360)
        with pytest.raises(RuntimeError):
            crashing.deliver_due(tick)

    # Counted from the tick's start, the 5-minute lease would have ended before the
    # claim was made: another worker could have taken the push while it was being sent.
    assert crashing.lease == timedelta(minutes=5)
    assert reload(runtime, push).lease_until == START + timedelta(minutes=6) + crashing.lease


def test_a_worker_tick_hands_the_crm_a_clock_started_at_its_now(
    make_runtime: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = make_runtime()
    given: list[datetime | Clock] = []

    def deliver_due(now: datetime | Clock, limit: int = 100) -> PushReport:
        given.append(now)
        return PushReport()

    monkeypatch.setattr(runtime.crm, "deliver_due", deliver_due)
    with freeze_time(START) as frozen:
        lines = work(runtime, START)
        [clock] = given
        assert isinstance(clock, Clock) and clock() == START
        frozen.tick(90)
        assert clock() == START + timedelta(seconds=90)
    assert "crm: delivered 0, retried 0, dead 0, released 0, held 0" in lines


# --- retries ---------------------------------------------------------------------------------


def test_an_hour_of_500s_then_delivered_once_with_the_same_id(
    crm: tuple[Runtime, CrmPusher], http_receiver: HttpReceiver
) -> None:
    runtime, pusher = crm
    push = add_push(runtime)
    http_receiver.default = http_receiver.answer(500)
    now, times = START, []
    while now - START < timedelta(hours=1):
        assert pusher.deliver_due(now).retried == 1
        times.append(now)
        upcoming = reload(runtime, push).next_attempt_at
        assert upcoming is not None
        assert pusher.deliver_due(upcoming - timedelta(seconds=1)).attempted == 0
        now = upcoming
    http_receiver.default = http_receiver.answer(200)

    assert pusher.deliver_due(now).delivered == 1

    times.append(now)
    # Attempts at 0, ~5 s, ~5 min, ~35 min failed; the one at ~2 h 35 min got through.
    gaps = [later - earlier for earlier, later in pairwise(times)]
    # Each wait is its scheduled delay within the ±10 % jitter (bounds included).
    ratios = [gap / delay for gap, delay in zip(gaps, RETRY_DELAYS, strict=False)]
    assert len(ratios) == 4 and all(0.9 - 1e-9 <= ratio <= 1.1 + 1e-9 for ratio in ratios)
    requests = http_receiver.requests
    assert len(requests) == 5
    assert {r.webhook_id for r in requests} == {push.webhook_id}
    assert {r.body for r in requests} == {body_of(push.payload)}
    assert all(r.signature_ok for r in requests)
    assert [r.timestamp for r in requests] == [int(t.timestamp()) for t in times]
    assert http_receiver.accepted_ids() == [push.webhook_id]
    done = reload(runtime, push)
    assert (done.status, done.attempts, done.last_status, done.last_error) == (
        "delivered",
        5,
        200,
        None,
    )


def test_500_forever_dead_letters_after_about_three_days_then_replay_delivers(
    crm: tuple[Runtime, CrmPusher], http_receiver: HttpReceiver
) -> None:
    runtime, pusher = crm
    push = add_push(runtime)
    http_receiver.default = http_receiver.answer(
        500, body=b"<h1>Internal Server Error</h1>\n  database down"
    )

    times = attempt_until_settled(pusher, runtime, push)

    assert len(times) == MAX_ATTEMPTS == 10
    assert timedelta(hours=68) < times[-1] - times[0] < timedelta(hours=84)
    dead = reload(runtime, push)
    assert (dead.status, dead.attempts, dead.last_status) == ("dead", 10, 500)
    assert dead.last_error == (
        "HTTP 500: <h1>Internal Server Error</h1> database down (gave up after 10 attempts)"
    )
    assert dead.next_attempt_at is None
    later = times[-1] + timedelta(days=2)
    assert pusher.deliver_due(later).attempted == 0  # a dead letter waits for an operator

    with runtime.sessions.begin() as session:
        assert replay(session, later, all_dead=True) == 1
    again = reload(runtime, push)
    assert (again.status, again.attempts, again.next_attempt_at) == ("pending", 0, later)
    http_receiver.default = http_receiver.answer(200)
    assert pusher.deliver_due(later).delivered == 1

    assert len(http_receiver.requests) == 11
    assert {r.webhook_id for r in http_receiver.requests} == {push.webhook_id}
    assert http_receiver.accepted_ids() == [push.webhook_id]


def test_replay_takes_only_dead_pushes_by_id(
    crm: tuple[Runtime, CrmPusher], http_receiver: HttpReceiver
) -> None:
    runtime, pusher = crm
    dead, waiting = add_push(runtime), add_push(runtime)
    with runtime.sessions.begin() as session:
        session.get_one(CrmPush, dead.id).status = "dead"
    with runtime.sessions.begin() as session:
        assert replay(session, START, push_ids=[dead.id, waiting.id, 999]) == 1
        with pytest.raises(ValueError, match="say which pushes"):
            replay(session, START)
    assert pusher.deliver_due(START).delivered == 2


# --- 410, 429, redirects, timeouts ------------------------------------------------------------


def test_410_disables_the_endpoint_and_nothing_is_sent_until_enabled(
    crm: tuple[Runtime, CrmPusher], http_receiver: HttpReceiver
) -> None:
    runtime, pusher = crm
    gone, held = add_push(runtime), add_push(runtime)
    http_receiver.script(410)

    report = pusher.deliver_due(START)

    assert (report.dead, report.released, report.attempted) == (1, 1, 1)
    first = reload(runtime, gone)
    assert (first.status, first.last_status) == ("dead", 410)
    assert "410 Gone" in (first.last_error or "")
    with runtime.sessions() as session:
        state = session.get_one(EndpointState, http_receiver.url)
        assert state.disabled_at == START and "410" in (state.reason or "")

    for days in (1, 5):
        report = pusher.deliver_due(START + timedelta(days=days))
        assert (report.attempted, report.held) == (0, 1)
        assert (report.held_reason or "").startswith("endpoint disabled since 2026-03-02T09:00:00")
    assert len(http_receiver.requests) == 1
    assert reload(runtime, held).attempts == 0

    with runtime.sessions.begin() as session:
        assert enable_endpoint(session, http_receiver.url) is True
        assert enable_endpoint(session, "https://crm.example/never-disabled") is False
    later = START + timedelta(days=5)
    assert pusher.deliver_due(later).delivered == 1  # the held push
    with runtime.sessions.begin() as session:
        assert replay(session, later, push_ids=[gone.id]) == 1
    assert pusher.deliver_due(later).delivered == 1  # the refused one, once replayed
    assert http_receiver.accepted_ids() == [held.webhook_id, gone.webhook_id]


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("120", timedelta(seconds=120)),
        (format_datetime(START + timedelta(minutes=10), usegmt=True), timedelta(minutes=10)),
    ],
    ids=["seconds", "HTTP date"],
)
def test_429_waits_for_retry_after(
    crm: tuple[Runtime, CrmPusher], http_receiver: HttpReceiver, header: str, wait: timedelta
) -> None:
    runtime, pusher = crm
    push = add_push(runtime)
    http_receiver.script(http_receiver.answer(429, {"Retry-After": header}))

    assert pusher.deliver_due(START).retried == 1

    throttled = reload(runtime, push)
    assert throttled.next_attempt_at == START + wait
    assert throttled.last_error == f"HTTP 429 (Retry-After: {header})"
    assert pusher.deliver_due(START + wait - timedelta(seconds=1)).attempted == 0
    assert pusher.deliver_due(START + wait).delivered == 1
    assert [r.status for r in http_receiver.requests] == [429, 200]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed(
    crm: tuple[Runtime, CrmPusher], http_receiver: HttpReceiver, status: int
) -> None:
    runtime, pusher = crm
    push = add_push(runtime)
    elsewhere = http_receiver.base_url + "/elsewhere"
    http_receiver.script(http_receiver.answer(status, {"Location": elsewhere}))

    assert pusher.deliver_due(START).retried == 1

    moved = reload(runtime, push)
    assert (moved.status, moved.last_status) == ("pending", status)
    assert moved.last_error == (
        f"HTTP {status}: redirect to {elsewhere} not followed;"
        " set NURTURE_CRM_WEBHOOK_URL to the address that answers"
    )
    assert moved.next_attempt_at is not None
    assert pusher.deliver_due(moved.next_attempt_at).delivered == 1
    assert http_receiver.paths() == [http_receiver.path] * 2  # /elsewhere never requested


def test_a_silent_receiver_times_out_and_the_rest_wait_for_the_next_tick(
    make_runtime: Callable[..., Runtime], http_receiver: HttpReceiver
) -> None:
    runtime = crm_runtime(make_runtime, http_receiver.url)
    pusher = CrmPusher(runtime.settings, runtime.sessions, timeout=0.3)
    first, *others = (add_push(runtime) for _ in range(3))
    http_receiver.script(http_receiver.answer(200, delay=5))

    report = pusher.deliver_due(START)

    assert (report.retried, report.released) == (1, 2)
    assert len(http_receiver.requests) == 1
    slow = reload(runtime, first)
    assert (slow.status, slow.attempts, slow.last_status) == ("pending", 1, None)
    assert slow.last_error == "no answer within 0.3 s (timed out)"
    for push in others:
        untouched = reload(runtime, push)
        assert (untouched.attempts, untouched.lease_until) == (0, None)
    assert pusher.deliver_due(START + timedelta(seconds=1)).delivered == 2


def test_a_refused_connection_is_retried(make_runtime: Callable[..., Runtime]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nobody listens there
    runtime = crm_runtime(make_runtime, f"http://127.0.0.1:{port}/hooks/crm")
    push = add_push(runtime)

    assert CrmPusher(runtime.settings, runtime.sessions).deliver_due(START).retried == 1

    refused = reload(runtime, push)
    assert refused.status == "pending" and refused.last_status is None
    assert (refused.last_error or "").startswith("cannot connect:")
    assert "refused" in (refused.last_error or "").lower()


# --- workers -------------------------------------------------------------------------------


def test_two_pushers_at_once_never_send_a_push_twice(
    make_runtime: Callable[..., Runtime], http_receiver: HttpReceiver
) -> None:
    first = crm_runtime(make_runtime, http_receiver.url)
    second = crm_runtime(make_runtime, http_receiver.url)  # its own engine and connections
    pushes = [add_push(first) for _ in range(40)]
    http_receiver.default = http_receiver.answer(200, delay=0.01)  # keep both busy at the same time
    pushers = [CrmPusher(r.settings, r.sessions) for r in (first, second)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda pusher: pusher.deliver_due(START), pushers))

    assert sum(report.delivered for report in reports) == 40
    assert Counter(r.webhook_id for r in http_receiver.requests) == {
        push.webhook_id: 1 for push in pushes
    }


def test_a_crashed_workers_claim_is_taken_over_when_its_lease_ends(
    crm: tuple[Runtime, CrmPusher], http_receiver: HttpReceiver
) -> None:
    runtime, pusher = crm
    push = add_push(runtime)
    crashing = CrmPusher(
        runtime.settings, runtime.sessions, MemoryTransport([RuntimeError("worker killed")])
    )
    with pytest.raises(RuntimeError):
        crashing.deliver_due(START)
    assert reload(runtime, push).lease_until == START + crashing.lease

    assert pusher.deliver_due(START + timedelta(seconds=10)).attempted == 0
    assert pusher.deliver_due(START + crashing.lease).delivered == 1
    assert http_receiver.accepted_ids() == [push.webhook_id]


def test_without_a_url_pushes_wait_in_the_outbox(make_runtime: Callable[..., Runtime]) -> None:
    runtime = make_runtime()  # no NURTURE_CRM_WEBHOOK_URL
    push = add_push(runtime)
    transport = MemoryTransport()

    report = CrmPusher(runtime.settings, runtime.sessions, transport).deliver_due(START)

    assert (report.held, report.attempted, transport.requests) == (1, 0, [])
    assert report.held_reason == "NURTURE_CRM_WEBHOOK_URL is not set: pushes wait in the outbox"
    assert str(report).endswith("(NURTURE_CRM_WEBHOOK_URL is not set: pushes wait in the outbox)")
    waiting = reload(runtime, push)
    assert (waiting.status, waiting.attempts) == ("pending", 0)


def test_the_body_is_the_same_bytes_on_every_attempt(make_runtime: Callable[..., Runtime]) -> None:
    runtime = crm_runtime(make_runtime, "https://crm.example/hooks")
    push = add_push(runtime, data={"zeta": 1, "alpha": {"b": "Déc", "a": [1.5, None]}})
    transport = MemoryTransport([Response(503), Response(500)])
    pusher = CrmPusher(runtime.settings, runtime.sessions, transport)

    attempt_until_settled(pusher, runtime, push)

    bodies = {request.body for request in transport.requests}
    assert len(transport.requests) == 3 and len(bodies) == 1
    [body] = bodies
    assert body.startswith(b'{"data":{"alpha":{"a":[1.5,null],"b":"D\\u00e9c"},"zeta":1},')
    assert [r.url for r in transport.requests] == ["https://crm.example/hooks"] * 3


# --- the outbox row ------------------------------------------------------------------------


def test_enqueue_writes_a_due_row_with_an_unguessable_id(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime()
    pushes = [add_push(runtime) for _ in range(20)]
    ids = {push.webhook_id for push in pushes}
    assert len(ids) == 20
    for webhook_id in ids:
        assert webhook_id.startswith("msg_") and len(webhook_id) >= 36 and "." not in webhook_id
    with runtime.sessions() as session:
        row = session.scalars(select(CrmPush).order_by(CrmPush.id)).first()
        assert row is not None
        assert (row.status, row.attempts, row.next_attempt_at, row.kind) == (
            "pending",
            0,
            START,
            "lead.promoted",
        )
        assert row.payload == {
            "type": "lead.promoted",
            "timestamp": "2026-03-02T09:00:00Z",
            "data": LEAD,
        }


@pytest.mark.parametrize("bad", [{"at": START}, {"score": float("nan")}])
def test_enqueue_refuses_what_json_cannot_carry(
    make_runtime: Callable[..., Runtime], bad: dict[str, Any]
) -> None:
    runtime = make_runtime()
    with runtime.sessions.begin() as session, pytest.raises(ValueError, match="not plain JSON"):
        enqueue(session, "lead.promoted", bad, START)


# --- pure: signing, secrets, decisions ---------------------------------------------------------


def test_signature_matches_the_specifications_known_answer() -> None:
    headers = signed_headers(
        Webhook(SECRET),
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        datetime.fromtimestamp(1614265330, UTC),
        b'{"test": 2432232314}',
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_a_generated_secret_is_accepted_and_signs_verifiable_messages() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and check_secret(secret) == secret
    now = datetime.now(UTC)
    body = b'{"type":"lead.promoted"}'
    headers = signed_headers(Webhook(secret), "msg_abc", now, body)
    assert Webhook(secret).verify(body, headers) == {"type": "lead.promoted"}


@pytest.mark.parametrize("secret", [SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
def test_the_secret_may_come_with_or_without_its_prefix(secret: str) -> None:
    assert check_secret(secret) == secret


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("whsec_c2hvcnQ=", "the key is 5 bytes, expected at least 24"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La-_Sw", 'expected "whsec_" followed by standard base64'),
        ("correct horse battery staple", 'expected "whsec_" followed by standard base64'),
    ],
    ids=["too short", "url-safe alphabet", "a passphrase"],
)
def test_an_unusable_secret_stops_the_pusher_at_start(secret: str, message: str) -> None:
    settings = Settings(crm_webhook_url="https://crm.example/hooks", crm_webhook_secret=secret)
    with pytest.raises(ConfigError, match=f"^NURTURE_CRM_WEBHOOK_SECRET: {message}"):
        CrmPusher(settings, sessionmaker())


def test_a_url_without_a_secret_stops_the_pusher_at_start() -> None:
    settings = Settings(crm_webhook_url="https://crm.example/hooks")
    with pytest.raises(ConfigError, match=r"^NURTURE_CRM_WEBHOOK_SECRET: required"):
        CrmPusher(settings, sessionmaker())


def test_only_http_and_https_urls_are_posted_to() -> None:
    with pytest.raises(TransportError, match="only http and https"):
        UrllibTransport().post("file:///etc/passwd", b"{}", {}, 1.0)


def test_the_schedule_spans_about_three_days() -> None:
    assert sum(RETRY_DELAYS, timedelta()) == timedelta(hours=75, minutes=35, seconds=5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", START + timedelta(seconds=120)),
        ("0", START),
        ("Mon, 02 Mar 2026 09:30:00 GMT", START + timedelta(minutes=30)),
        ("Mon, 02 Mar 2026 08:00:00 GMT", START),  # already past: now
        ("999999999999", START + timedelta(hours=24)),  # capped
        ("Sun, 01 Mar 2099 00:00:00 GMT", START + timedelta(hours=24)),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date(
    value: str | None, expected: datetime | None
) -> None:
    assert retry_after(value, START) == expected


@pytest.mark.parametrize(
    ("answer", "status", "stop", "disable"),
    [
        (Response(200), "delivered", False, False),
        (Response(204), "delivered", False, False),
        (Response(410), "dead", True, True),
        (Response(302, {"location": "https://x.example/"}), "pending", False, False),
        (Response(400), "pending", False, False),
        (Response(401), "pending", False, False),
        (Response(404), "pending", False, False),
        (Response(500), "pending", False, False),
        (Response(429), "pending", True, False),
        (Response(502), "pending", True, False),
        (Response(503, {"retry-after": "30"}), "pending", True, False),
        (TransportError("cannot connect: refused"), "pending", True, False),
    ],
    ids=lambda value: str(getattr(value, "status", value)),
)
def test_each_answer_has_one_outcome(
    answer: Response | TransportError, status: str, stop: bool, disable: bool
) -> None:
    outcome = judge(answer, 1, START)
    assert (outcome.status, outcome.stop, outcome.disable) == (status, stop, disable)
    if status == "pending":
        assert outcome.next_attempt_at is not None and outcome.next_attempt_at > START
        assert outcome.error


def test_the_tenth_failure_is_the_last() -> None:
    assert judge(Response(500), MAX_ATTEMPTS - 1, START).status == "pending"
    last = judge(Response(500), MAX_ATTEMPTS, START)
    assert (last.status, last.error) == ("dead", "HTTP 500 (gave up after 10 attempts)")


def test_the_outbox_summary_counts_what_an_operator_must_see(
    crm: tuple[Runtime, CrmPusher], http_receiver: HttpReceiver
) -> None:
    runtime, pusher = crm
    for _ in range(3):
        add_push(runtime)
    add_push(runtime, START + timedelta(hours=1))  # not due yet
    http_receiver.script(200, 410)
    pusher.deliver_due(START)

    with runtime.sessions() as session:
        summary = outbox_summary(session, START + timedelta(minutes=1))

    assert (summary.pending, summary.due, summary.dead, summary.delivered) == (2, 1, 1, 1)
    assert summary.oldest_due_at == START
    assert [state.url for state in summary.disabled] == [http_receiver.url]


def test_an_operator_can_pause_the_endpoint_and_the_first_reason_stands(
    crm: tuple[Runtime, CrmPusher], http_receiver: HttpReceiver
) -> None:
    runtime, pusher = crm
    add_push(runtime)
    with runtime.sessions.begin() as session:
        disable_endpoint(session, http_receiver.url, START, "CRM migration this weekend")
    with runtime.sessions.begin() as session:
        disable_endpoint(session, http_receiver.url, START + timedelta(hours=1), "again")

    report = pusher.deliver_due(START + timedelta(hours=2))

    assert (report.held, report.attempted, http_receiver.requests) == (1, 0, [])
    assert report.held_reason == (
        "endpoint disabled since 2026-03-02T09:00:00+00:00: CRM migration this weekend"
    )
