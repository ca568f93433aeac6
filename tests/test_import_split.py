"""`nurture leads import FILE --jobs N`: one file shared among N processes on
PostgreSQL leaves exactly what one process leaves; an interrupted split import (Ctrl-C,
or every process killed) resumes as it was started and takes every row once; SQLite
and a mismatched --jobs are refused, changing nothing."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select
from test_csv_import import interrupted_at, small_env
from test_intake_batch import CSV_LINES, NOW, runtime_for, snapshot, start_over

import nurture.csvimport as csvimport
from nurture.cli import cli
from nurture.csvimport import Share
from nurture.import_split import import_file
from nurture.models import ImportRun, Lead
from nurture.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent

# tests/test_intake_batch.py's file (new, known, disqualified, suppressed, refused,
# duplicated), then a row with no email, a cell too long for the reader and a person
# under another spelling (case, sub-address).
MIXED = [
    *CSV_LINES,
    ",Nobody,,,FR,,,,",
    f"zoe@usine-z.example,Zoe,{'x' * 200_000},,FR,,,,",
    "Anne+salon@Usine-A.example,Anne,,,,,,,fair",
]


def test_a_row_goes_to_one_share_by_person_whatever_its_spelling() -> None:
    shares = [Share(index, 3) for index in range(3)]
    for spelling in (
        "anne@usine-a.example",
        " Anne+salon@USINE-A.example ",
        "anne+x@usine-a.example",
    ):
        assert [s.takes(spelling, 7, True) for s in shares].count(True) == 1
    owner = [s.takes("anne@usine-a.example", 2, True) for s in shares]
    assert [s.takes("ANNE+news@usine-a.example", 99, True) for s in shares] == owner
    # No address to hash: the line decides, so exactly one process reports the row.
    assert [s.takes("", 7, True) for s in shares] == [False, True, False]
    assert [s.takes("not-an-email", 7, True) for s in shares].count(True) == 1


def test_a_file_shared_among_processes_leaves_every_table_as_one_process_does(
    postgres_url: str, make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    runtime = runtime_for(make_runtime, tmp_path)
    path = tmp_path / "leads.csv"
    path.write_text("\n".join(MIXED) + "\n", encoding="utf-8")
    outcomes = []
    for jobs in (1, 3):
        start_over(runtime)
        report = import_file(runtime, path, NOW, source="salon", jobs=jobs)
        errors = path.with_name("leads.csv.errors.csv").read_text(encoding="utf-8")
        tables = snapshot(runtime)
        del tables["import_runs"]  # one row per part: compared below
        outcomes.append(((report.created, report.updated, report.refused, errors), tables))
        with runtime.sessions() as session:
            runs = session.execute(select(ImportRun.part, ImportRun.parts, ImportRun.finished_at))
            assert sorted(runs) == [(part, jobs, NOW) for part in range(jobs)]
    (one, one_tables), (three, three_tables) = outcomes
    assert three == one
    assert [line for line, _ in one[2]] == [4, 7, 12, 13, 14]
    for table in one_tables:
        assert three_tables[table] == one_tables[table], table
    assert not list(tmp_path.glob("leads.csv.errors.part*"))  # merged into one file


def _big_file(path: Path, rows: int, bad: dict[int, str]) -> list[str]:
    """`rows` people, two rows each for some, and bad rows at the lines in `bad`; returns
    the addresses that must be stored."""
    people = []
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,first_name,company,company_size,country,tags\n")
        for line in range(2, rows + 2):
            if line in bad:
                handle.write(bad[line])
            elif line % 10 == 0:  # the person of the line before, again, spelled otherwise
                person = f"P{line - 1}+again@Usine{(line - 1) % 90}.example"
                handle.write(f"{person},,Relance {line - 1},,,relance\n")
            else:
                people.append(f"p{line}@usine{line % 90}.example")
                handle.write(
                    f"p{line}@usine{line % 90}.example,P{line},Usine {line % 90},"
                    f"{20 + line % 900},FR,salon-2026\n"
                )
    return sorted(people)


def _env(database_url: str) -> dict[str, str]:
    return {**small_env(database_url), "NURTURE_FOLD_SUBADDRESS": "true"}


def _resumed_to_the_end(
    env: dict[str, str],
    path: Path,
    database_url: str,
    people: list[str],
    updated: int,
    refused: int = 0,
) -> None:
    """`--resume` until the end: the whole file's counts, every person stored once."""
    last = _started(env, str(path), "--resume")
    output, _ = last.communicate(timeout=120)
    assert last.returncode == (1 if refused else 0), output  # 1: some rows were refused
    assert f"imported {len(people)} new, {updated} updated, {refused} refused" in output
    engine = create_engine(database_url)
    with engine.connect() as connection:
        stored = list(connection.scalars(select(Lead.email).order_by(Lead.email)))
    engine.dispose()
    assert stored == people  # each person once, nobody lost


def _started(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nurture", "leads", "import", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: every process of it is found
    )


def _committed(engine: Any) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.coalesce(func.sum(ImportRun.created), 0))))


def _wait(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    """Real processes: poll until `condition` holds (not a schedule: work in progress)."""
    limit = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < limit, f"still waiting for {what}"
        time.sleep(0.05)


def _group_gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


def test_an_interrupted_split_import_resumes_as_started_and_takes_every_row_once(
    postgres_url: str, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "base.csv"
    bad = {
        1_203: "no-at-sign.example,Bad,,,FR,\n",
        4_501: "p4501@usine.example,Bad,X,many,FR,\n",
        7_777: "p7777@usine.example,Bad,X,10,France,\n",
        9_002: ",Nobody,X,10,FR,\n",
    }
    people = _big_file(path, 12_000, bad)
    env = _env(database_url)
    engine = create_engine(database_url)

    # Ctrl-C to the command: it stops every process it started; what they committed stays.
    first = _started(env, str(path), "--jobs", "2")
    _wait(lambda: _committed(engine) >= 1000, "two chunks committed")
    first.send_signal(signal.SIGINT)
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 1 and "Aborted" in output, output
    _wait(lambda: _group_gone(first.pid), "the parts to stop", seconds=15)
    stored = _committed(engine)
    assert 0 < stored < len(people)

    # Then every process of the resumed import killed at once, as a machine stops.
    second = _started(env, str(path), "--resume")
    _wait(lambda: _committed(engine) >= stored + 1000, "the resumed parts' chunks")
    os.killpg(second.pid, signal.SIGKILL)
    second.communicate(timeout=60)
    _wait(lambda: _group_gone(second.pid), "the killed parts")
    assert _committed(engine) < len(people)

    wrong = _started(env, str(path), "--resume", "--jobs", "3")
    output, _ = wrong.communicate(timeout=60)
    assert wrong.returncode == 1
    assert "ran as 2 process(es) (--jobs 2): resume it with the same --jobs" in output

    updated = 12_000 // 10  # every tenth line is a person's second row
    _resumed_to_the_end(env, path, database_url, people, updated, refused=len(bad))
    with engine.connect() as connection:
        again = connection.scalar(select(Lead.tags).where(Lead.email == "p9@usine9.example"))
        assert sorted(again) == ["relance", "salon-2026"]  # both rows of the person merged
        company = connection.scalar(select(Lead.company).where(Lead.email == "p9@usine9.example"))
        assert company == "Relance 9"  # in file order: the later row's value stands
    engine.dispose()

    errors = path.with_name("base.csv.errors.csv")
    with errors.open(encoding="utf-8") as handle:
        listed = list(csv.reader(handle))
    assert listed[0] == ["line", "reason"]
    assert [int(line) for line, _ in listed[1:]] == sorted(bad)  # each bad row once, by line
    assert not list(tmp_path.glob("base.csv.errors.part*"))

    nothing = _started(env, str(path), "--resume")
    output, _ = nothing.communicate(timeout=60)
    assert nothing.returncode == 1 and "no interrupted import" in output


def test_jobs_on_sqlite_are_refused_and_nothing_is_read(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("email,first_name\nann@atelier.example,Ann\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'nurture.sqlite'}"
    result = CliRunner().invoke(
        cli, ["leads", "import", str(path), "--jobs", "2"], env=small_env(url)
    )
    assert result.exit_code == 1
    assert "--jobs needs PostgreSQL: SQLite takes one writer at a time" in result.output
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Lead)) == 0
        assert connection.scalar(select(func.count()).select_from(ImportRun)) == 0
    engine.dispose()
    assert not path.with_name("leads.csv.errors.csv").exists()


def test_a_single_import_interrupted_resumes_only_as_one_process(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "base.csv"
    rows = [f"p{n}@usine.example,P{n}" for n in range(1200)]
    path.write_text("email,first_name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    env = small_env(database_url)
    real = csvimport.take_batch
    monkeypatch.setattr(csvimport, "take_batch", interrupted_at(2))
    CliRunner().invoke(cli, ["leads", "import", str(path)], env=env)
    monkeypatch.setattr(csvimport, "take_batch", real)
    wrong = CliRunner().invoke(
        cli, ["leads", "import", str(path), "--resume", "--jobs", "2"], env=env
    )
    assert wrong.exit_code == 1
    assert "ran as 1 process(es) (--jobs 1): resume it with the same --jobs" in wrong.output
    right = CliRunner().invoke(cli, ["leads", "import", str(path), "--resume"], env=env)
    assert "imported 1200 new, 0 updated, 0 refused" in right.output, right.output


def test_a_part_that_fails_stops_the_import_with_its_reason_and_resume_goes_on(
    postgres_url: str, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "base.csv"
    people = _big_file(path, 3_000, {})
    env = _env(database_url)
    engine = create_engine(database_url)
    refuse = (
        "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN"
        " IF NEW.email = 'p2999@usine29.example' THEN RAISE EXCEPTION 'no room for p2999';"
        " END IF; RETURN NEW; END $$ LANGUAGE plpgsql;"
        " CREATE TRIGGER refuse_one BEFORE INSERT ON leads"
        " FOR EACH ROW EXECUTE FUNCTION refuse_one()"
    )
    try:
        with engine.begin() as connection:  # the database refuses one person's row
            connection.exec_driver_sql(refuse)
        failed = _started(env, str(path), "--jobs", "2")
        output, _ = failed.communicate(timeout=120)
        assert failed.returncode == 1
        assert "the import stopped: part " in output and "no room for p2999" in output, output
        assert f"`nurture leads import {path} --resume` goes on" in output
        _wait(lambda: _group_gone(failed.pid), "the other part to stop", seconds=15)
        assert _committed(engine) < len(people)
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS refuse_one ON leads")
            connection.exec_driver_sql("DROP FUNCTION IF EXISTS refuse_one()")

    engine.dispose()
    _resumed_to_the_end(env, path, database_url, people, 300)


def _parts_of(pid: int) -> list[int]:
    """The import's part processes (not multiprocessing's own helper)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in map(int, children):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in command:
                found.append(child)
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_part_killed_stops_the_import_and_killing_the_command_ends_its_parts(
    postgres_url: str, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "base.csv"
    people = _big_file(path, 12_000, {})
    env = _env(database_url)
    engine = create_engine(database_url)

    # One part dies without a word (the kernel's out-of-memory killer, say).
    first = _started(env, str(path), "--jobs", "2")
    _wait(lambda: _committed(engine) >= 1000, "two chunks committed")
    parts = _parts_of(first.pid)
    assert len(parts) == 2
    os.kill(parts[1], signal.SIGKILL)
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 1
    assert "ended without finishing (stopped by signal SIGKILL)" in output, output
    assert "--resume` goes on" in output
    _wait(lambda: _group_gone(first.pid), "the other part to stop", seconds=15)

    # The command itself killed: its parts end with it instead of importing unseen.
    second = _started(env, str(path), "--resume")
    stored = _committed(engine)
    _wait(lambda: _committed(engine) >= stored + 1000, "the resumed parts' chunks")
    os.kill(second.pid, signal.SIGKILL)
    second.communicate(timeout=60)
    _wait(lambda: _group_gone(second.pid), "the parts to end with the command", seconds=15)
    assert _committed(engine) < len(people)

    engine.dispose()
    _resumed_to_the_end(env, path, database_url, people, 1200)
