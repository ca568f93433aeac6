"""Unsubscribe links from real emails: GET changes nothing, POST and one-click do."""

from __future__ import annotations

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
        lambda t: t.replace(".", "%0d%0a"),
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
def test_tokens_are_the_serializers_own_and_read_back(delivery_id: int) -> None:
    """Links already sent keep working: the tokens are itsdangerous' byte for byte."""
    secret = "a-secret-key-for-tokens-0123456789"
    tokens = Tokens(secret)
    for salt, token, read in (
        ("nurture.open", tokens.open(delivery_id), tokens.read_open),
        ("nurture.click", tokens.click(delivery_id), tokens.read_click),
        ("nurture.unsubscribe", tokens.unsubscribe(delivery_id), tokens.read_unsubscribe),
    ):
        assert token == URLSafeSerializer(secret, salt=salt).dumps(delivery_id)
        assert read(token) == delivery_id
        swapped = "A" if token[-5] != "A" else "B"  # not the last: its low bits are padding
        assert read(token[:-5] + swapped + token[-4:]) is None
    assert Tokens("another-secret-key-0123456789").read_open(tokens.open(delivery_id)) is None


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
    payload, signature = opened.split(".")
    assert tokens.read_open(f"{payload}.{signature}=") is None  # padded: still the same bytes
    assert tokens.read_open(f"{payload}.{signature[:-1]}é") is None
    assert tokens.read_open(f"{payload}é.{signature}") is None
    assert tokens.read_open(opened.replace(".", "")) is None
    assert tokens.read_open(opened) == 7
