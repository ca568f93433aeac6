"""Secrets never printed: every command of `nurture`, run with a secret in every setting
that can hold one, prints and logs none of them, working or failing; and no log line
carries an email address.

The commands are read from the click group, so a new one is run (`--help`, and with no
arguments) without anyone listing it; `INVOCATIONS` gives each its real arguments, and
a test fails until a new command has some there.
"""

from __future__ import annotations

import base64
import http.client
import io
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import click
import pytest
from click.testing import CliRunner
from smtp_server import SmtpTestServer
from sqlalchemy import make_url
from werkzeug.serving import make_server

from nurture import redaction
from nurture.apikeys import create_key
from nurture.app import create_app
from nurture.cli import cli
from nurture.config import Settings, load_settings, variable_name
from nurture.runtime import Runtime

pytest_plugins = ["http_receiver"]

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
SECRET_KEY = "planted-secret-key-Kq72-0123456789"
SMTP_PASSWORD = "SmtpPw:Kq72/relay+1"  # characters a URL must encode
DATABASE_PASSWORD = "DbPw:Kq72/postgres+1"
CRM_URL_PASSWORD = "CrmPw:Kq72/hook+1"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"planted-webhook-secret-Kq72-0123").decode()
METRICS_TOKEN = "planted-metrics-token-Kq72-abcdef"
CONSOLE_PASSWORD = "Kq72 console pass phrase"  # typed at `nurture users` prompts
SETTINGS = {f.name for f in fields(Settings)}
# A value for every secret setting, a new one included.
PLANTED_SETTINGS = {
    variable_name(name): {
        "secret_key": SECRET_KEY,
        "crm_webhook_secret": WEBHOOK_SECRET,
        "metrics_token": METRICS_TOKEN,
    }.get(name, f"planted-{name}-Kq72-0123456789")
    for name in sorted(redaction.SECRET_SETTINGS & SETTINGS)
}
LEAD = "lena.kq72@example.com"
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
"""
# An email address as a log line could carry it (also as a URL carries it).
EMAIL = re.compile(r"[\w.+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")


def forms(value: str) -> set[str]:
    """A secret as it may be printed: as is, or encoded for a URL."""
    return {value, quote(value, safe=""), quote(value), quote_plus(value)}


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return sorted(name for name, value in secrets.items() if any(f in text for f in forms(value)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- a deployment with a secret in every setting that can hold one ---------------------


class Planted:
    """The environment of a deployment whose every secret setting is set, its
    database holding a lead, an email due now, a CRM push and an API key."""

    def __init__(self, tmp_path: Path, database_url: str, smtp_url: str, crm_url: str) -> None:
        self.tmp_path = tmp_path
        self.secrets = {
            **PLANTED_SETTINGS,
            "SMTP password": SMTP_PASSWORD,
            "CRM URL password": CRM_URL_PASSWORD,  # in a URL given to `crm enable`
            "console password": CONSOLE_PASSWORD,  # typed at `users create`, `users password`
        }
        url = make_url(database_url)
        if url.get_backend_name() == "postgresql":
            # A server that trusts local connections ignores the password: it stays
            # planted in every command; one that checks it brings its own (looked for
            # unless it is too short to tell from other words, such as "postgres").
            if url.password:
                if len(str(url.password)) >= redaction.CONCEALED_LENGTH:
                    self.secrets["PostgreSQL password"] = str(url.password)
            else:
                url = url.set(password=DATABASE_PASSWORD)
                self.secrets["PostgreSQL password"] = DATABASE_PASSWORD
        sequences, templates = tmp_path / "sequences", tmp_path / "templates"
        shutil.copytree(ROOT / "sequences", sequences)
        (sequences / "news.yaml").write_text(SEQUENCE)
        shutil.copytree(ROOT / "templates", templates)
        shutil.copytree(templates / "emails" / "_example", templates / "emails" / "example")
        self.env = {
            **PLANTED_SETTINGS,
            "NURTURE_DATABASE_URL": url.render_as_string(hide_password=False),
            "NURTURE_SMTP_URL": smtp_url,
            "NURTURE_CRM_WEBHOOK_URL": crm_url,
            "NURTURE_CRM_ALLOW_LOCAL": "true",
            "NURTURE_SEQUENCES_DIR": str(sequences),
            "NURTURE_TEMPLATES_DIR": str(templates),
            "NURTURE_SCORING_FILE": str(sequences / "rules" / "scoring.yaml"),
            "NURTURE_ROUTING_FILE": str(sequences / "rules" / "routing.yaml"),
            "NURTURE_QUALIFICATION_FILE": str(sequences / "rules" / "qualification.yaml"),
            "NURTURE_OUTBOX_DIR": str(tmp_path / "outbox"),
            "NURTURE_SPOOL_DIR": str(tmp_path / "spool"),
            "NURTURE_JOURNAL_DIR": str(tmp_path / "journal"),
            "NURTURE_BASE_URL": "https://nurture.test",
        }
        self.api_key = self.seed()
        self.secrets["API key"] = self.api_key.partition(".")[2]

    def seed(self) -> str:
        from nurture.core.intake import parse_lead
        from nurture.crm import enqueue
        from nurture.enrollment import on_event
        from nurture.leads import upsert_lead

        runtime = Runtime(load_settings(environ=self.env))
        now = datetime.now(UTC)
        try:
            with runtime.sessions.begin() as session:
                lead, _, _ = upsert_lead(
                    session, parse_lead({"email": LEAD, "first_name": "Lena"}), now
                )
                on_event(session, runtime.content, lead, "start", {}, now)
                enqueue(session, "lead.promoted", {"lead": lead.public_id}, now)
                return create_key(session, "planted", now, ("admin",))
        finally:
            runtime.close()

    def with_env(self, **changes: str) -> dict[str, str]:
        return {**self.env, **changes}

    def command(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """`python -m nurture …` as an operator runs it."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
        return subprocess.run(
            [sys.executable, "-m", "nurture", *args],
            env={**clean, **(env or self.env)},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.tmp_path,
        )


@pytest.fixture
def smtp_relay() -> Iterator[SmtpTestServer]:
    with SmtpTestServer(auth=("mailer", SMTP_PASSWORD)) as server:
        yield server


@pytest.fixture
def planted(
    tmp_path: Path, database_url: str, smtp_relay: Any, http_receiver_factory: Any
) -> Planted:
    smtp = f"smtp://mailer:{quote(SMTP_PASSWORD, safe='')}@127.0.0.1:{smtp_relay.port}"
    receiver = http_receiver_factory(secret=WEBHOOK_SECRET)
    receiver.default = receiver.answer(410)  # the endpoint goes away: crm status tells it
    return Planted(tmp_path, database_url, smtp, receiver.url)


# --- every command ------------------------------------------------------------------------

# Real invocations of each command, in the order an operator might run them on one
# database. `{lead}`, `{key}`, `{csv}`, `{out}`, `{crm}` and `{sequence}` are filled in.
INVOCATIONS: dict[tuple[str, ...], list[list[str]]] = {
    ("db", "upgrade"): [[]],
    ("validate",): [[], ["{sequence}"]],
    ("preview",): [["news", "one", "--lead", "{lead}"], ["news", "two"]],
    ("simulate",): [["news", "--lead", "{lead}", "--days", "3"], ["nope"]],
    ("test",): [[], ["{sequence}"]],
    ("schema",): [["sequence"], ["nope"]],
    ("broadcasts", "list"): [[]],
    ("broadcasts", "dry-run"): [["nope"], ["nope", "--occurrence", "2026-12-10 09:00"]],
    ("keys", "create"): [["website", "--scope", "read"]],
    ("keys", "list"): [[]],
    ("keys", "revoke"): [["nk_000000000000.{key}"]],
    ("leads", "import"): [["{csv}"]],
    ("leads", "imports"): [[], ["--format", "json"]],
    ("leads", "show"): [["{lead}"], ["nobody@example.com"]],
    ("tick",): [[]],
    ("plan",): [[], ["--format", "json"]],
    ("apply",): [[], ["--expect", "000000000000", "--format", "json"]],
    ("leads", "top"): [[], ["--rep", "claire@planifia.example", "--format", "json"]],
    ("leads", "why"): [["{lead}"], ["{lead}", "--sequence", "news", "--step", "one"]],
    ("deliveries", "list"): [[], ["--status", "attention", "--since", "2020-01-01T00:00Z"]],
    ("deliveries", "resolve"): [["--failed", "--skip", "--dry-run"], ["999", "--resend"]],
    ("scoring", "rescore"): [[]],
    ("accounts", "rebuild"): [[]],
    ("accounts", "list"): [[], ["--engaged", "--format", "json"]],
    ("accounts", "show"): [["example.com"], ["example.com", "--format", "json"], ["nowhere"]],
    ("costs", "set"): [
        ["website", "--month", "2026-01", "--amount", "120.50"],
        ["website", "--month", "13-2026", "--amount", "a lot"],
    ],
    ("costs", "list"): [[], ["--format", "json"]],
    ("report",): [
        *([name] for name in ("funnel", "sla", "velocity", "sources", "sequences")),
        ["deliverability", "--format", "json"],
        ["funnel", "--live"],
        ["nope"],
    ],
    ("summarize",): [[], ["--days", "3"], ["--days", "0"]],
    ("split", "results"): [["news"], ["nope"]],
    ("crm", "status"): [[]],
    ("crm", "replay"): [["--all"], ["999"]],
    ("crm", "enable"): [["{crm}"], ["{crm}"], ["https://crm:{crm_password}@crm.example/hook"]],
    ("crm", "secret"): [[]],
    ("gdpr", "export"): [["{lead}"], ["{lead}", "--out", "{out}"]],
    ("gdpr", "retention"): [["--dry-run"]],
    ("gdpr", "erase"): [["{lead}"], ["{lead}", "--yes"]],
    ("demo",): [["--leads", "5", "--months", "1"]],  # the lead erased: an empty database
    ("users", "create"): [
        ["{user}", "--role", "admin"],
        ["{user}", "--role", "admin"],  # exists already
        ["rep@example.com", "--role", "sales", "--password-stdin"],
    ],
    ("users", "list"): [[]],
    ("users", "password"): [["{user}"], ["rep@example.com", "--password-stdin"]],
    ("users", "disable"): [["{user}"], ["nobody@example.com"]],
    ("users", "enable"): [["{user}"]],
    # Serving and working until stopped: run as processes, below.
    ("run",): [],
    ("worker",): [],
}
UNTIL_STOPPED = {("run",), ("worker",)}
# What the operator types at a command's prompts (else "n": no to a confirmation).
TYPED = {
    ("users", "create"): "{password}\n{password}\n",
    ("users", "password"): "{password}\n{password}\n",
}


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand of the group, groups included."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def leaves() -> list[tuple[str, ...]]:
    return [path for path in commands(cli) if not isinstance(_command(path), click.Group)]


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def test_every_command_has_real_arguments_to_be_tried_with() -> None:
    missing = sorted(" ".join(path) for path in set(leaves()) - set(INVOCATIONS))
    assert not missing, f"add real invocations of `nurture {missing[0]}` to INVOCATIONS"
    assert not set(INVOCATIONS) - set(leaves()), "INVOCATIONS names a command that is gone"


def test_no_command_prints_or_logs_a_secret(
    planted: Planted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every record, more than `-v` shows
    csv_file = planted.tmp_path / "leads.csv"
    csv_file.write_text(f"email,first_name\n{LEAD},Lena\nnot-an-email,{SECRET_KEY}\n")
    values = {
        "lead": LEAD,
        "key": planted.secrets["API key"],
        "csv": str(csv_file),
        "out": str(planted.tmp_path / "export.json"),
        "crm": planted.env["NURTURE_CRM_WEBHOOK_URL"],
        "crm_password": quote(CRM_URL_PASSWORD, safe=""),
        "sequence": str(Path(planted.env["NURTURE_SEQUENCES_DIR"]) / "news.yaml"),
        "user": "ops@example.com",
        "password": CONSOLE_PASSWORD,
    }
    caplog.set_level(logging.WARNING, logger="mail.log")  # the test relay's own log
    runs: list[tuple[str, str, str]] = []  # what was run, what it printed, what it logged
    crashed: dict[str, str] = {}

    def invoke(*args: str, typed: str = "n\n") -> None:
        caplog.clear()
        result = CliRunner().invoke(cli, list(args), env=planted.env, input=typed)
        if result.exception and not isinstance(result.exception, SystemExit):
            crashed[" ".join(args)] = "".join(traceback.format_exception(result.exception))
        runs.append((" ".join(args), result.stdout + result.stderr, caplog.text))

    for path in commands(cli):
        invoke(*path, "--help")
        if path not in UNTIL_STOPPED and not isinstance(_command(path), click.Group):
            invoke(*path)  # no arguments: a usage error, or the command's default run
    invoke("--help")
    for path, invocations in INVOCATIONS.items():
        typed = TYPED.get(path, "n\n").format(**values)
        for arguments in invocations:
            invoke(*path, *(argument.format(**values) for argument in arguments), typed=typed)

    found = {what: leaks(printed + logged, planted.secrets) for what, printed, logged in runs}
    assert {what: names for what, names in found.items() if names} == {}
    addresses = {what: EMAIL.findall(logged) for what, _, logged in runs}
    assert {what: found for what, found in addresses.items() if found} == {}
    # The commands did their work: the email went out, the CRM said it is gone.
    printed = [(what, output) for what, output, _ in runs]
    assert any(what == "tick" and "sent 1" in output for what, output in printed)
    assert any(what == "crm status" and "disabled endpoint" in output for what, output in printed)
    assert any(what.startswith("demo --") and "emails sent" in output for what, output in printed)
    assert any(what.startswith("users create") and "created" in output for what, output in printed)
    assert any(what.startswith("users password") and "new password" in output
               for what, output in printed)  # fmt: skip
    assert not crashed, "\n".join(crashed.values())


def test_a_worker_a_server_and_a_tick_log_no_secret_and_no_address(planted: Planted) -> None:
    done = planted.command("-v", "tick")
    assert done.returncode == 0, done.stderr
    assert "sent 1" in done.stdout and " INFO " in done.stderr  # verbose: the log is on
    outputs = {"-v tick": done.stdout + done.stderr}
    for args, ready in ((("-v", "worker"), "ticking every"), (("-v", "run"), "listening on")):
        outputs[" ".join(args)] = serve_until_stopped(planted, args, ready, free_port())
    assert {what: leaks(output, planted.secrets) for what, output in outputs.items()} == {
        what: [] for what in outputs
    }
    # Their logs (what they print besides is addressless too: the relay, the port).
    assert {what: EMAIL.findall(output) for what, output in outputs.items()} == {
        what: [] for what in outputs
    }
    assert '"GET /api/v1/leads/<email> HTTP/1.1" 200' in outputs["-v run"]


def serve_until_stopped(planted: Planted, args: tuple[str, ...], ready: str, port: int) -> str:
    """Start `nurture ARGS`, once ready make the requests a browser, an integration and
    a scraper make (the `run` server only), stop it; all it printed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "nurture", *args],
        env={**clean, **planted.with_env(NURTURE_PORT=str(port))},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=planted.tmp_path,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while not any(ready in line for line in lines) and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert any(ready in line for line in lines), "".join(lines)
        if "run" in args:
            wait_until_listening(port)
            request_everything(planted, port)
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=60)[0]
    return "".join(lines) + rest


def wait_until_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.05)


def request_everything(planted: Planted, port: int) -> None:
    bearer = {"Authorization": f"Bearer {planted.api_key}"}
    wrong = {"Authorization": f"Bearer nk_000000000000.{planted.secrets['API key']}"}
    for method, path, headers in (
        ("GET", f"/api/v1/leads/{LEAD}", bearer),
        ("GET", f"/api/v1/leads/{quote(LEAD)}", wrong),
        ("GET", f"/api/v1/leads/{quote(LEAD, safe='')}?key={planted.api_key}", {}),
        ("GET", "/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"}),
        ("GET", f"/metrics?token={METRICS_TOKEN}", {}),
        ("GET", "/u/not-a-token", {"Referer": f"https://mail.example/?to={LEAD}"}),
        ("GET", "/healthz", {}),
    ):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request(method, path, headers=headers)
            connection.getresponse().read()
        finally:
            connection.close()


BAD_SETTINGS = [
    ("NURTURE_SMTP_URL", f"smtp://mailer:{quote(SMTP_PASSWORD, safe='')}@relay.example:abc"),
    ("NURTURE_SMTP_URL", f"ftp://mailer:{quote(SMTP_PASSWORD, safe='')}@relay.example"),
    ("NURTURE_DATABASE_URL", f"mysql://nurture:{quote(DATABASE_PASSWORD)}@db.example/n"),
    ("NURTURE_CRM_WEBHOOK_URL", "https://10.0.0.5/hook"),  # refused: a private address
    ("NURTURE_PORT", "abc"),
    # Each secret setting with a value it refuses (too short, not the right form): still
    # a secret, maybe the right one mistyped.
    *((variable, "Kq72-short!") for variable in PLANTED_SETTINGS),
]


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS)
def test_a_bad_setting_stops_every_command_without_a_secret(
    planted: Planted, variable: str, value: str
) -> None:
    secrets = {**planted.secrets, "database": DATABASE_PASSWORD, "refused": "Kq72-short!"}
    env = planted.with_env(**{variable: value}, NURTURE_CRM_ALLOW_LOCAL="false")
    if variable != "NURTURE_CRM_WEBHOOK_URL":
        env["NURTURE_CRM_WEBHOOK_URL"] = "https://crm.example/hook"
    done = planted.command("-v", "tick", env=env)
    assert done.returncode == 1
    assert variable in done.stderr and "Traceback" not in done.stderr
    assert leaks(done.stdout + done.stderr, secrets) == []


def test_every_setting_named_as_a_secret_is_masked_as_one() -> None:
    named = {name for name in SETTINGS if re.search(r"secret|token|password|_key$", name)}
    assert named <= redaction.SECRET_SETTINGS


def test_an_unreachable_relay_and_database_are_told_without_a_secret(planted: Planted) -> None:
    closed = free_port()
    away = f"smtp://mailer:{quote(SMTP_PASSWORD, safe='')}@127.0.0.1:{closed}"
    done = planted.command("-v", "tick", env=planted.with_env(NURTURE_SMTP_URL=away))
    assert done.returncode == 0 and "Connection refused" in done.stderr, done.stderr
    listed = planted.command("deliveries", "list")
    assert "Connection refused" in listed.stdout, listed.stdout + listed.stderr
    refused = f"smtp://mailer:{quote('wrong-' + SMTP_PASSWORD, safe='')}@127.0.0.1:{closed}"
    secrets = {**planted.secrets, "wrong SMTP password": "wrong-" + SMTP_PASSWORD}
    outputs = [done.stdout + done.stderr, listed.stdout + listed.stderr]
    for env in (
        planted.with_env(NURTURE_SMTP_URL=refused),
        planted.with_env(
            NURTURE_DATABASE_URL=f"postgresql://nurture:{quote(DATABASE_PASSWORD, safe='')}"
            f"@127.0.0.1:{closed}/nurture"
        ),
    ):
        for args in (("-v", "tick"), ("db", "upgrade"), ("-v", "crm", "status")):
            failed = planted.command(*args, env=env)
            assert "Traceback" not in failed.stderr, failed.stderr
            outputs.append(failed.stdout + failed.stderr)
    secrets["PostgreSQL password"] = DATABASE_PASSWORD
    assert [leaks(output, secrets) for output in outputs] == [[]] * len(outputs)


# --- log lines -------------------------------------------------------------------------


def test_a_log_record_carrying_an_email_address_comes_out_masked() -> None:
    redaction.install_logging()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("nurture.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("lead %s bounced", "Ana.Lima+news@example.com")
        logger.warning({"to": "ana@example.com"})
        try:
            raise ValueError(f"refused: {LEAD} via smtp://mailer:{SMTP_PASSWORD}@relay")
        except ValueError:
            logger.exception("sending to %s failed", LEAD, stack_info=True)
        logger.warning("GET /api/v1/leads/ana%40example.com?key=nk_0123456789ab.S3cr3t")
    finally:
        logger.removeHandler(handler)
    printed = stream.getvalue()
    assert "lead <email> bounced" in printed
    assert "{'to': '<email>'}" in printed
    assert "sending to <email> failed" in printed and "ValueError: refused: <email>" in printed
    assert "Stack (most recent call last)" in printed
    assert "GET /api/v1/leads/<email>?key=nk_0123456789ab.***" in printed
    assert EMAIL.findall(printed) == [] and "S3cr3t" not in printed and "relay" in printed


def test_the_development_server_logs_a_lead_path_without_the_address(
    make_runtime: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = make_server("127.0.0.1", 0, create_app(runtime=make_runtime()), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for path in ("/api/v1/leads/someone@example.com", "/api/v1/leads/someone%40example.com"):
            connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
            connection.request("GET", path)
            assert connection.getresponse().status == 401  # no key
            connection.close()
    finally:
        server.shutdown()
        thread.join()
    access = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert len(access) == 2 and all("GET /api/v1/leads/<email> HTTP/1.1" in a for a in access)
    assert "someone" not in caplog.text


@pytest.mark.slow
def test_the_gunicorn_access_log_carries_no_address_and_no_key(
    planted: Planted, tmp_path: Path
) -> None:
    if not GUNICORN.exists():
        pytest.fail(f"{GUNICORN} is missing: pip install -e '.[test]' (gunicorn is in it)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NURTURE_", "GUNICORN_"))}
    env.update(planted.with_env(NURTURE_PORT=str(port)), XDG_RUNTIME_DIR=str(tmp_path))
    log = tmp_path / "gunicorn.log"
    access = tmp_path / "access.log"
    config = "python:nurture.deploy.gunicorn_conf"
    command = [str(GUNICORN), "-c", config, "--workers", "1", "--access-logfile", str(access)]
    master = subprocess.Popen(
        [*command, "wsgi:app"], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not access.exists() or "/healthz" not in access.read_text():
            assert master.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                connection.close()
            except OSError:
                time.sleep(0.1)  # not listening yet
        request_everything(planted, port)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/v1/leads/someone@example.com")
        assert connection.getresponse().status == 401
        connection.close()
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(timeout=60)
    lines = access.read_text()
    assert '"GET /api/v1/leads/<email> HTTP/1.1" 401' in lines
    assert EMAIL.findall(lines + log.read_text()) == []
    assert leaks(lines + log.read_text(), planted.secrets) == []
