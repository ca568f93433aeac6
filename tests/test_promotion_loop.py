"""The whole loop with real parts: a real email at an SMTP server, its real tracking link
followed over HTTP, the worker processing the hit, the score rising with a reason, the
threshold crossed, and the promotion received and verified by a real HTTP endpoint;
then the CRM answers.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import pytest
from itsdangerous.encoding import base64_encode
from sqlalchemy import select
from werkzeug.serving import make_server

from nurture.apikeys import create_key
from nurture.app import create_app
from nurture.models import CrmPush, Delivery, Lead, Promotion, StageChange, TrackingHit
from nurture.scheduler import track
from nurture.tracking import Tokens, tokens_for

if TYPE_CHECKING:
    from http_receiver import HttpReceiver
    from smtp_server import SmtpTestServer

pytest_plugins = ["smtp_server", "http_receiver"]

ROOT = Path(__file__).resolve().parent.parent
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)
# The shipped evaluation sequence's first email, without a send window, so the test
# runs at any hour.
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


class Site:
    """The Flask app served for real on 127.0.0.1, with an API key."""

    def __init__(self) -> None:
        self.app: Any = None
        self.server = make_server(
            "127.0.0.1", 0, lambda environ, start: self.app(environ, start), threaded=True
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"
        self.key = ""

    def serve(self, runtime: Any) -> None:
        self.app = create_app(runtime=runtime)
        with runtime.sessions.begin() as session:
            self.key = create_key(session, "test", datetime.now(UTC), ("admin",))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        agent: str = CHROME,
        headers: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.server_port, timeout=10)
        sent = {"User-Agent": agent, "Authorization": f"Bearer {self.key}", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if form is not None:
            data = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()  # http.client never follows redirects
        payload = response.read()
        connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload

    def event(self, email: str, name: str, **properties: str) -> None:
        status, _, body = self.request(
            "POST", f"/api/v1/leads/{email}/events", {"name": name, "properties": properties}
        )
        assert status == 201, body


@pytest.fixture
def world(
    make_runtime: Any, tmp_path: Path, smtp_server: SmtpTestServer, http_receiver: HttpReceiver
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
        smtp_url=smtp_server.url,
        crm_webhook_url=http_receiver.url,
        crm_allow_local=True,
        crm_webhook_secret=SECRET,
    )
    site.serve(runtime)
    yield runtime, site
    site.server.shutdown()


def warm_up(site: Site, email: str) -> None:
    """A director of a 300-person French plant who has done a lot already: 76 points."""
    status, _, body = site.request(
        "POST",
        "/api/v1/leads",
        {"email": email, "first_name": "Nadia", "last_name": "Girard", "company": "Girard Plast",
         "company_size": 300, "country": "FR", "locale": "fr",
         "job_title": "Directrice industrielle"},
    )  # fmt: skip
    assert status == 201, body
    site.event(email, "form_submitted", form="whitepaper-planning-roi")  # +15, enrols
    site.event(email, "webinar_attended", webinar="planifia-live")  # +20
    site.event(email, "page_visited", path="/pricing")  # +10
    site.event(email, "page_visited", path="/fr/tarifs")  # +10
    site.event(email, "webinar_registered", webinar="planifia-live")  # +5
    for path in ("/customers", "/integrations", "/fr/clients"):
        site.event(email, "page_visited", path=path)  # +3 each
    site.event(email, "form_submitted", form="newsletter")  # +2
    site.event(email, "form_submitted", form="contact-us")  # +5


def lead_view(site: Site, email: str) -> dict[str, Any]:
    status, _, body = site.request("GET", f"/api/v1/leads/{email}")
    assert status == 200
    result: dict[str, Any] = json.loads(body)
    return result


def the_email_and_its_links(runtime: Any, smtp_server: SmtpTestServer) -> tuple[str, list[str]]:
    assert runtime.dispatcher.tick(datetime.now(UTC)).sent == 1
    [received] = smtp_server.received
    html = received.message.get_body(("html",)).get_content()
    button = re.search(r'<a class="button" href="(http://127\.0\.0\.1:\d+/c/[^"]+)"', html)
    links = re.findall(r'href="(http://127\.0\.0\.1:\d+/c/[^"]+)"', html)
    hidden = re.search(r'display:none[^>]*>\s*<a href="([^"]+)"', html)
    assert button and links and hidden
    visible = [button.group(1)] + [
        link for link in links if link not in (hidden.group(1), button.group(1))
    ]
    return hidden.group(1), visible  # the call-to-action button first


def settle(runtime: Any) -> None:
    """A moment later: the web process has written its hits to the database and a
    worker has processed them (what the `hits` job does every second)."""
    runtime.spool.flush()
    track(runtime, datetime.now(UTC) + timedelta(minutes=5))


def reading_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clicks arrive a minute after delivery, as a reader's do (not a gateway's)."""
    import nurture.web.tracking as tracking

    monkeypatch.setattr(tracking, "request_now", lambda: datetime.now(UTC) + timedelta(minutes=1))


def test_a_human_click_crosses_the_threshold_and_the_crm_gets_a_signed_promotion(
    world: tuple[Any, Site],
    smtp_server: SmtpTestServer,
    http_receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime, site = world
    email = "nadia.girard@girard-plast.example"
    warm_up(site, email)
    before = lead_view(site, email)
    assert (before["score"], before["grade"], before["stage"]) == (76, "B", "mql")
    _, links = the_email_and_its_links(runtime, smtp_server)

    # The reader clicks the call to action, in a browser.
    reading_later(monkeypatch)
    path = urlsplit(links[0]).path
    status, headers, _ = site.request("GET", path)
    assert status == 302
    target = headers["location"]
    # Exactly the URL written in the template (its own UTM parameters are kept).
    assert target == (
        "https://www.planifia.example/fr/clients/moulages-berthier?utm_source=nurture"
        "&utm_medium=email&utm_campaign=whitepaper-evaluation&utm_content=testimonial"
    )
    # Answered at once; the score follows when a worker has processed the hit.
    assert lead_view(site, email)["score"] == 76
    settle(runtime)

    after = lead_view(site, email)
    assert after["score"] == 81  # 76 + 5: "clicked an email"
    assert any("clicked an email" in line for line in after["score_explained"])
    assert after["stage"] == "sql"  # promoted
    with runtime.sessions() as session:
        hit = session.scalars(select(TrackingHit)).one()
        assert (hit.classification, hit.kind) == ("human", "click")
        promotion = session.scalars(select(Promotion)).one()
        assert promotion.rep_email == "julien.moreau@planifia.example"  # round-robin, first
        stages = [c.to_stage for c in session.scalars(select(StageChange).order_by(StageChange.at))]
        assert stages[-2:] == ["mql", "sql"]

    report = runtime.crm.deliver_due(datetime.now(UTC) + timedelta(minutes=2))
    assert report.delivered == 1
    [push] = http_receiver.requests
    assert push.signature_ok and push.verified  # checked with the standardwebhooks package
    body = json.loads(push.body)
    assert body["type"] == "lead.promoted"
    data = body["data"]
    assert data["lead"]["email"] == email
    assert data["rep"]["email"] == "julien.moreau@planifia.example"
    assert "promote at" in data["promotion"]["reason"]
    assert data["score"]["value"] == 81 and data["score"]["grade"] == "B"
    assert data["engagement"][0]["content_kind"] == "testimonial"
    assert [s["to"] for s in data["stage_history"]][-2:] == ["mql", "sql"]

    # The CRM answers: accepted, then won with an amount (sent twice: a replay).
    for answer in (
        {"status": "accepted", "external_id": "crm-1"},
        {"status": "won", "amount": 36000, "external_id": "crm-2"},
        {"status": "won", "amount": 36000, "external_id": "crm-2"},
    ):
        status, _, reply = site.request(
            "POST", f"/api/v1/promotions/{promotion.id}/feedback", answer
        )
        assert status == 200, reply
    final = lead_view(site, email)
    assert final["stage"] == "customer"
    with runtime.sessions() as session:
        promotion = session.scalars(select(Promotion)).one()
        assert (promotion.status, promotion.amount) == ("won", 36000)


def test_scanner_clicks_do_not_promote_but_a_human_click_does(
    world: tuple[Any, Site], smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, site = world
    email = "nadia.girard@girard-plast.example"
    warm_up(site, email)
    honeypot, links = the_email_and_its_links(runtime, smtp_server)

    # A security gateway walks the email: HEAD requests, the honeypot, every link at once.
    for link in links:
        assert site.request("HEAD", urlsplit(link).path, agent="Mozilla/5.0")[0] == 302
    assert site.request("GET", urlsplit(honeypot).path)[0] == 302
    for link in links:
        site.request("GET", urlsplit(link).path, agent=CHROME)
    settle(runtime)
    view = lead_view(site, email)
    assert (view["score"], view["stage"]) == (76, "mql")
    with runtime.sessions() as session:
        verdicts = {h.classification for h in session.scalars(select(TrackingHit))}
        assert verdicts == {"scanner"}
        assert session.scalars(select(CrmPush)).first() is None

    # A while later, the reader clicks for real.
    reading_later(monkeypatch)
    assert site.request("GET", urlsplit(links[0]).path)[0] == 302
    settle(runtime)
    view = lead_view(site, email)
    assert view["stage"] == "sql"
    with runtime.sessions() as session:
        assert session.scalars(select(Lead.score)).one() == 81


def test_tampered_tokens_and_open_redirect_probes_never_leave_the_stored_url(
    world: tuple[Any, Site], smtp_server: SmtpTestServer
) -> None:
    runtime, site = world
    warm_up(site, "probe@girard-plast.example")
    _, links = the_email_and_its_links(runtime, smtp_server)
    good = urlsplit(links[0]).path  # /c/<token>: the target travels in the token
    token = good.split("/")[2]
    _, signature = token.split(".")
    with runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    evil = [delivery_id, 0, "https://evil.example/"]
    swapped = base64_encode(json.dumps(evil, separators=(",", ":"))).decode()
    forged = Tokens("another-secret-key-0123456789").link(*evil)
    carried = tokens_for(runtime.secret_key).read_link(token)
    assert carried is not None
    index = carried.link
    older = tokens_for(runtime.secret_key).click(delivery_id)  # /c/<token>/<index> links
    probes = [
        f"/c/{token[:-2]}",
        f"/c/{token}x",
        f"/c/{swapped}.{signature}",
        f"/c/{forged}",
        f"/c/{token}/0",
        f"/c/{token}?url=https://evil.example",
        f"/c/{token}/..%2f..%2fevil",
        f"/c/{older[:-2]}/{index}",
        f"/c/{older}x/{index}",
        f"/c/{older}/999",
        f"/c/{older}/-1",
        f"/c/{older}",
        f"/c/{older}/{index}?url=https://evil.example",
        f"/c/{older}/{index}/..%2f..%2fevil",
        "/c//evil.example/0",
        "/c/%2F%2Fevil.example/0",
        "/c/%5Cevil.example/0",
        "/c/https:evil.example/0",
        "/c/https%3A%2F%2Fgood%40evil.example/0",
        "/c/javascript:alert(1)/0",
        "/c/abc%0d%0aLocation:%20https://evil.example/0",
        "/o/garbage.gif",
        "/o/%0d%0a.gif",
        "/u/garbage",
    ]
    for probe in probes:
        status, headers, _ = site.request("GET", probe)
        assert status < 500, probe
        location = headers.get("location")
        if location is not None:
            # Only ever the URL of that link of that delivery.
            assert location.startswith("https://www.planifia.example/fr/"), (probe, location)
        if probe.startswith("/o/"):
            assert status == 200 and headers["content-type"] == "image/gif"


def test_a_click_later_unmasked_as_a_scanner_is_relabelled_and_rescored(
    world: tuple[Any, Site], smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nurture.web.tracking as tracking

    runtime, site = world
    email = "relabel@girard-plast.example"
    warm_up(site, email)
    honeypot, links = the_email_and_its_links(runtime, smtp_server)
    clock = datetime.now(UTC) + timedelta(minutes=3)
    monkeypatch.setattr(tracking, "request_now", lambda: clock)
    # Looks like a reader at first (a browser, minutes after delivery)...
    site.request("GET", urlsplit(links[1]).path)
    settle(runtime)
    assert lead_view(site, email)["score"] == 81
    # ...but the same visitor opens the hidden link two seconds later.
    clock += timedelta(seconds=2)
    monkeypatch.setattr(tracking, "request_now", lambda: clock)
    site.request("GET", urlsplit(honeypot).path)
    settle(runtime)
    with runtime.sessions() as session:
        assert {h.classification for h in session.scalars(select(TrackingHit))} == {"scanner"}
        lead = session.scalars(select(Lead).where(Lead.email == email)).one()
        assert lead.score == 76  # the click's 5 points are gone again
