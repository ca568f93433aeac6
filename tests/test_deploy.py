"""Production serving: gunicorn with the shipped configuration, stopped by a signal,
leaves every answered tracking hit in the database; and the deployment recipes
(systemd units, Dockerfile, compose file, env example, docs/deploy.md) name only real
settings and real commands.
"""

from __future__ import annotations

import http.client
import importlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pytest
import yaml
from sqlalchemy import func, select

from nurture.cli import cli
from nurture.config import Settings, load_settings, variable_name
from nurture.deploy import gunicorn_conf
from nurture.models import TrackingHit

if TYPE_CHECKING:
    from tracked_email import Tracked

pytest_plugins = ["tracked_email"]

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "docs" / "deploy"
GUNICORN = Path(sys.executable).with_name("gunicorn")
CONFIG = "python:nurture.deploy.gunicorn_conf"
SETTINGS = {variable_name(f.name) for f in fields(Settings)}
NAMED = re.compile(r"\bNURTURE_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)


# --- gunicorn, for real -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serving_env(runtime: Any, port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The runtime's settings as the environment of a gunicorn master."""
    settings = runtime.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env.pop("GUNICORN_CMD_ARGS", None)
    env.update(
        {
            "NURTURE_DATABASE_URL": settings.database_url,
            "NURTURE_SECRET_KEY": settings.secret_key,
            "NURTURE_SPOOL_DIR": str(settings.spool_dir),
            "NURTURE_SEQUENCES_DIR": str(settings.sequences_dir),
            "NURTURE_TEMPLATES_DIR": str(settings.templates_dir),
            "NURTURE_BASE_URL": settings.base_url,
            "NURTURE_HOST": "127.0.0.1",
            "NURTURE_PORT": str(port),
            "WEB_CONCURRENCY": "2",
            # gunicorn 24+ opens a control socket there (else in ~/.gunicorn): one per test.
            "XDG_RUNTIME_DIR": str(tmp_path),
            **extra,
        }
    )
    return env


def get(port: int, path: str, agent: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"User-Agent": agent})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def serve(config: str, app: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """gunicorn started as an operator would, once it answers /healthz."""
    if not GUNICORN.exists():
        pytest.fail(f"{GUNICORN} is missing: pip install -e '.[test]' (gunicorn is in it)")
    master = subprocess.Popen(
        [str(GUNICORN), "-c", config, app],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if master.poll() is not None:
            pytest.fail(f"gunicorn stopped at start:\n{log.read_text()[-3000:]}")
        try:
            if get(int(env["NURTURE_PORT"]), "/healthz", "test") == 200:
                return master
        except OSError:
            time.sleep(0.1)  # not listening yet
    master.kill()
    pytest.fail(f"gunicorn did not answer within 60 s:\n{log.read_text()[-3000:]}")


def read_hits(tracked: Tracked, port: int, rounds: int) -> int:
    """Opens and clicks of the tracked email, as a mail client sends them; answered."""
    answered = 0
    for _ in range(rounds):
        assert get(port, tracked.pixel, CHROME) == 200
        answered += 1
        for path in tracked.links:
            assert get(port, path, CHROME) == 302
            answered += 1
    return answered


def stored(tracked: Tracked) -> int:
    with tracked.runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(TrackingHit)) or 0


def stop(master: subprocess.Popen[bytes], sig: signal.Signals, log: Path) -> float:
    """Send `sig` to the master; the seconds it took to exit (0 required)."""
    started = time.monotonic()
    master.send_signal(sig)
    try:
        code = master.wait(timeout=gunicorn_conf.graceful_timeout + 30)
    except subprocess.TimeoutExpired:
        master.kill()
        pytest.fail(f"gunicorn still running after {sig.name}:\n{log.read_text()[-3000:]}")
    assert code == 0, log.read_text()[-3000:]
    return time.monotonic() - started


# The shipped settings with two changes, so that only the `worker_exit` hook can move
# the last hits into the database: each worker's spool writer waits an hour between
# passes, and the spool's own atexit handler (its other way out) is switched off.
HOOK_ONLY = """
import types

import nurture.spool
from nurture.deploy.gunicorn_conf import *  # noqa: F403
from nurture.deploy.gunicorn_conf import post_worker_init as shipped_post_worker_init


def nothing(*args):
    pass


def post_worker_init(worker):
    shipped_post_worker_init(worker)
    runtime_of(worker).spool.interval = 3600
    nurture.spool.atexit = types.SimpleNamespace(register=nothing, unregister=nothing)
"""


@pytest.mark.slow
def test_sigterm_stops_gunicorn_in_time_with_every_answered_hit_in_the_database(
    tracked: Tracked, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    master = serve(CONFIG, "wsgi:app", serving_env(tracked.runtime, port, tmp_path), log)
    try:
        answered = read_hits(tracked, port, rounds=40)
    finally:
        took = stop(master, signal.SIGTERM, log)
    assert took < gunicorn_conf.graceful_timeout
    assert stored(tracked) == answered == 200
    spool = tracked.runtime.settings.spool_dir
    assert spool is not None and list(spool.glob("*.hits")) == []  # closed, not left over


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT], ids=lambda sig: sig.name
)
def test_the_worker_exit_hook_writes_the_spool_whatever_signal_stops_gunicorn(
    sig: signal.Signals, tracked: Tracked, tmp_path: Path
) -> None:
    (tmp_path / "hook_only_conf.py").write_text(HOOK_ONLY)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = serving_env(tracked.runtime, port, tmp_path, PYTHONPATH=path)
    master = serve("python:hook_only_conf", "nurture.app:create_app()", env, log)
    try:
        answered = read_hits(tracked, port, rounds=8)
        time.sleep(0.3)  # several writer intervals of the shipped settings
        assert stored(tracked) == 0  # every hit is still in a spool file
    finally:
        took = stop(master, sig, log)
    assert took < gunicorn_conf.graceful_timeout
    assert stored(tracked) == answered == 40, log.read_text()[-3000:]
    spool = tracked.runtime.settings.spool_dir
    assert spool is not None and list(spool.glob("*.hits")) == []


# --- the configuration's values ---------------------------------------------------


def printed_config(tmp_path: Path, **environ: str) -> dict[str, str]:
    """The settings gunicorn resolves from the shipped file and the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NURTURE_", "GUNICORN_"))}
    env.pop("WEB_CONCURRENCY", None)
    env["NURTURE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'nurture.sqlite'}"
    env["NURTURE_SECRET_KEY"] = "test-secret-key-0123456789abcdef"
    env.update(environ)
    assert GUNICORN.exists(), f"{GUNICORN} is missing: pip install -e '.[test]'"
    command = [str(GUNICORN), "-c", CONFIG, "--print-config", "nurture.app:create_app()"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(re.findall(r"^(\w+)\s+= (.*)$", done.stdout, re.MULTILINE))


@pytest.mark.slow
def test_gunicorn_reads_the_shipped_file_and_the_environment_wins(tmp_path: Path) -> None:
    defaults = printed_config(tmp_path)
    assert defaults["bind"] == "['127.0.0.1:5000']"
    assert defaults["workers"] == str(min(2 * gunicorn_conf.cores() + 1, 12))
    assert (defaults["worker_class"], defaults["timeout"], defaults["graceful_timeout"]) == (
        "sync",
        "60",
        "20",
    )

    ours = printed_config(
        tmp_path, NURTURE_HOST="0.0.0.0", NURTURE_PORT="8123", WEB_CONCURRENCY="3"
    )
    assert (ours["bind"], ours["workers"]) == ("['0.0.0.0:8123']", "3")

    args = "--bind 127.0.0.1:9000 --workers 5 --timeout 120 --graceful-timeout 7"
    theirs = printed_config(tmp_path, NURTURE_PORT="8123", GUNICORN_CMD_ARGS=args)
    assert (theirs["bind"], theirs["workers"]) == ("['127.0.0.1:9000']", "5")
    assert (theirs["timeout"], theirs["graceful_timeout"]) == ("120", "7")


@pytest.mark.parametrize(
    ("environ", "cpus", "expected"),
    [
        ({}, 1, 3),
        ({}, 4, 9),
        ({}, 64, gunicorn_conf.MAX_WORKERS),
        ({"WEB_CONCURRENCY": "24"}, 2, 24),
        ({"WEB_CONCURRENCY": " "}, 2, 5),
    ],
)
def test_workers_are_twice_the_cores_plus_one_capped_unless_set(
    environ: dict[str, str], cpus: int, expected: int
) -> None:
    assert gunicorn_conf.workers_for(environ, cpus) == expected


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ["127.0.0.1:5000"]),
        ({"NURTURE_HOST": "0.0.0.0", "NURTURE_PORT": "8000"}, ["0.0.0.0:8000"]),
        ({"NURTURE_HOST": "::1"}, ["[::1]:5000"]),
    ],
)
def test_bind_comes_from_nurture_host_and_port(
    environ: dict[str, str], expected: list[str]
) -> None:
    assert gunicorn_conf.bind_for(environ) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("NURTURE_PORT", "http"), ("NURTURE_PORT", "70000"), ("WEB_CONCURRENCY", "0")],
)
def test_a_bad_value_stops_gunicorn_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        gunicorn_conf.bind_for({name: value})
        gunicorn_conf.workers_for({name: value}, 2)


def _remote_addr(trusted: list[str], peer: str, forwarded: str | None) -> str:
    seen: dict[str, str] = {}

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["addr"] = environ["REMOTE_ADDR"]
        return []

    wrapped = gunicorn_conf.TrustedProxy(inner, trusted)
    environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http"}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    wrapped(environ, lambda *args: None)
    return seen["addr"]


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        (["127.0.0.1", "::1"], "127.0.0.1", "203.0.113.9", "203.0.113.9"),
        (["127.0.0.1", "::1"], "127.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),
        (["127.0.0.1", "::1"], "198.51.100.7", "203.0.113.9", "198.51.100.7"),  # not a proxy
        (["10.0.0.0/8"], "10.1.2.3", "203.0.113.9", "203.0.113.9"),
        (["*"], "172.18.0.1", "203.0.113.9", "203.0.113.9"),
        (["127.0.0.1"], "", "203.0.113.9", "203.0.113.9"),  # a Unix socket
        (["127.0.0.1"], "127.0.0.1", None, "127.0.0.1"),
    ],
)
def test_the_client_address_comes_from_a_trusted_proxy_only(
    trusted: list[str], peer: str, forwarded: str | None, expected: str
) -> None:
    assert _remote_addr(trusted, peer, forwarded) == expected


def test_the_runtime_is_found_behind_the_proxy_wrapper_and_not_in_the_master(
    make_runtime: Any,
) -> None:
    from nurture.app import create_app

    runtime = make_runtime()
    worker = type("Worker", (), {})()
    assert gunicorn_conf.runtime_of(worker) is None  # the master: no app loaded
    worker.wsgi = gunicorn_conf.TrustedProxy(create_app(runtime=runtime), ["127.0.0.1"])
    assert gunicorn_conf.runtime_of(worker) is runtime


# --- the recipes: real settings, real commands ------------------------------------


def command_exists(argv: list[str]) -> bool:
    """`nurture worker`, `nurture db upgrade`: a command of the CLI, options aside."""
    group: click.Command = cli
    for word in argv:
        if word.startswith("-") or not isinstance(group, click.Group):
            break
        found = group.commands.get(word)
        if found is None:
            return False
        group = found
    return not isinstance(group, click.Group)


def check_command(argv: list[str]) -> None:
    program = Path(argv[0]).name
    if program == "nurture":
        assert command_exists(argv[1:]), argv
        return
    assert program == "gunicorn", argv
    config = argv[argv.index("-c") + 1]
    assert config == CONFIG, argv
    assert callable(importlib.import_module(CONFIG.removeprefix("python:")).worker_exit)
    module, _, factory = argv[-1].partition(":")
    assert factory.endswith("()"), argv  # an app factory: no wsgi.py needed where it runs
    assert callable(getattr(importlib.import_module(module), factory.removesuffix("()")))


def unit(name: str) -> dict[str, list[str]]:
    """A systemd unit's `Key=value` lines (every value of a repeated key)."""
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def env_example() -> dict[str, str]:
    text = (DEPLOY / "nurture.env.example").read_text()
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|min)?", value.strip())
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_the_env_example_is_a_valid_configuration() -> None:
    settings = load_settings(environ=env_example())
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.spool_dir is not None and settings.journal_dir is not None


@pytest.mark.parametrize(
    "document",
    [
        "deploy.md",
        "deploy/nurture.env.example",
        "deploy/compose.yaml",
        "deploy/Dockerfile",
        "deploy/nurture-worker@.service",
    ],
)
def test_every_variable_the_recipes_name_is_a_real_setting(document: str) -> None:
    named = set(NAMED.findall((ROOT / "docs" / document).read_text()))
    assert named, document
    assert sorted(named - SETTINGS) == []


def test_the_systemd_units_start_real_commands_and_outwait_the_graces() -> None:
    web, worker = unit("nurture-web.service"), unit("nurture-worker@.service")
    migrate = unit("nurture-migrate.service")
    for found in (web, worker, migrate):
        [start] = found["ExecStart"]
        check_command(shlex.split(start))
        assert found["EnvironmentFile"] == ["/etc/nurture/nurture.env"]
        assert found["User"] == ["nurture"]
        assert found["WorkingDirectory"] == ["/srv/nurture"]
    assert shlex.split(worker["ExecStart"][0])[1:] == ["worker"]
    assert shlex.split(migrate["ExecStart"][0])[1:] == ["db", "upgrade"]
    grace = load_settings(environ=env_example()).shutdown_grace_seconds
    assert seconds(worker["TimeoutStopSec"][0]) > grace
    assert seconds(web["TimeoutStopSec"][0]) > gunicorn_conf.graceful_timeout
    assert "nurture/spool" in web["StateDirectory"][0].split()
    assert {"nurture/spool", "nurture/journal"} <= set(worker["StateDirectory"][0].split())


def dockerfile() -> tuple[dict[str, str], list[str], list[str]]:
    """The Dockerfile's ENV values, VOLUME paths and CMD."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    volumes: list[str] = []
    command: list[str] = []
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
        elif instruction == "VOLUME":
            volumes += yaml.safe_load(rest)
        elif instruction == "CMD":
            command = yaml.safe_load(rest)
    return env, volumes, command


def test_the_image_runs_as_a_user_keeps_its_state_in_volumes_and_serves_the_app() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert re.search(r"^USER nurture$", text, re.MULTILINE)
    assert re.search(r"^RUN pip install /src ", text, re.MULTILINE)
    env, volumes, command = dockerfile()
    load_settings(environ={**env, "NURTURE_SECRET_KEY": "x" * 32})
    assert {env["NURTURE_SPOOL_DIR"], env["NURTURE_JOURNAL_DIR"]} <= set(volumes)
    check_command(command)


@pytest.fixture
def compose() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return found


def test_compose_migrates_once_then_runs_web_and_two_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"db", "migrate", "web", "worker"}
    assert services["db"]["healthcheck"]["test"][-1].startswith("pg_isready")
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        depends = services[name]["depends_on"]["migrate"]["condition"]
        assert depends == "service_completed_successfully"
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("migrate", "web", "worker"):
        check_command(services[name]["command"])
        assert services[name]["init"] is True
        assert services[name]["build"]["dockerfile"] == "docs/deploy/Dockerfile"
    assert services["migrate"]["command"] == ["nurture", "db", "upgrade"]


def test_compose_names_real_settings_and_keeps_spool_and_journal(
    compose: dict[str, Any],
) -> None:
    env, _, _ = dockerfile()
    for name in ("migrate", "web", "worker"):
        service = compose["services"][name]
        environment = {**env, **env_example(), **service["environment"]}
        assert (
            sorted(k for k in environment if k.startswith("NURTURE_") and k not in SETTINGS) == []
        )
        mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
        for setting in ("NURTURE_SPOOL_DIR", "NURTURE_JOURNAL_DIR"):
            assert mounted.get(environment[setting]) in compose["volumes"], (name, setting)


def test_compose_waits_longer_than_the_graces(compose: dict[str, Any]) -> None:
    services = compose["services"]
    grace = load_settings(environ=env_example()).shutdown_grace_seconds
    assert seconds(services["worker"]["stop_grace_period"]) > grace
    assert seconds(services["web"]["stop_grace_period"]) > gunicorn_conf.graceful_timeout


def test_the_guide_says_how_to_build_the_image() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    # From the repository root: the context is `.`, the Dockerfile in docs/deploy.
    assert re.search(r"docker build -f docs/deploy/Dockerfile (-t \S+ )?\.$", guide, re.MULTILINE)
    for path in DEPLOY.iterdir():
        assert f"deploy/{path.name}" in guide, path.name
