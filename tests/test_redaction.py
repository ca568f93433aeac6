"""What `nurture.redaction` masks in a message, and what a log line may still carry."""

from __future__ import annotations

import pytest

from nurture import redaction


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("smtp://mailer:Pw%3Ax@relay.example:25", "smtp://mailer:***@relay.example:25"),
        ("postgresql://nurture:ab/cd@db/nurture", "postgresql://nurture:***@db/nurture"),
        ("host=db password=s3cret dbname=n", "host=db password=*** dbname=n"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("Authorization: Basic dXNlcjpwdw==", "Authorization: Basic ***"),
        ("key nk_0123456789ab.S3cr3t-_x refused", "key nk_0123456789ab.*** refused"),
        ("secret whsec_MfKQ9r8GKYqrTwjU+/PD8ILPZ== given", "secret whsec_*** given"),
        ("smtp://relay.example:25 and https://www.example.com/a", None),  # nothing secret
        ("Basic checks passed for the bearer of the key", None),
    ],
)
def test_a_message_keeps_no_secret(message: str, shown: str | None) -> None:
    assert redaction.text(message) == (message if shown is None else shown)


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            '"GET /api/v1/leads/someone@example.com HTTP/1.1" 200',
            '"GET /api/v1/leads/<email> HTTP/1.1" 200',
        ),
        ("/api/v1/leads/Ana.Lima+news%40example.co.uk?x=1", "/api/v1/leads/<email>?x=1"),
        (
            "ld_7Hq2 bounced: 550 <anaïs@exämple.fr> unknown",
            "ld_7Hq2 bounced: 550 <<email>> unknown",
        ),
        ("smtp://mailer:pw@relay.example:25", "smtp://mailer:***@relay.example:25"),
        ("version 1.2.3 at 10:00", "version 1.2.3 at 10:00"),
    ],
)
def test_a_log_line_keeps_no_email_address(line: str, shown: str) -> None:
    assert redaction.log_line(line) == shown


def test_a_concealed_value_is_masked_in_every_form_a_url_gives_it() -> None:
    redaction.conceal(["conceal:Me/0123", "short", None])
    masked = redaction.text("conceal:Me/0123 conceal%3AMe%2F0123 conceal%3AMe/0123 short")
    assert masked == "*** *** *** short"
    assert redaction.text("conceal%3AMe%2F0123+x") == "***+x"


def test_a_long_token_costs_one_pass() -> None:
    long = "a" * 200_000  # no address: a match may start only where a word starts
    assert redaction.log_line(long) == long


@pytest.mark.parametrize("name", sorted(redaction.SECRET_SETTINGS))
def test_a_secret_setting_is_never_shown_even_in_part(name: str) -> None:
    assert redaction.setting(name, "whsec_not-even-a-good-one") == "'***'"


def test_settings_printed_whole_show_no_secret_nor_password() -> None:
    from nurture.config import load_settings

    settings = load_settings(
        environ={
            "NURTURE_SECRET_KEY": "a-planted-secret-key-0123456789",
            "NURTURE_SMTP_URL": "smtp://relay:TopSecretPw@127.0.0.1:2525",
            "NURTURE_METRICS_TOKEN": "a-planted-metrics-token-42",
        }
    )
    shown = repr(settings)
    for planted in ("a-planted-secret-key", "TopSecretPw", "a-planted-metrics-token"):
        assert planted not in shown
    assert "smtp_url='smtp://relay:***@127.0.0.1:2525'" in shown
    assert "secret_key='***'" in shown
