"""CSV import: every bad row reported by line and reason (on the terminal and in
FILE.errors.csv), a second run changes nothing but counts updates, an interrupted
import resumes after its last committed chunk."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

import nurture.csvimport as csvimport
from nurture.cli import cli
from nurture.models import Lead

ROOT = Path(__file__).resolve().parent.parent
ROWS = 30_000
BAD = {  # line number in the file (the header is line 1) -> what is wrong there
    1_002: "email: An email address must have an @-sign.",
    15_003: "company_size: expected a whole number from 0 to 10000000",
    25_004: "country: expected an ISO 3166 code such as FR",
}


def write_csv(path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,first_name,company,company_size,country,locale,fields.industry,tags\n")
        for line in range(2, ROWS + 2):
            if line == 1_002:
                handle.write("no-at-sign.example,Bad,,10,FR,fr,,\n")
            elif line == 15_003:
                handle.write(f"p{line}@usine.example,Bad,X,many,FR,fr,,\n")
            elif line == 25_004:
                handle.write(f"p{line}@usine.example,Bad,X,10,France,fr,,\n")
            else:
                handle.write(
                    f"p{line}@usine{line % 700}.example,Prénom{line},Usine {line % 700},"
                    f"{20 + line % 3000},FR,fr,manufacturing,salon-2026;planification\n"
                )


# 100,000 rows: on PostgreSQL only (CI runs it there), out of the SQLite run.
@pytest.mark.slow
@pytest.mark.postgres
def test_a_large_import_reports_every_bad_row_and_can_run_again(
    postgres_url: str, database_url: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "salon.csv"
    write_csv(csv_file)
    env = {
        "NURTURE_DATABASE_URL": database_url,
        "NURTURE_SECRET_KEY": "x" * 32,
        "NURTURE_SEQUENCES_DIR": str(ROOT / "sequences"),
        "NURTURE_TEMPLATES_DIR": str(ROOT / "templates"),
        "NURTURE_SCORING_FILE": str(ROOT / "sequences" / "rules" / "scoring.yaml"),
    }
    first = CliRunner().invoke(cli, ["leads", "import", str(csv_file)], env=env)
    assert first.exit_code == 1  # some rows were refused
    reported = [line for line in first.output.splitlines() if line.startswith(str(csv_file))]
    assert reported == [f"{csv_file}:{line}: {reason}" for line, reason in sorted(BAD.items())]
    assert f"imported {ROWS - len(BAD)} new, 0 updated, {len(BAD)} refused" in first.output
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Lead)) == ROWS - len(BAD)
        assert connection.scalar(select(Lead.grade).where(Lead.email == "p5@usine5.example"))
    engine.dispose()

    again = CliRunner().invoke(cli, ["leads", "import", str(csv_file)], env=env)
    assert f"imported 0 new, {ROWS - len(BAD)} updated, {len(BAD)} refused" in again.output


def small_env(database_url: str) -> dict[str, str]:
    """Settings for imports of a few chunks: 500 rows each, whatever the database."""
    return {
        "NURTURE_DATABASE_URL": database_url,
        "NURTURE_IMPORT_CHUNK": "500",
        "NURTURE_SECRET_KEY": "x" * 32,
        "NURTURE_SEQUENCES_DIR": str(ROOT / "sequences"),
        "NURTURE_TEMPLATES_DIR": str(ROOT / "templates"),
    }


def emails(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        found = list(connection.scalars(select(Lead.email).order_by(Lead.email)))
    engine.dispose()
    return found


def interrupted_at(chunk: int) -> Callable[..., Any]:
    """`take_batch` as Ctrl-C meets it while the import takes its `chunk`-th chunk."""
    real = csvimport.take_batch
    taken: list[int] = []

    def taking(*args: Any) -> Any:
        taken.append(1)
        if len(taken) == chunk:
            raise KeyboardInterrupt
        return real(*args)

    return taking


def test_rows_that_are_not_utf8_or_too_large_are_refused_by_line_and_the_rest_imported(
    database_url: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes(
        b"\xef\xbb\xbfemail,first_name,company\n"  # a byte order mark, as Excel writes
        b"ann@atelier.example,Ann,Atelier\n"
        b"bob@atelier.example,B\xe9atrice,Atelier\n"  # Latin-1, not UTF-8
        b'carl@atelier.example,Carl,"Atelier\nsur deux lignes"\n'  # a row over two lines
        b"dora@atelier.example,Dora," + b"x" * 200_000 + b"\n"
        b"eve@atelier.example,\xc3\x88ve,Atelier\n"
    )
    result = CliRunner().invoke(
        cli, ["leads", "import", str(csv_file)], env=small_env(database_url)
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    reported = [line for line in result.output.splitlines() if line.startswith(str(csv_file))]
    assert reported == [
        f"{csv_file}:3: not UTF-8 text (byte 0xe9 at column 22): save the file as UTF-8",
        f"{csv_file}:4: company: control characters are not allowed",  # lines 4 and 5
        f"{csv_file}:6: a cell longer than 131,072 characters",
    ]
    assert "imported 2 new, 0 updated, 3 refused" in result.output
    assert emails(database_url) == ["ann@atelier.example", "eve@atelier.example"]


def test_a_header_that_is_not_utf8_refuses_the_file(database_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "latin1.csv"
    csv_file.write_bytes(b"email,pr\xe9nom\nann@atelier.example,Ann\n")
    result = CliRunner().invoke(
        cli, ["leads", "import", str(csv_file)], env=small_env(database_url)
    )
    assert result.exit_code == 1
    assert f"{csv_file}:1: not UTF-8 text (byte 0xe9 at column 9)" in result.output
    assert emails(database_url) == []


def test_an_interrupted_import_resumes_after_its_last_chunk_and_takes_every_row_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_file = tmp_path / "base.csv"
    bad = {101: "country: expected an ISO 3166 code such as FR", 1101: "email: ", 1251: ""}
    with csv_file.open("w", encoding="utf-8") as handle:
        handle.write("email,first_name,country\n")
        for line in range(2, 1304):  # 1,302 rows: chunks of 500 good rows, then 299
            if line == 101:
                handle.write(f"p{line}@usine.example,P{line},France\n")
            elif line == 1101:
                handle.write("no-at-sign.example,Bad,FR\n")
            elif line == 1251:
                handle.write(f"p{line}@usine.example,Too,FR,many\n")
            else:
                handle.write(f"p{line}@usine.example,P{line},FR\n")
    real = csvimport.take_batch
    monkeypatch.setattr(csvimport, "take_batch", interrupted_at(3))  # rolled back
    first = CliRunner().invoke(cli, ["leads", "import", str(csv_file)], env=small_env(database_url))
    assert first.exit_code == 1 and "Aborted" in first.output
    assert len(emails(database_url)) == 1000  # two chunks committed

    monkeypatch.setattr(csvimport, "take_batch", real)
    again = CliRunner().invoke(
        cli, ["leads", "import", str(csv_file), "--resume"], env=small_env(database_url)
    )
    assert again.exit_code == 1, again.output  # some rows were refused
    assert "resumed at line 1003" in again.output
    assert "imported 1299 new, 0 updated, 3 refused" in again.output
    assert emails(database_url) == sorted(
        f"p{line}@usine.example" for line in range(2, 1304) if line not in bad
    )
    errors = csv_file.with_name("base.csv.errors.csv")
    assert f"every refused row: {errors}" in again.output
    with errors.open(encoding="utf-8") as handle:
        listed = list(csv.reader(handle))
    assert listed[0] == ["line", "reason"]
    assert [int(line) for line, _ in listed[1:]] == sorted(bad)  # each bad row once
    assert all(reason.startswith(bad[int(line)]) for line, reason in listed[1:])

    nothing = CliRunner().invoke(
        cli, ["leads", "import", str(csv_file), "--resume"], env=small_env(database_url)
    )
    assert nothing.exit_code == 1
    assert f"no interrupted import of {csv_file.resolve()} to resume" in nothing.output


def test_a_clean_import_leaves_no_errors_file(database_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "clean.csv"
    csv_file.write_text("email,first_name\nann@atelier.example,Ann\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["leads", "import", str(csv_file)], env=small_env(database_url)
    )
    assert result.exit_code == 0 and "imported 1 new, 0 updated, 0 refused" in result.output
    assert not csv_file.with_name("clean.csv.errors.csv").exists()
