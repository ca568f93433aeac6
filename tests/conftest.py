"""Shared fixtures: a real database per test (SQLite file, or PostgreSQL), a runtime.

Set NURTURE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/nurture_test)
to run every database test on PostgreSQL; the database must exist and is emptied
between tests. Under CI=true an unreachable PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from nurture.config import load_settings
from nurture.db import upgrade
from nurture.mail import Mailer
from nurture.models import Base
from nurture.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("NURTURE_TEST_POSTGRES_URL")
TEST_SECRET = "test-secret-key-0123456789abcdef"


def pytest_report_header(config: pytest.Config) -> str:
    return f"nurture database: {'PostgreSQL ' + POSTGRES_URL if POSTGRES_URL else 'SQLite'}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marked from the fixtures a test asks for, so that `-m` can pick: `postgres`, it
    needs PostgreSQL; `nodb`, it uses no test database, and runs the same whatever
    NURTURE_TEST_POSTGRES_URL says (CI runs it once, with the SQLite suite); `browser`,
    it drives Chromium over pages whose data any database gives alike (once too)."""
    for item in items:
        if "browser" in item.path.name:
            item.add_marker(pytest.mark.browser)
        wanted = set(getattr(item, "fixturenames", ()))
        if "postgres_url" in wanted:
            item.add_marker(pytest.mark.postgres)
        if not wanted & {"postgres_url", "database_url"}:
            item.add_marker(pytest.mark.nodb)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL test database, migrated once. Skips without one, except under CI."""
    if not POSTGRES_URL:
        if os.environ.get("CI") == "true" and os.environ.get("NURTURE_TEST_REQUIRE_POSTGRES"):
            pytest.fail("NURTURE_TEST_POSTGRES_URL is required in this CI run")
        pytest.skip("PostgreSQL tests need NURTURE_TEST_POSTGRES_URL")
    url = load_settings(
        environ={"NURTURE_DATABASE_URL": POSTGRES_URL, "NURTURE_SECRET_KEY": TEST_SECRET}
    ).database_url
    try:
        engine = create_engine(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable: {error}")
    upgrade(url)
    return url


_emptiers: dict[str, Any] = {}


def _truncate(url: str) -> None:
    """Empty every table and restart the ids: one DELETE per table and one restart per
    sequence, in one round trip on one kept connection pool (a TRUNCATE of every table
    costs some 70 ms, this some 4 ms, for the nearly empty tables a test leaves)."""
    engine = _emptiers.get(url)
    if engine is None:
        # Pre-ping: a test that kills server connections may have killed this one.
        engine = _emptiers[url] = create_engine(url, pool_pre_ping=True)
    with engine.begin() as connection:
        sequences = connection.scalars(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()")
        ).all()
        statements = [f"DELETE FROM {t.name}" for t in reversed(Base.metadata.sorted_tables)]
        statements += [f"ALTER SEQUENCE {name} RESTART" for name in sequences]
        connection.exec_driver_sql("; ".join(statements))


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated once; each test gets a copy (the migrations take ~0.2 s)."""
    path = tmp_path_factory.mktemp("template") / "nurture.sqlite"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated, empty database for one test: PostgreSQL when configured, else SQLite."""
    import nurture.suppression

    # Emptied tables: what a process had checked of the previous test's no longer holds.
    nurture.suppression._checked.clear()
    if POSTGRES_URL:
        url: str = request.getfixturevalue("postgres_url")
        _truncate(url)
        return url
    path = tmp_path / "nurture.sqlite"
    shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def make_runtime(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """Build a Runtime on the test database; overrides are Settings fields."""
    made: list[Runtime] = []

    def build(mailer_factory: Callable[[], Mailer] | None = None, **overrides: Any) -> Runtime:
        values: dict[str, Any] = {
            "database_url": database_url,
            "secret_key": TEST_SECRET,
            "sequences_dir": ROOT / "sequences",
            "templates_dir": ROOT / "templates",
            "outbox_dir": tmp_path / "outbox",
            "spool_dir": tmp_path / "spool",
            "journal_dir": tmp_path / "journal",
            "base_url": "https://nurture.test",
        }
        values.update(overrides)
        runtime = Runtime(load_settings(environ={}, overrides=values), mailer_factory)
        made.append(runtime)
        return runtime

    yield build
    for runtime in made:
        runtime.close()


@pytest.fixture
def content_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """An empty sequences folder and a templates folder with the layouts and one email,
    `example`, for tests that write their own sequence files."""
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates" / "layouts", templates / "layouts")
    shutil.copytree(ROOT / "templates" / "emails" / "_example", templates / "emails" / "example")
    return sequences, templates
