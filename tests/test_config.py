from __future__ import annotations

from pathlib import Path

import pytest

from nurture.config import ConfigError, FrequencyCap, load_settings


def test_defaults_need_nothing() -> None:
    settings = load_settings(environ={})
    assert settings.database_url.startswith("sqlite:///")
    assert settings.smtp_url is None
    assert settings.outbox_dir == Path("var/outbox")


def test_environment_overrides_defaults() -> None:
    settings = load_settings(
        environ={
            "NURTURE_DATABASE_URL": "postgresql://postgres@127.0.0.1/nurture",
            "NURTURE_SECRET_KEY": "x" * 32,
            "NURTURE_FREQUENCY_CAP": "2/5d",
            "NURTURE_SMTP_URL": "smtp://127.0.0.1:2525",
        }
    )
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1/nurture"
    assert settings.frequency_cap == FrequencyCap(2, 5)
    assert settings.smtp_url == "smtp://127.0.0.1:2525"


@pytest.mark.parametrize(
    ("variable", "value", "phrase"),
    [
        ("NURTURE_DATABASE_URL", "mysql://x", "expected sqlite:///path or postgresql://"),
        ("NURTURE_SMTP_URL", "http://mail", "smtp://"),
        ("NURTURE_BASE_URL", "nurture.example", "http://"),
        ("NURTURE_SECRET_KEY", "short", "at least 16"),
        ("NURTURE_FREQUENCY_CAP", "lots", "3/7d"),
        ("NURTURE_BATCH_SIZE", "-3", "positive integer"),
        ("NURTURE_DEFAULT_TIMEZONE", "Mars/Olympus", "IANA"),
        ("NURTURE_SENDER_EMAIL", "nobody", "email address"),
        ("NURTURE_SEQUENCE_DIR", "x", "unknown setting"),
    ],
)
def test_bad_setting_names_the_variable(variable: str, value: str, phrase: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: value})
    assert variable in str(caught.value)
    assert phrase in str(caught.value)


def test_postgres_requires_a_shared_secret() -> None:
    with pytest.raises(ConfigError, match="NURTURE_SECRET_KEY"):
        load_settings(environ={"NURTURE_DATABASE_URL": "postgresql://postgres@127.0.0.1/x"})
