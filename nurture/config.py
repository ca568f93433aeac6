"""Settings: embedded defaults, then `NURTURE_*` environment variables, then overrides.

Every setting is checked when the settings are built, so a bad value stops the
process at start with a message naming the variable.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nurture import redaction

MAX_CHUNK = 10_000  # rows per import transaction: memory grows with it (5,000: +20 MB)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class FrequencyCap:
    """At most `emails` emails per lead within `days` days, across all sequences."""

    emails: int
    days: int


@dataclass(frozen=True)
class UncertainPolicy:
    """What becomes of an email whose SMTP answer was lost, if no operator settles it.

    `action` is "hold" (wait for an operator), "sent" (treat as delivered) or "skip"
    (treat as not delivered, never resent); `after` is how long it waits first.
    """

    action: str
    after: timedelta | None

    def __str__(self) -> str:
        if self.after is None:
            return self.action
        return f"{self.action}-after:{self.after.total_seconds() / 3600:g}h"


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/nurture.sqlite"
    smtp_url: str | None = None
    outbox_dir: Path = Path("var/outbox")
    spool_dir: Path | None = None  # see spool_folder
    base_url: str = "http://127.0.0.1:5000"
    secret_key: str | None = None  # see resolve_secret_key
    # Keys the suppression list; unset: derived from the secret key (see nurture.suppression).
    suppression_secret: str | None = None
    sequences_dir: Path = Path("sequences")
    broadcasts_dir: Path = Path("sequences/broadcasts")  # default: <sequences_dir>/broadcasts
    templates_dir: Path = Path("templates")
    crm_webhook_url: str | None = None
    crm_webhook_secret: str | None = None
    crm_allow_local: bool = False  # http:// and this machine's or network's addresses
    metrics_token: str | None = None  # /metrics: Bearer token; unset: loopback peers only
    sender_name: str = "Planifia"
    sender_email: str = "bonjour@planifia.example"
    sender_company: str = "Planifia SAS"
    sender_website: str = "https://www.planifia.example"
    postal_address: str = "12 rue des Tisserands, 69002 Lyon, France"
    reply_to: str | None = None
    unsubscribe_mailto: str | None = None
    default_timezone: str = "Europe/Paris"
    frequency_cap: FrequencyCap = FrequencyCap(emails=3, days=7)
    currency: str = "EUR"  # of every cost and amount in reports (ISO 4217)
    tick_seconds: float = 30.0
    batch_size: int = 200
    lease_seconds: int = 300
    shutdown_grace_seconds: float = 30.0  # SIGTERM: time to finish what is on the wire
    uncertain_policy: UncertainPolicy = UncertainPolicy("sent", timedelta(hours=24))
    journal_dir: Path | None = None  # see journal_folder
    max_attempts: int = 8
    host: str = "127.0.0.1"
    port: int = 5000
    scoring_file: Path = Path("sequences/rules/scoring.yaml")
    routing_file: Path = Path("sequences/rules/routing.yaml")
    qualification_file: Path = Path("sequences/rules/qualification.yaml")
    sla_hours: int = 24  # a promotion not accepted by then is escalated, then reassigned
    recycle_sequence: str | None = None  # where leads rejected by sales go back to
    digest_hour: int = 8  # the daily top leads leave at this hour, the rep's local time
    digest_size: int = 3
    alarm_email: str | None = None  # the marketing owner, told when an alarm turns
    treatment_alarm: float = 0.8  # sales' treatment rate under this raises the alarm
    complaint_alarm: float = 0.001  # spam complaints over this (0.1 %) raise the alarm
    consent_required: bool = False  # B2B legitimate interest by default; True: opt-in only
    fold_subaddress: bool = False  # anna+news@x.com is anna@x.com
    import_chunk: int | None = None  # rows per transaction of a CSV import; see chunk_rows
    form_redirect_url: str | None = None  # the thank-you page after a website form
    retention_days: int = 3 * 365  # prospects with no click or reply for this long are purged
    # Website forms whose submissions wait for the emailed link to be followed ("*": all)
    double_opt_in_forms: frozenset[str] = frozenset()
    double_opt_in_days: int = 7  # the emailed link works this long, then the submission goes
    # The web console's session cookie: Secure unless told otherwise; None: Secure when
    # the base URL is https (a plain-http development server would never get it back).
    console_cookie_secure: bool | None = None
    console_session_hours: int = 8  # a sign-in lasts this long at most, busy or not

    def __repr__(self) -> str:
        """Settings printed whole (a debugger, a log) show no secret nor password."""
        shown = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in redaction.SECRET_SETTINGS and value is not None:
                shown.append(f"{item.name}={redaction.MASK!r}")
            elif isinstance(value, str):
                shown.append(f"{item.name}={redaction.url(value)!r}")
            else:
                shown.append(f"{item.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def chunk_rows(self, dialect: str) -> int:
        """Rows a CSV import commits at a time. PostgreSQL: 2,000, fewer statements per
        lead, and its row locks hold up no one else. SQLite: 500, since each chunk holds
        the database's one write lock and the dispatcher waits for it meanwhile."""
        if self.import_chunk is not None:
            return self.import_chunk
        return 2000 if dialect == "postgresql" else 500

    @property
    def console_cookies_secure(self) -> bool:
        if self.console_cookie_secure is not None:
            return self.console_cookie_secure
        return self.base_url.startswith("https://")

    def notices(self) -> list[str]:
        """What these settings leave out of the emails on purpose, said at start-up."""
        if self.smtp_url and not self.base_url.startswith("https://"):
            return [
                f"NURTURE_BASE_URL is {self.base_url}: emails carry List-Unsubscribe without"
                " List-Unsubscribe-Post, because one-click unsubscribe (RFC 8058) is defined"
                " for https:// links only, and Gmail and Yahoo ask it of bulk senders; serve"
                " nurture over https and set NURTURE_BASE_URL to that address"
            ]
        return []

    @property
    def sla(self) -> timedelta:
        return timedelta(hours=self.sla_hours)

    @property
    def message_id_domain(self) -> str:
        return self.sender_email.rpartition("@")[2] or "nurture.local"

    @property
    def list_id_domain(self) -> str:
        return urlsplit(self.base_url).hostname or "nurture.local"


def _path(value: str) -> Path:
    return Path(value)


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            expected = " or ".join(s + "://" for s in schemes)
            raise ValueError(f"expected a URL starting with {expected}")
        return value.rstrip("/") if parts.scheme in ("http", "https") else value

    return parse


def _smtp_url(value: str) -> str:
    from nurture.mail import SmtpTarget

    _url(("smtp", "smtps"))(value)
    SmtpTarget.from_url(value)  # raises ValueError saying what is wrong (password masked)
    return value


def _website(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise ValueError("expected an absolute http(s) URL such as https://www.example.com")
    return value


def _webhook_secret(value: str) -> str:
    from nurture.crm import check_secret

    check_secret(value)  # raises ValueError saying what a secret looks like
    return value


def _database_url(value: str) -> str:
    if value.startswith("postgres://"):
        value = "postgresql://" + value.removeprefix("postgres://")
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
    if not re.match(r"^(sqlite|postgresql\+psycopg)://", value):
        raise ValueError("expected sqlite:///path or postgresql://user@host/db")
    return value


def _whole(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("expected a whole number") from None


def _percent(value: str) -> float:
    """A percentage as people write it ("80", "80 %", "0.1%"), kept as a ratio."""
    text = value.strip().removesuffix("%").strip()
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not 0 <= number <= 100:
        raise ValueError('expected a percentage from 0 to 100, such as "80" or "0.1%"')
    return number / 100


def _positive_int(value: str) -> int:
    number = _whole(value)
    if number <= 0:
        raise ValueError("expected a positive integer")
    return number


def _chunk(value: str) -> int:
    number = _whole(value)
    if not 1 <= number <= MAX_CHUNK:
        raise ValueError(f"expected a number of rows from 1 to {MAX_CHUNK:,}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("expected a number of seconds, such as 30 or 0.5") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError("expected a positive number of seconds")
    return number


def _email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ValueError("expected an email address such as news@example.com")
    return value


def _timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA timezone such as Europe/Paris") from None
    return value


def _currency(value: str) -> str:
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValueError("expected a three-letter currency code such as EUR or USD")
    return code


def _frequency_cap(value: str) -> FrequencyCap:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*d(ays?)?\s*", value)
    if not match or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise ValueError('expected "EMAILS/DAYSd", for example "3/7d"')
    return FrequencyCap(int(match.group(1)), int(match.group(2)))


def _uncertain_policy(value: str) -> UncertainPolicy:
    match = re.fullmatch(r"\s*(hold|sent|skip)(?:-after:\s*(\d+(?:\.\d+)?)\s*h)?\s*", value)
    if not match or (match.group(1) == "hold") != (match.group(2) is None):
        raise ValueError('expected "hold", "sent-after:HOURSh" or "skip-after:HOURSh"')
    hours = match.group(2)
    return UncertainPolicy(match.group(1), timedelta(hours=float(hours)) if hours else None)


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _port(value: str) -> int:
    number = _whole(value)
    if not 0 < number < 65536:
        raise ValueError("expected a port number from 1 to 65535")
    return number


def _hour(value: str) -> int:
    number = _whole(value)
    if not 0 <= number <= 23:
        raise ValueError("expected an hour from 0 to 23")
    return number


def _form_names(value: str) -> frozenset[str]:
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    for name in sorted(names):
        if name != "*" and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,99}", name):
            raise ValueError(
                f"{name!r} is not a form name (lower-case letters, digits, - and _);"
                ' expected names separated by commas, such as "newsletter,webinar", or "*"'
            )
    return names


def _secret(value: str) -> str:
    if len(value) < 16:
        raise ValueError("expected at least 16 characters")
    return value


_PARSERS: Mapping[str, Callable[[str], Any]] = {
    "database_url": _database_url,
    "smtp_url": _smtp_url,
    "outbox_dir": _path,
    "spool_dir": _path,
    "base_url": _url(("http", "https")),
    "secret_key": _secret,
    "sequences_dir": _path,
    "broadcasts_dir": _path,
    "templates_dir": _path,
    "crm_webhook_url": _url(("http", "https")),
    "crm_allow_local": _boolean,
    "metrics_token": _secret,
    "suppression_secret": _secret,
    "crm_webhook_secret": _webhook_secret,
    "sender_name": str,
    "sender_email": _email,
    "sender_company": str,
    "sender_website": _website,
    "postal_address": str,
    "reply_to": _email,
    "unsubscribe_mailto": _email,
    "default_timezone": _timezone,
    "frequency_cap": _frequency_cap,
    "currency": _currency,
    "tick_seconds": _positive_float,
    "batch_size": _positive_int,
    "lease_seconds": _positive_int,
    "shutdown_grace_seconds": _positive_float,
    "uncertain_policy": _uncertain_policy,
    "journal_dir": _path,
    "max_attempts": _positive_int,
    "host": str,
    "port": _port,
    "scoring_file": _path,
    "routing_file": _path,
    "qualification_file": _path,
    "sla_hours": _positive_int,
    "recycle_sequence": str,
    "digest_hour": _hour,
    "digest_size": _positive_int,
    "alarm_email": _email,
    "treatment_alarm": _percent,
    "complaint_alarm": _percent,
    "consent_required": _boolean,
    "fold_subaddress": _boolean,
    "import_chunk": _chunk,
    "form_redirect_url": _website,
    "retention_days": _positive_int,
    "double_opt_in_forms": _form_names,
    "double_opt_in_days": _positive_int,
    "console_cookie_secure": _boolean,
    "console_session_hours": _positive_int,
}


# Each rules file's name in `<sequences folder>/rules/`, where it is looked for by default.
RULES_FILES = {
    "scoring_file": "scoring.yaml",
    "routing_file": "routing.yaml",
    "qualification_file": "qualification.yaml",
}


def variable_name(name: str) -> str:
    return "NURTURE_" + name.upper()


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Defaults, then `NURTURE_*` variables, then `overrides` (tests, the CLI)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings)}
    for name in known:
        raw = environ.get(variable_name(name))
        if raw is None or raw == "":
            continue
        try:
            values[name] = _PARSERS[name](raw.strip())
        except ValueError as error:
            shown, why = redaction.setting(name, raw), redaction.text(str(error))
            raise ConfigError(f"{variable_name(name)}={shown}: {why}") from None
    unknown = sorted(
        key
        for key in environ
        if key.startswith("NURTURE_")
        and key.removeprefix("NURTURE_").lower() not in known
        and not key.startswith("NURTURE_TEST_")
    )
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting (see the configuration table in README)")
    settings = replace(Settings(), **values)
    if overrides:
        settings = replace(settings, **overrides)
    # The rules files live in the sequences folder's `rules/` unless named one by one.
    given = set(values) | set(overrides or ())
    rules: dict[str, Any] = {
        name: settings.sequences_dir / "rules" / file
        for name, file in RULES_FILES.items()
        if name not in given
    }
    if "broadcasts_dir" not in given:
        rules["broadcasts_dir"] = settings.sequences_dir / "broadcasts"
    settings = replace(settings, **rules)
    if settings.crm_webhook_url and not settings.crm_webhook_secret:
        raise ConfigError(
            "NURTURE_CRM_WEBHOOK_SECRET: required when NURTURE_CRM_WEBHOOK_URL is set"
            " (make one with `nurture crm secret`)"
        )
    if settings.crm_webhook_url and not settings.crm_allow_local:
        refused = _local_url(settings.crm_webhook_url)
        if refused:
            shown = redaction.url(settings.crm_webhook_url)
            raise ConfigError(
                f"NURTURE_CRM_WEBHOOK_URL={shown!r}: {refused}; pushes carry leads' personal"
                " data: use https:// to the CRM (NURTURE_CRM_ALLOW_LOCAL=true allows it for"
                " local use)"
            )
    if settings.secret_key is None and not settings.database_url.startswith("sqlite"):
        raise ConfigError(
            "NURTURE_SECRET_KEY: required with PostgreSQL, and the same for every process"
        )
    return settings


def _local_url(url: str) -> str | None:
    """Why a CRM URL is refused by default, or None: plain http, or an address on this
    machine or its private network (a push must not be aimed at internal services).
    Names are not resolved: a public name that points inside is the DNS owner's call."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return "not https://"
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "a loopback address"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified or address.is_multicast:
        return "not an address a CRM answers at"
    if address.is_private or address.is_link_local or address.is_reserved:
        return "a private network address"
    return None


def resolve_secret_key(settings: Settings) -> str:
    """The configured key, or (zero set-up on SQLite) one kept next to the database."""
    if settings.secret_key is not None:
        return settings.secret_key
    database = settings.database_url.removeprefix("sqlite:///")
    key_file = Path(database).with_name("secret.key") if database else Path("var/secret.key")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def spool_folder(settings: Settings) -> Path:
    """Where tracking hits wait for the database: the setting, else (on SQLite) a
    `spool` folder next to the database file, else `var/spool`."""
    return _machine_folder(settings, settings.spool_dir, "spool")


def journal_folder(settings: Settings) -> Path:
    """Where each worker notes what it put on the wire and what SMTP answered: the
    setting, else (on SQLite) a `journal` folder next to the database, else
    `var/journal`. It must outlive the process (a volume in a container)."""
    return _machine_folder(settings, settings.journal_dir, "journal")


def _machine_folder(settings: Settings, configured: Path | None, name: str) -> Path:
    """A folder of this machine's processes: as configured, else beside the SQLite
    file, else under `var/`."""
    if configured is not None:
        return configured
    database = settings.database_url.removeprefix("sqlite:///")
    if settings.database_url.startswith("sqlite:///") and database and database != ":memory:":
        return Path(database).with_name(name)
    return Path("var") / name
