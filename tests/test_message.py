"""Building the MIME message: what a mail client shows, and what lead data cannot forge."""

from __future__ import annotations

import binascii
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes
from email.header import Header
from email.message import EmailMessage
from email.policy import default
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.core.message import (
    InvalidAddress,
    InvalidHeader,
    MessageError,
    OutgoingEmail,
    _qp,
    build,
    build_message,
    clean_text,
    make_message_id,
    serialize,
)

EMAIL = OutgoingEmail(
    message_id="3f2a9c@planifia.example",
    from_name="Équipe Planifia",
    from_email="bonjour@planifia.example",
    to_name="Jeanne Dupont",
    to_email="jeanne@example.com",
    reply_to="claire.martin@planifia.example",
    subject="Votre évaluation : 5 questions à poser",
    html="<p>Bonjour Jeanne,</p><p>Voici le guide.</p>",
    text="Bonjour Jeanne,\n\nVoici le guide.\n",
    list_id="whitepaper-evaluation.nurture.example.com",
    list_name="Évaluation du livre blanc",
    unsubscribe_url="https://nurture.example.com/u/tok3n",
    unsubscribe_mailto="unsubscribe@planifia.example",
    date=datetime(2024, 5, 6, 9, 30, tzinfo=UTC),
    headers={"X-Nurture-Delivery": "42"},
)

INJECTIONS = [
    "Bob\r\nBcc: victim@example.com",
    "Bob\nBcc: victim@example.com",
    "Bob\rBcc: victim@example.com",
    "Bob\u2028Bcc: victim@example.com",
    "Bob\x00\x0bBcc: victim@example.com",
    "=?utf-8?q?Bob=0D=0ABcc=3A_victim=40example=2Ecom?=",
    "=?utf-8?b?Qm9iDQpCY2M6IHZpY3RpbUBleGFtcGxlLmNvbQ==?=",
]


def received(email: OutgoingEmail) -> EmailMessage:
    """The message as a receiving client parses it from the wire bytes."""
    parsed = message_from_bytes(
        serialize(build_message(email)), _class=EmailMessage, policy=default
    )
    assert isinstance(parsed, EmailMessage)
    return parsed


def content(part: EmailMessage) -> str:
    """A body part's text with the wire's CRLF line ends read as a client shows them."""
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def header_lines(email: OutgoingEmail) -> list[str]:
    head = serialize(build_message(email)).split(b"\r\n\r\n", 1)[0].decode("ascii")
    return head.split("\r\n")


def test_message_has_text_then_html_alternatives() -> None:
    message = received(EMAIL)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert content(parts[0]) == EMAIL.text
    assert content(parts[1]) == EMAIL.html + "\n"
    assert message["MIME-Version"] == "1.0"
    assert all("MIME-Version" not in p for p in parts)


def test_headers_read_back_as_given() -> None:
    message = received(EMAIL)
    assert message["Message-ID"] == "<3f2a9c@planifia.example>"
    assert parsedate_to_datetime(message["Date"]) == EMAIL.date
    assert message["From"].addresses[0].display_name == "Équipe Planifia"
    assert message["From"].addresses[0].addr_spec == "bonjour@planifia.example"
    assert str(message["To"]) == "Jeanne Dupont <jeanne@example.com>"
    assert str(message["Reply-To"]) == "claire.martin@planifia.example"
    assert message["Subject"] == EMAIL.subject
    assert (
        message["List-Id"]
        == "Évaluation du livre blanc <whitepaper-evaluation.nurture.example.com>"
    )
    assert message["List-Unsubscribe"] == (
        "<https://nurture.example.com/u/tok3n>, "
        "<mailto:unsubscribe@planifia.example?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Nurture-Delivery"] == "42"


def test_non_ascii_headers_are_encoded_and_the_wire_is_7bit_crlf() -> None:
    wire = serialize(build_message(EMAIL))
    wire.decode("ascii")  # raises if any byte is 8-bit
    assert b"\n" not in wire.replace(b"\r\n", b"")
    head = header_lines(EMAIL)
    assert any(line.startswith("From: =?utf-8?") for line in head)
    assert any(line.startswith("Subject: ") and "=?utf-8?" in line for line in head)


def test_long_lines_and_leading_dots_survive() -> None:
    long_html = "<p>" + "é" * 3000 + "</p>"
    text = ".starts with a dot\n" + "x" * 2000 + "\n"
    message = received(replace(EMAIL, html=long_html, text=text))
    plain, html = message.iter_parts()
    assert content(plain) == text
    assert content(html) == long_html + "\n"
    body_lines = serialize(build_message(replace(EMAIL, html=long_html))).split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 998


def test_long_unsubscribe_url_is_never_encoded_or_cut() -> None:
    url = "https://nurture.example.com/unsubscribe/" + "A1b2-_" * 40 + "?t=x=?y"
    email = replace(EMAIL, unsubscribe_url=url)
    assert received(email)["List-Unsubscribe"].startswith(f"<{url}>")
    assert any(line == f"List-Unsubscribe: <{url}>," for line in header_lines(email))


@pytest.mark.parametrize(
    ("url", "mailto", "expected", "one_click"),
    [
        ("https://n.example/u/t", None, "<https://n.example/u/t>", True),
        ("http://127.0.0.1:5000/u/t", None, "<http://127.0.0.1:5000/u/t>", False),
        (
            "https://n.example/u/t",
            "unsub@n.example",
            "<https://n.example/u/t>, <mailto:unsub@n.example?subject=unsubscribe>",
            True,
        ),
    ],
)
def test_list_unsubscribe_variants(
    url: str, mailto: str | None, expected: str, one_click: bool
) -> None:
    message = received(replace(EMAIL, unsubscribe_url=url, unsubscribe_mailto=mailto))
    assert message["List-Unsubscribe"] == expected
    assert ("List-Unsubscribe-Post" in message) is one_click


def test_optional_names_and_reply_to_may_be_absent() -> None:
    message = received(replace(EMAIL, to_name=None, reply_to=None, from_name=""))
    assert str(message["To"]) == "jeanne@example.com"
    assert str(message["From"]) == "bonjour@planifia.example"
    assert "Reply-To" not in message


def test_names_with_commas_and_quotes_stay_one_address() -> None:
    message = received(replace(EMAIL, to_name='Dupont, Jeanne "JJ" <boss@evil.example>'))
    (address,) = message["To"].addresses
    assert address.addr_spec == "jeanne@example.com"
    assert address.display_name == 'Dupont, Jeanne "JJ" <boss@evil.example>'


def test_date_in_another_offset_is_kept() -> None:
    paris = datetime(2024, 5, 6, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    assert received(replace(EMAIL, date=paris))["Date"] == "Mon, 06 May 2024 11:30:00 +0200"


def test_international_domain_is_sent_as_punycode() -> None:
    message = received(replace(EMAIL, to_email="marie@exemple-médical.fr"))
    assert message["To"].addresses[0].addr_spec == "marie@xn--exemple-mdical-jkb.fr"


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("field", ["to_name", "from_name", "subject", "list_name", "header"])
def test_lead_data_cannot_inject_headers(field: str, payload: str) -> None:
    if field == "header":
        email = replace(EMAIL, headers={"X-Nurture-Lead": payload})
    else:
        email = replace(EMAIL, **{field: payload})
    message = received(email)
    assert "Bcc" not in message
    assert len(message.get_all("To") or []) == 1
    assert [a.addr_spec for a in message["To"].addresses] == ["jeanne@example.com"]
    assert not any(line.lower().startswith("bcc") for line in header_lines(email))


def test_cleaned_text_keeps_the_words() -> None:
    message = received(replace(EMAIL, subject="Bonjour\r\n  Jeanne\t!", to_name="Bob\r\nSmith"))
    assert message["Subject"] == "Bonjour Jeanne !"
    assert message["To"].addresses[0].display_name == "Bob Smith"


@pytest.mark.parametrize("field", ["to_email", "from_email", "reply_to", "unsubscribe_mailto"])
@pytest.mark.parametrize(
    "value",
    [
        "bob@example.com\r\nBcc: victim@example.com",
        "bob@example.com\n",
        "not-an-address",
        "bob smith@example.com",
        "bob@exa mple.com",
        "Bob <bob@example.com>",
        "bob@",
        "bob@-example.com",
        "=?utf-8?q?x?=@example.com",
        "josé@example.com",
    ],
)
def test_bad_addresses_raise_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(InvalidAddress, match=field):
        build_message(replace(EMAIL, **{field: value}))


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "https://n.example/u/a b",
        "https://n.example/u/a>, <https://evil.example",
        "https://n.example/u/\r\nBcc: x@y.z",
        "https://n.example/u/é",
        "https://n.example/" + "a" * 1000,
    ],
)
def test_bad_unsubscribe_urls_raise(url: str) -> None:
    with pytest.raises(InvalidHeader, match="unsubscribe_url"):
        build_message(replace(EMAIL, unsubscribe_url=url))


@pytest.mark.parametrize("name", ["Bcc", "to", "Subject", "List-Id", "X Bad", "X-A:b", ""])
def test_extra_headers_cannot_replace_builder_headers(name: str) -> None:
    with pytest.raises(InvalidHeader, match="headers"):
        build_message(replace(EMAIL, headers={name: "v"}))


@pytest.mark.parametrize("message_id", ["<abc@x.example>", "abc", "a b@x.example", "a@x\r\n"])
def test_malformed_message_id_raises(message_id: str) -> None:
    with pytest.raises(InvalidHeader, match="message_id"):
        build_message(replace(EMAIL, message_id=message_id))


def test_naive_date_raises() -> None:
    with pytest.raises(MessageError, match="date"):
        build_message(replace(EMAIL, date=datetime(2024, 5, 6, 9, 30)))


def test_list_id_is_made_safe() -> None:
    message = received(replace(EMAIL, list_id="onboarding.::1", list_name='A <b> "c"'))
    assert message["List-Id"] == "A b c <onboarding.-1>"


def test_message_id_is_stable_per_delivery_key() -> None:
    first = make_message_id("17/welcome", "planifia.example")
    assert first == make_message_id("17/welcome", "planifia.example")
    assert first != make_message_id("17/follow-up", "planifia.example")
    assert first.endswith("@planifia.example")
    assert received(replace(EMAIL, message_id=first))["Message-ID"] == f"<{first}>"


@pytest.mark.parametrize("domain", ["", "bad domain", "x\r\ny", "-x.example"])
def test_message_id_domain_is_checked(domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        make_message_id("17/welcome", domain)


@settings(max_examples=300, deadline=None)
@given(subject=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=90))
def test_short_subject_lines_are_what_the_email_package_folds(subject: str) -> None:
    """The fast path for short ASCII headers writes exactly what `email.header` writes."""
    built = build(replace(EMAIL, subject=subject)).data.decode("ascii")
    cleaned = clean_text(subject)
    folded = Header(cleaned, "us-ascii", header_name="Subject").encode(linesep="\r\n")
    assert f"\r\nSubject: {folded}\r\n" in built
    assert build_message(replace(EMAIL, subject=subject))["Subject"] == cleaned


@settings(max_examples=500, deadline=None)
@given(body=st.text(alphabet=st.sampled_from("ab =\t.é€😀<>\"'\r\n" + "y" * 30), max_size=400))
def test_bodies_are_quoted_printable_as_a_whole(body: str) -> None:
    """Encoding line by line (remembered lines) gives what encoding the whole body gives."""
    whole = binascii.b2a_qp(
        ("\r\n".join(body.splitlines()) + "\r\n").encode(), quotetabs=False, istext=True
    )
    for _ in range(2):  # the second time from the remembered lines
        assert _qp(body) == whole
    parsed = build_message(replace(EMAIL, text=body or "x"))
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert plain.get_content().splitlines() == (body or "x").splitlines()
