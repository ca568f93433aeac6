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
        ("NURTURE_IMPORT_CHUNK", "0", "from 1 to 10,000"),
        ("NURTURE_IMPORT_CHUNK", "50000", "from 1 to 10,000"),
    ],
)
def test_bad_setting_names_the_variable(variable: str, value: str, phrase: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: value})
    assert variable in str(caught.value)
    assert phrase in str(caught.value)


def test_an_import_commits_larger_chunks_on_postgresql_unless_told_otherwise() -> None:
    default = load_settings(environ={})
    assert (default.chunk_rows("postgresql"), default.chunk_rows("sqlite")) == (2000, 500)
    told = load_settings(environ={"NURTURE_IMPORT_CHUNK": "1500"})
    assert (told.chunk_rows("postgresql"), told.chunk_rows("sqlite")) == (1500, 1500)


def test_postgres_requires_a_shared_secret() -> None:
    with pytest.raises(ConfigError, match="NURTURE_SECRET_KEY"):
        load_settings(environ={"NURTURE_DATABASE_URL": "postgresql://postgres@127.0.0.1/x"})


CRM_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://crm.example/hooks", "not https://"),
        ("https://127.0.0.1/hooks", "a loopback address"),
        ("https://localhost:8443/hooks", "a loopback address"),
        ("https://[::1]/hooks", "a loopback address"),
        ("https://10.0.0.5/hooks", "a private network address"),
        ("https://169.254.169.254/latest/meta-data", "a private network address"),
        ("https://0.0.0.0/hooks", "not an address a CRM answers at"),
    ],
)
def test_a_crm_url_that_is_not_https_to_a_public_address_is_refused(url: str, why: str) -> None:
    environ = {"NURTURE_CRM_WEBHOOK_URL": url, "NURTURE_CRM_WEBHOOK_SECRET": CRM_SECRET}
    with pytest.raises(ConfigError) as refused:
        load_settings(environ=environ)
    assert why in str(refused.value) and "NURTURE_CRM_ALLOW_LOCAL=true" in str(refused.value)
    allowed = load_settings(environ={**environ, "NURTURE_CRM_ALLOW_LOCAL": "true"})
    assert allowed.crm_webhook_url == url


def test_an_https_crm_url_on_a_public_name_is_taken() -> None:
    environ = {
        "NURTURE_CRM_WEBHOOK_URL": "https://crm.example/hooks/nurture",
        "NURTURE_CRM_WEBHOOK_SECRET": CRM_SECRET,
    }
    assert load_settings(environ=environ).crm_webhook_url == "https://crm.example/hooks/nurture"


def test_the_rules_files_are_looked_for_in_the_sequences_folder_unless_named() -> None:
    settings = load_settings(environ={"NURTURE_SEQUENCES_DIR": "/srv/marketing/sequences"})
    rules = Path("/srv/marketing/sequences/rules")
    assert settings.scoring_file == rules / "scoring.yaml"
    assert settings.routing_file == rules / "routing.yaml"
    assert settings.qualification_file == rules / "qualification.yaml"
    named = load_settings(
        environ={
            "NURTURE_SEQUENCES_DIR": "/srv/marketing/sequences",
            "NURTURE_SCORING_FILE": "/etc/nurture/scoring.yaml",
        }
    )
    assert named.scoring_file == Path("/etc/nurture/scoring.yaml")
    assert named.routing_file == rules / "routing.yaml"
    assert load_settings(environ={}).scoring_file == Path("sequences/rules/scoring.yaml")
