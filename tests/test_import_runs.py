"""What the imports did, as `nurture leads imports` and the console's Operations page
show it: a finished import with its errors file, an interrupted one with the command
that goes on with it, and the same one while it still ran (time left)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from test_console_access import Console
from test_console_access import cheap_hashes as cheap_hashes  # autouse: cheap Argon2
from test_console_access import make_console as make_console
from test_csv_import import interrupted_at

import nurture.csvimport as csvimport
from nurture.cli import cli
from nurture.csvimport import NothingToResume, import_csv
from nurture.import_runs import latest

T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def write(path: Path, rows: int, bad_at: int | None = None) -> None:
    """`rows` people of their own (named after the file)."""
    lines = ["email,first_name,country"]
    for n in range(rows):
        bad = n + 2 == bad_at  # the line number in the file (the header is line 1)
        lines.append(f"p{n}@{path.stem}.example,P{n},{'France' if bad else 'FR'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def imported(
    make_console: Callable[..., Console], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Console:
    """A finished import with one bad row, then a bigger one interrupted after two of
    its four chunks (of 500 rows)."""
    console = make_console(import_chunk=500)
    done = tmp_path / "salon.csv"
    write(done, 30, bad_at=7)
    import_csv(console.runtime, done, T - timedelta(days=1))
    base = tmp_path / "base.csv"
    write(base, 2000)
    real = csvimport.take_batch
    monkeypatch.setattr(csvimport, "take_batch", interrupted_at(3))
    with pytest.raises(KeyboardInterrupt):
        import_csv(console.runtime, base, T)
    monkeypatch.setattr(csvimport, "take_batch", real)
    return console


def test_the_cli_lists_imports_newest_first_with_how_to_go_on(
    imported: Console, tmp_path: Path
) -> None:
    env = {"NURTURE_DATABASE_URL": imported.runtime.settings.database_url,
           "NURTURE_SECRET_KEY": "x" * 32}  # fmt: skip
    with freeze_time(T + timedelta(minutes=10)):
        result = CliRunner().invoke(cli, ["leads", "imports", "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    base, salon = rows
    assert base["file"] == str(tmp_path / "base.csv")
    data = (tmp_path / "base.csv").read_bytes()
    two_chunks = len(b"".join(data.splitlines(keepends=True)[:1001]))  # header, 1000 rows
    read = round(100 * two_chunks / len(data), 1)
    assert (base["state"], base["new"], base["read %"]) == ("interrupted", 1000, read)
    assert base["next"] == f"nurture leads import {tmp_path / 'base.csv'} --resume"
    assert (salon["state"], salon["new"], salon["refused"]) == ("finished", 29, 1)
    assert salon["read %"] == 100.0
    assert salon["next"] == f"bad rows: {tmp_path / 'salon.csv.errors.csv'}"

    with freeze_time(T + timedelta(minutes=10)):
        text = CliRunner().invoke(cli, ["leads", "imports"], env=env).output
    assert "interrupted" in text and "--resume" in text  # the readable table


def test_a_running_import_shows_its_time_left(imported: Console) -> None:
    with imported.runtime.sessions() as session:
        base = latest(session, T + timedelta(seconds=30))[0]
        assert base.state == "running" and base.read is not None and base.left is not None
        assert 0.45 < base.read < 0.5  # two chunks of four, the later rows longer
        # Half read within a second of its start: about as long again is left.
        assert base.left < timedelta(seconds=5)
        assert latest(session, T + timedelta(minutes=3))[0].state == "interrupted"


def test_the_console_shows_imports_to_admins(imported: Console, tmp_path: Path) -> None:
    with freeze_time(T + timedelta(minutes=10)):
        client = imported.signed_in("claire@planifia.example", "admin")
        page = client.get("/console/operations").get_data(as_text=True)
    assert '<section id="imports"' in page
    assert f'<code title="{tmp_path / "base.csv"}">base.csv</code>' in page
    assert '<span class="problem">interrupted</span>' in page
    assert f"To go on: <code>nurture leads import {tmp_path / 'base.csv'} --resume</code>" in page
    assert f"bad rows, by line: <code>{tmp_path / 'salon.csv.errors.csv'}</code>" in page
    assert "48 %" in page and "100 %" in page


def test_a_console_without_imports_says_how_to_start_one(
    make_console: Callable[..., Console],
) -> None:
    client = make_console().signed_in("claire@planifia.example", "admin")
    page = client.get("/console/operations").get_data(as_text=True)
    assert "No CSV import yet (<code>nurture leads import FILE.csv</code>)." in page


def test_resuming_the_interrupted_import_finishes_it(imported: Console, tmp_path: Path) -> None:
    report = import_csv(imported.runtime, tmp_path / "base.csv", T, resume=True)
    assert report.created == 2000
    with imported.runtime.sessions() as session:
        assert [run.state for run in latest(session, T + timedelta(hours=1))] == [
            "finished", "finished",
        ]  # fmt: skip
    with pytest.raises(NothingToResume):
        import_csv(imported.runtime, tmp_path / "base.csv", T, resume=True)
