"""Transports against a real SMTP server on 127.0.0.1: outcomes, reuse, faults, outbox.

The `smtp_server` fixtures live in tests/smtp_server.py (tests/conftest.py already existed).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurture.core.message import OutgoingEmail, build_message, make_message_id
from nurture.mail import (
    MemoryMailer,
    OutboxMailer,
    Rejected,
    RetryLater,
    Sent,
    SmtpMailer,
    SmtpTarget,
    Uncertain,
    dot_stuffed,
    mailer_from_settings,
)

if TYPE_CHECKING:
    from smtp_server import SmtpTestServer

pytest_plugins = ["smtp_server"]  # the smtp_server and smtp_server_factory fixtures

ServerFactory = Callable[..., "SmtpTestServer"]

EMAIL = OutgoingEmail(
    message_id=make_message_id("1/welcome", "planifia.example"),
    from_name="Équipe Planifia",
    from_email="bonjour@planifia.example",
    to_name="Jeanne Dupont",
    to_email="jeanne@example.com",
    reply_to="claire.martin@planifia.example",
    subject="Votre guide d'évaluation",
    html="<p>Bonjour Jeanne,</p><p>Voici le guide.</p>",
    text="Bonjour Jeanne,\n\nVoici le guide.\n",
    list_id="whitepaper-evaluation.nurture.example.com",
    list_name="Évaluation du livre blanc",
    unsubscribe_url="https://nurture.example.com/u/tok3n",
    unsubscribe_mailto="unsubscribe@planifia.example",
    date=datetime(2024, 5, 6, 9, 30, tzinfo=UTC),
    headers={"X-Nurture-Delivery": "1"},
)


def message(n: int = 1, to: str = "jeanne@example.com", **changes: object) -> EmailMessage:
    email = replace(
        EMAIL,
        message_id=make_message_id(f"{n}/welcome", "planifia.example"),
        to_email=to,
        headers={"X-Nurture-Delivery": str(n)},
        **changes,
    )
    return build_message(email)


@pytest.fixture
def mailer_for() -> Iterator[Callable[..., SmtpMailer]]:
    """SmtpMailer instances closed after the test."""
    made: list[SmtpMailer] = []

    def make(url: str, **kwargs: object) -> SmtpMailer:
        mailer = SmtpMailer(url, timeout=5, **kwargs)  # type: ignore[arg-type]
        made.append(mailer)
        return mailer

    yield make
    for mailer in made:
        mailer.close()


# --- what arrives ------------------------------------------------------------------


def test_message_arrives_with_both_parts_and_all_headers(
    smtp_server: SmtpTestServer, mailer_for: Callable[..., SmtpMailer]
) -> None:
    assert mailer_for(smtp_server.url).send(message()) == Sent()

    (got,) = smtp_server.received
    assert got.mail_from == "bonjour@planifia.example"
    assert got.recipients == ("jeanne@example.com",)
    mail = got.message
    text, html = mail.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert "Voici le guide." in text.get_content()
    assert html.get_content_type() == "text/html"
    assert "<p>Voici le guide.</p>" in html.get_content()
    assert mail["Message-ID"] == f"<{EMAIL.message_id}>"
    assert parsedate_to_datetime(mail["Date"]) == EMAIL.date
    assert mail["From"].addresses[0].display_name == "Équipe Planifia"
    assert got.raw.isascii()  # the non-ASCII name travels RFC 2047-encoded
    assert str(mail["To"]) == "Jeanne Dupont <jeanne@example.com>"
    assert str(mail["Reply-To"]) == "claire.martin@planifia.example"
    assert mail["Subject"] == "Votre guide d'évaluation"
    assert mail["List-Unsubscribe"] == (
        "<https://nurture.example.com/u/tok3n>, "
        "<mailto:unsubscribe@planifia.example?subject=unsubscribe>"
    )
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Id"] == (
        "Évaluation du livre blanc <whitepaper-evaluation.nurture.example.com>"
    )
    assert mail["X-Nurture-Delivery"] == "1"


def test_fifty_messages_travel_over_one_connection(
    smtp_server: SmtpTestServer, mailer_for: Callable[..., SmtpMailer]
) -> None:
    mailer = mailer_for(smtp_server.url)
    results = [mailer.send(message(n, to=f"lead{n}@example.com")) for n in range(50)]
    assert results == [Sent()] * 50
    assert smtp_server.connections == 1
    assert [r.recipients for r in smtp_server.received] == [
        (f"lead{n}@example.com",) for n in range(50)
    ]


def test_reconnects_when_the_server_closed_the_idle_connection(
    smtp_server: SmtpTestServer, mailer_for: Callable[..., SmtpMailer]
) -> None:
    mailer = mailer_for(smtp_server.url)
    assert mailer.send(message(1)) == Sent()
    smtp_server.close_connections()
    assert mailer.send(message(2)) == Sent()
    assert smtp_server.connections == 2
    assert [m["X-Nurture-Delivery"] for m in smtp_server.messages] == ["1", "2"]


def test_envelope_sender_can_be_set_in_the_url(
    smtp_server: SmtpTestServer, mailer_for: Callable[..., SmtpMailer]
) -> None:
    url = f"{smtp_server.url}?envelope_from=bounces%40planifia.example&helo=mx.planifia.example"
    assert mailer_for(url).send(message()) == Sent()
    (got,) = smtp_server.received
    assert got.mail_from == "bounces@planifia.example"
    assert got.message["From"].addresses[0].addr_spec == "bonjour@planifia.example"


def test_header_injection_reaches_no_one_else(
    smtp_server: SmtpTestServer, mailer_for: Callable[..., SmtpMailer]
) -> None:
    evil = "Bob\r\nBcc: victim@example.com"
    sent = message(
        to_name=evil, subject=f"Hi {evil}", from_name="=?utf-8?q?A=0D=0ABcc=3A_v=40x.com?="
    )
    assert mailer_for(smtp_server.url).send(sent) == Sent()
    (got,) = smtp_server.received
    assert got.recipients == ("jeanne@example.com",)
    assert "Bcc" not in got.message
    assert len(got.message.get_all("To") or []) == 1
    assert b"\r\nBcc" not in got.raw


# --- faults ------------------------------------------------------------------------


def test_temporary_failure_at_mail_from_means_retry_later(
    smtp_server_factory: ServerFactory, mailer_for: Callable[..., SmtpMailer]
) -> None:
    server = smtp_server_factory(tempfail_mail=1)
    mailer = mailer_for(server.url)
    result = mailer.send(message(1))
    assert isinstance(result, RetryLater)
    assert "451" in result.reason
    assert server.received == []
    assert mailer.send(message(1)) == Sent()  # the same connection carries the retry
    assert server.connections == 1


def test_unknown_recipient_is_a_rejection_with_its_code(
    smtp_server_factory: ServerFactory, mailer_for: Callable[..., SmtpMailer]
) -> None:
    server = smtp_server_factory(reject_rcpt={"gone@example.com"})
    mailer = mailer_for(server.url)
    result = mailer.send(message(1, to="gone@example.com"))
    assert isinstance(result, Rejected)
    assert result.code == 550
    assert result.bounce
    assert "RCPT TO" in result.reason
    assert mailer.send(message(2)) == Sent()
    assert [r.recipients for r in server.received] == [("jeanne@example.com",)]
    assert server.connections == 1


def test_connection_lost_after_the_data_is_uncertain(
    smtp_server_factory: ServerFactory, mailer_for: Callable[..., SmtpMailer]
) -> None:
    server = smtp_server_factory(drop_after_data=True)
    mailer = mailer_for(server.url)
    result = mailer.send(message(1))
    assert isinstance(result, Uncertain)
    assert len(server.received) == 1  # it did arrive: resending would duplicate it
    server.drop_after_data = False
    assert mailer.send(message(2)) == Sent()
    assert server.connections == 2


def test_no_reply_within_the_timeout_after_the_data_is_uncertain(
    smtp_server_factory: ServerFactory, mailer_for: Callable[..., SmtpMailer]
) -> None:
    server = smtp_server_factory(stall_after_data=3)
    result = SmtpMailer(server.url, timeout=0.5).send(message())
    assert isinstance(result, Uncertain)
    assert "timed out" in result.reason


def test_unreachable_server_means_retry_later(
    smtp_server_factory: ServerFactory, mailer_for: Callable[..., SmtpMailer]
) -> None:
    server = smtp_server_factory()
    url = server.url
    server.stop()
    result = mailer_for(url).send(message())
    assert isinstance(result, RetryLater)
    assert "connect" in result.reason


def test_authentication_with_user_and_password(
    smtp_server_factory: ServerFactory, mailer_for: Callable[..., SmtpMailer]
) -> None:
    server = smtp_server_factory(auth=("nurture", "p@ss:w/rd +%"))
    assert "p%40ss%3Aw%2Frd" in server.url
    assert mailer_for(server.url).send(message()) == Sent()
    (got,) = server.received
    assert got.user == "nurture"


def test_wrong_password_is_retry_later_naming_auth(
    smtp_server_factory: ServerFactory, mailer_for: Callable[..., SmtpMailer]
) -> None:
    server = smtp_server_factory(auth=("nurture", "right"))
    url = f"smtp://nurture:wrong@127.0.0.1:{server.port}"
    result = mailer_for(url).send(message())
    assert isinstance(result, RetryLater)
    assert "AUTH" in result.reason
    assert "535" in result.reason
    assert server.received == []


def test_failed_connection_is_not_retried_for_every_message(
    smtp_server_factory: ServerFactory, mailer_for: Callable[..., SmtpMailer]
) -> None:
    server = smtp_server_factory(auth=("nurture", "right"))
    url = f"smtp://nurture:wrong@127.0.0.1:{server.port}"
    mailer = mailer_for(url)
    first = mailer.send(message(1))
    assert isinstance(first, RetryLater)
    assert mailer.send(message(2)) == first
    assert server.connections == 1
    eager = mailer_for(url, cooldown=0)
    assert [eager.send(message(n)) for n in (1, 2)] == [first, first]
    assert server.connections == 3


def test_no_auth_when_the_server_requires_it_is_rejected_at_mail_from(
    smtp_server_factory: ServerFactory, mailer_for: Callable[..., SmtpMailer]
) -> None:
    server = smtp_server_factory(auth=("nurture", "right"))
    result = mailer_for(f"smtp://127.0.0.1:{server.port}").send(message())
    assert isinstance(result, Rejected)
    assert result.code == 530
    assert not result.bounce


# --- TLS ---------------------------------------------------------------------------


def test_starttls_with_auth(
    smtp_server_factory: ServerFactory,
    mailer_for: Callable[..., SmtpMailer],
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server = smtp_server_factory(auth=("nurture", "secret"), tls_context=tls_contexts[0])
    mailer = mailer_for(f"{server.url}?starttls=required", ssl_context=tls_contexts[1])
    assert mailer.send(message(1)) == Sent()
    assert mailer.send(message(2)) == Sent()
    assert server.connections == 1
    assert [r.user for r in server.received] == ["nurture", "nurture"]


def test_implicit_tls(
    smtp_server_factory: ServerFactory,
    mailer_for: Callable[..., SmtpMailer],
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server = smtp_server_factory(implicit_tls_context=tls_contexts[0])
    assert server.url.startswith("smtps://")
    assert mailer_for(server.url, ssl_context=tls_contexts[1]).send(message()) == Sent()
    assert len(server.received) == 1


def test_untrusted_certificate_is_retry_later(
    smtp_server_factory: ServerFactory,
    mailer_for: Callable[..., SmtpMailer],
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server = smtp_server_factory(tls_context=tls_contexts[0])
    result = mailer_for(f"{server.url}?starttls=true").send(message())
    assert isinstance(result, RetryLater)
    assert "STARTTLS" in result.reason
    assert server.received == []


def test_starttls_required_but_not_offered_is_retry_later(
    smtp_server: SmtpTestServer, mailer_for: Callable[..., SmtpMailer]
) -> None:
    result = mailer_for(f"{smtp_server.url}?starttls=required").send(message())
    assert isinstance(result, RetryLater)
    assert "STARTTLS" in result.reason
    assert smtp_server.received == []


# --- SMTP URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://localhost", SmtpTarget("localhost", 25)),
        ("smtp://mail.example.com:2525", SmtpTarget("mail.example.com", 2525)),
        (
            "smtp://me%40example.com:p%40ss%3Aw@mail.example.com?starttls=true",
            SmtpTarget(
                "mail.example.com", 587, starttls=True, username="me@example.com", password="p@ss:w"
            ),
        ),
        (
            "smtp://u:p@mail.example.com:587?starttls=required&helo=app.example.com",
            SmtpTarget(
                "mail.example.com", 587, starttls=True, username="u", password="p",
                helo="app.example.com",
            ),
        ),
        (
            "smtps://u:p@mail.example.com",
            SmtpTarget("mail.example.com", 465, implicit_tls=True, username="u", password="p"),
        ),
        (
            "smtp://mail.example.com?envelope_from=bounce%40example.com&starttls=false",
            SmtpTarget("mail.example.com", 25, envelope_from="bounce@example.com"),
        ),
    ],
)  # fmt: skip
def test_smtp_urls_are_understood(url: str, expected: SmtpTarget) -> None:
    assert SmtpTarget.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail.example.com", "scheme must be smtp:// or smtps://"),
        ("mail.example.com:25", "scheme must be smtp:// or smtps://"),
        ("smtp://", "missing host"),
        ("smtp://:25", "missing host"),
        ("smtp://mail.example.com:99999", "port must be a number"),
        ("smtp://mail.example.com:abc", "port must be a number"),
        ("smtp://mail.example.com:0", "port must be a number"),
        ("smtp://mail.example.com/inbox", "unexpected path"),
        ("smtp://mail.example.com?starttls=maybe", "starttls must be"),
        ("smtps://mail.example.com?starttls=true", "smtps:// is already encrypted"),
        ("smtp://user@mail.example.com", "both a user and a password"),
        ("smtp://:pw@mail.example.com", "both a user and a password"),
        ("smtp://mail.example.com?tls=1", "unknown option 'tls'"),
        ("smtp://mail.example.com?helo=a&helo=b", "given twice"),
        ("smtp://mail.example.com?helo=bad%20name", "helo must be a host name"),
        ("smtp://mail.example.com?envelope_from=nobody", "envelope_from"),
        ("smtp://u:p%C3%A9@mail.example.com", "must be ASCII"),
    ],
)
def test_bad_smtp_urls_say_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        SmtpMailer(url)


def test_url_errors_never_show_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        SmtpMailer("smtp://user:hunter2@mail.example.com?starttls=maybe")
    assert "hunter2" not in str(caught.value)
    assert "user:***@mail.example.com" in str(caught.value)
    assert "hunter2" not in repr(SmtpTarget.from_url("smtp://user:hunter2@mail.example.com"))


# --- outbox, memory, choice ------------------------------------------------------------


def test_outbox_writes_a_parseable_eml_per_message_id(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "outbox"
    mailer = OutboxMailer(folder)
    assert mailer.send(message(1)) == Sent()
    assert mailer.send(message(1, subject="Second try")) == Sent()
    assert mailer.send(message(2)) == Sent()

    files = sorted(folder.iterdir())
    assert [f.name for f in files] == sorted(
        f"{make_message_id(f'{n}/welcome', 'planifia.example')}.eml" for n in (1, 2)
    )
    first = message_from_bytes(
        (folder / f"{make_message_id('1/welcome', 'planifia.example')}.eml").read_bytes(),
        _class=EmailMessage,
        policy=default,
    )
    assert first["Subject"] == "Second try"  # same Message-ID: overwritten, not duplicated
    assert first["From"].addresses[0].display_name == "Équipe Planifia"
    assert [p.get_content_type() for p in first.iter_parts()] == ["text/plain", "text/html"]


def test_outbox_file_names_cannot_escape_the_folder(tmp_path: Path) -> None:
    mail = message(1)
    mail.replace_header("Message-ID", "<../../etc/passwd@x>")
    assert OutboxMailer(tmp_path / "outbox").send(mail) == Sent()
    assert [p.name for p in (tmp_path / "outbox").iterdir()] == ["_.._etc_passwd@x.eml"]


def test_outbox_that_cannot_be_written_is_retry_later(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    result = OutboxMailer(blocker).send(message())
    assert isinstance(result, RetryLater)
    assert "not-a-folder" in result.reason


def test_memory_mailer_plays_scripted_outcomes() -> None:
    mailer = MemoryMailer([RetryLater("451 busy"), Rejected("550 no such user", 550, bounce=True)])
    outcomes = [mailer.send(message(n)) for n in range(3)]
    assert outcomes == [RetryLater("451 busy"), Rejected("550 no such user", 550, True), Sent()]
    assert [m["X-Nurture-Delivery"] for m in mailer.messages] == ["2"]
    assert len(mailer.attempts) == 3


def test_mailer_is_chosen_from_settings(tmp_path: Path) -> None:
    assert isinstance(mailer_from_settings(None, tmp_path), OutboxMailer)
    assert isinstance(mailer_from_settings("smtp://mail.example.com", tmp_path), SmtpMailer)
    with pytest.raises(ValueError, match="port"):
        mailer_from_settings("smtp://mail.example.com:x", tmp_path)


@given(
    st.lists(
        st.sampled_from([b".", b"..", b"\r\n", b"\n", b"\r", b"a", b"=2E", b".\r\n", b" ."]),
        max_size=40,
    ).map(b"".join)
)
def test_dot_stuffing_doubles_every_period_that_opens_a_line(payload: bytes) -> None:
    # The reference: a period at the start of any line (after LF, or first) is doubled.
    expected = re.sub(rb"(?m)^\.", b"..", payload)
    if not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert dot_stuffed(payload) == expected + b".\r\n"
