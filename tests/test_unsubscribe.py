"""Unsubscribe links from real emails: GET changes nothing, POST and one-click do."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from nurture.app import create_app
from nurture.core.intake import parse_lead
from nurture.enrollment import on_event
from nurture.leads import upsert_lead
from nurture.mail import MemoryMailer
from nurture.models import Delivery, Lead
from nurture.tracking import Tokens

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SEQUENCE = """\
id: news
name: News
locales: [en]
entry:
  triggers:
    - event: {name: start}
steps:
  - id: one
    email: {template: example, kind: newsletter}
  - id: pause
    wait: 1 day
  - id: two
    email: {template: example, kind: newsletter}
"""


@pytest.fixture
def mailed(make_runtime: Any, content_dirs: tuple[Path, Path]) -> Any:
    sequences, templates = content_dirs
    (sequences / "news.yaml").write_text(SEQUENCE)
    mailer = MemoryMailer()
    runtime = make_runtime(
        mailer_factory=lambda: mailer, sequences_dir=sequences, templates_dir=templates
    )
    with runtime.sessions.begin() as session:
        lead, _, _ = upsert_lead(session, parse_lead({"email": "u@example.com"}), T0)
        on_event(session, runtime.content, lead, "start", {}, T0)
    assert runtime.dispatcher.tick(T0).sent == 1
    header = mailer.messages[0]["List-Unsubscribe"]
    url = header.split("<")[1].split(">")[0]
    assert url.startswith("https://nurture.test/u/")
    assert mailer.messages[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = urlsplit(url).path
    assert path in mailer.messages[0].get_body(("plain",)).get_content()  # the footer link
    return runtime, create_app(runtime=runtime).test_client(), mailer, path


def unsubscribed(runtime: Any) -> bool:
    with runtime.sessions() as session:
        return session.scalars(select(Lead.unsubscribed_at)).one() is not None


def test_get_shows_a_confirmation_and_changes_nothing(mailed: Any) -> None:
    runtime, client, _, path = mailed
    for _ in range(3):  # link scanners may follow it several times
        page = client.get(path)
        assert page.status_code == 200
        assert "u@example.com" in page.get_data(as_text=True)
        assert '<form method="post">' in page.get_data(as_text=True)
    assert not unsubscribed(runtime)


def test_one_click_post_unsubscribes_without_redirect_and_stops_the_next_email(mailed: Any) -> None:
    runtime, client, mailer, path = mailed
    response = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "Location" not in response.headers
    assert unsubscribed(runtime)
    again = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200  # idempotent
    assert runtime.dispatcher.tick(T0 + timedelta(days=2)).sent == 0
    assert len(mailer.messages) == 1


def test_one_click_as_multipart(mailed: Any) -> None:
    runtime, client, _, path = mailed
    response = client.post(
        path, data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data"
    )
    assert response.status_code == 200
    assert unsubscribed(runtime)


def test_confirmation_form_post(mailed: Any) -> None:
    runtime, client, _, path = mailed
    response = client.post(path)
    assert response.status_code == 200
    assert "unsubscribed" in response.get_data(as_text=True)
    assert unsubscribed(runtime)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-3],
        lambda t: t + "x",
        lambda t: t[:10],
        lambda t: "A" * 40,
        lambda t: t[:5] + "%0d%0a" + t[5:],
        lambda t: t[:8] + ("B" if t[8] == "A" else "A") + t[9:],
        lambda t: "..%2f..%2fetc",
    ],
)
def test_tampered_tokens_change_nothing_and_never_fail(mailed: Any, mangle: Any) -> None:
    runtime, client, _, path = mailed
    token = path.rsplit("/", 1)[1]
    bad = f"/u/{mangle(token)}"
    assert client.get(bad).status_code == 404
    assert client.post(bad, data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert not unsubscribed(runtime)


def test_a_token_forged_without_the_secret_is_refused(mailed: Any) -> None:
    runtime, client, _, path = mailed
    with runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    forged = Tokens("another-secret-key-0123456789").unsubscribe(delivery_id)
    assert f"/u/{forged}" != path
    assert client.post(f"/u/{forged}", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert not unsubscribed(runtime)


@pytest.mark.parametrize("delivery_id", [0, 1, 42, 2**31 - 1, 10**15])
def test_tokens_written_before_ids_were_opaque_keep_working(delivery_id: int) -> None:
    """Links already sent carry itsdangerous' tokens of the readable number: still read."""
    secret = "a-secret-key-for-tokens-0123456789"
    tokens = Tokens(secret)
    for salt, read in (
        ("nurture.open", tokens.read_open),
        ("nurture.click", tokens.read_click),
        ("nurture.unsubscribe", tokens.read_unsubscribe),
    ):
        token = URLSafeSerializer(secret, salt=salt).dumps(delivery_id)
        assert read(token) == delivery_id
        swapped = "A" if token[-5] != "A" else "B"  # not the last: its low bits are padding
        assert read(token[:-5] + swapped + token[-4:]) is None
    old = URLSafeSerializer(secret, salt="nurture.open").dumps(delivery_id)
    assert Tokens("another-secret-key-0123456789").read_open(old) is None
    assert tokens.click(delivery_id) == URLSafeSerializer(secret, salt="nurture.click").dumps(
        delivery_id
    )


@pytest.mark.parametrize("delivery_id", [0, 1, 42, 2**31 - 1, 10**15])
def test_new_tokens_do_not_tell_the_delivery_number(delivery_id: int) -> None:
    """Neither readable (base64 of the number) nor sequential: a link tells nobody how
    much is sent, and the next delivery's token cannot be guessed from this one."""
    secret = "a-secret-key-for-tokens-0123456789"
    tokens = Tokens(secret)
    for token, read in (
        (tokens.open(delivery_id), tokens.read_open),
        (tokens.unsubscribe(delivery_id), tokens.read_unsubscribe),
    ):
        assert len(token) == 22 and "." not in token
        assert read(token) == delivery_id
        readable = base64.urlsafe_b64encode(str(delivery_id).encode()).rstrip(b"=").decode()
        assert readable not in token
        neighbour = tokens.open(delivery_id + 1)
        assert sum(a == b for a, b in zip(token, neighbour, strict=True)) < 8
        for i in (0, 8, 20):  # any character changed: not ours
            swapped = "B" if token[i] == "A" else "A"
            assert read(token[:i] + swapped + token[i + 1 :]) is None
    carried = tokens.read_link(tokens.link(delivery_id, 3, "https://example.com/a"))
    assert carried == (delivery_id, 3, "https://example.com/a")
    payload = tokens.link(delivery_id, 3, "https://example.com/a").split(".")[0]
    shown = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert shown[0] == tokens._opaque_link.dumps(delivery_id) != delivery_id  # as the lead sees it
    assert Tokens("another-secret-key-0123456789").read_open(tokens.open(delivery_id)) is None


def test_a_link_sent_before_ids_were_opaque_still_redirects() -> None:
    secret = "a-secret-key-for-tokens-0123456789"
    old = URLSafeSerializer(secret, salt="nurture.link").dumps([42, 1, "https://example.com/"])
    assert Tokens(secret).read_link(old) == (42, 1, "https://example.com/")


def test_a_token_reads_only_as_what_it_was_signed_for() -> None:
    """Checked without the serializer on the hot path: another purpose's token, a signed
    value that is not a delivery id, a signature written otherwise or text that is not
    ASCII all read as None."""
    secret = "a-secret-key-for-tokens-0123456789"
    tokens = Tokens(secret)
    opened = tokens.open(7)
    assert tokens.read_click(opened) is None and tokens.read_unsubscribe(opened) is None
    for value in ("7", 7.0, True, [7], None):
        assert tokens.read_open(URLSafeSerializer(secret, salt="nurture.open").dumps(value)) is None
    legacy = URLSafeSerializer(secret, salt="nurture.open").dumps(7)
    payload, signature = legacy.split(".")
    assert tokens.read_open(f"{payload}.{signature}=") is None  # padded: still the same bytes
    assert tokens.read_open(f"{payload}.{signature[:-1]}é") is None
    assert tokens.read_open(f"{payload}é.{signature}") is None
    assert tokens.read_open(legacy.replace(".", "")) is None
    assert tokens.read_open(opened[:-1] + "é") is None
    assert tokens.read_open(opened + "=") is None
    assert tokens.read_open(legacy) == 7 and tokens.read_open(opened) == 7
