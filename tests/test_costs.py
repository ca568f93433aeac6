"""Costs per source and month, as a marketer enters them, and tables as they leave."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import TEST_SECRET
from freezegun import freeze_time
from sqlalchemy import select

from nurture.cli import cli
from nurture.core.tables import as_csv, as_text, safe_cell, table
from nurture.models import Cost


@pytest.fixture
def run(make_runtime: Any) -> Any:
    runtime = make_runtime()
    env = {"NURTURE_DATABASE_URL": runtime.settings.database_url, "NURTURE_SECRET_KEY": TEST_SECRET}

    def invoke(*args: str, currency: str = "EUR") -> Any:
        with freeze_time("2026-12-01 09:00:00"):
            return CliRunner().invoke(cli, list(args), env={**env, "NURTURE_CURRENCY": currency})

    invoke.runtime = runtime  # type: ignore[attr-defined]
    return invoke


def stored(run: Any) -> list[tuple[str, str, str, Decimal]]:
    with run.runtime.sessions() as session:
        return [(c.source, c.campaign, c.month, c.amount) for c in session.scalars(select(Cost))]


def test_a_cost_is_set_replaced_and_listed(run: Any) -> None:
    done = run("costs", "set", "salon-industrie", "--month", "2026-11", "--amount", "1200")
    assert done.exit_code == 0, done.output
    assert done.output == "salon-industrie 2026-11: 1200.00 EUR\n"
    again = run("costs", "set", "salon-industrie", "--month", "2026-11", "--amount", "1350.5")
    assert again.output == "salon-industrie 2026-11: 1350.50 EUR (was 1200.00 EUR)\n"
    run("costs", "set", "google-ads", "--campaign", "brand", "--month", "2026-10", "--amount", "80")
    assert sorted(stored(run)) == [
        ("google-ads", "brand", "2026-10", Decimal("80.00")),
        ("salon-industrie", "", "2026-11", Decimal("1350.50")),
    ]
    listing = run("costs", "list", "--from", "2026-11", "--format", "json")
    rows = json.loads(listing.output)["rows"]
    assert rows == [
        {"month": "2026-11", "source": "salon-industrie", "campaign": None,
         "amount (EUR)": 1350.5, "entered as": None},
    ]  # fmt: skip
    text = run("costs", "list").output
    assert text.splitlines()[0] == "Costs (EUR)"
    assert "google-ads       brand" in text


def test_another_currency_needs_its_rate_and_both_are_kept(run: Any) -> None:
    refused = run("costs", "set", "linkedin", "--month", "2026-11", "--amount", "1000",
                  "--currency", "USD")  # fmt: skip
    assert refused.exit_code == 2
    assert "costs are kept in EUR (NURTURE_CURRENCY)" in refused.output
    assert "--rate" in refused.output
    assert stored(run) == []
    done = run("costs", "set", "linkedin", "--month", "2026-11", "--amount", "1000",
               "--currency", "usd", "--rate", "0.9213")  # fmt: skip
    assert done.output == "linkedin 2026-11: 921.30 EUR\n"
    entered = json.loads(run("costs", "list", "--format", "json").output)["rows"][0]
    assert entered["entered as"] == "1000.00 USD at 0.921300"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--month", "2026-13", "--amount", "1"), "month: expected a month as YYYY-MM"),
        (("--month", "nov", "--amount", "1"), "month: expected a month as YYYY-MM"),
        (("--month", "2026-11", "--amount", "-5"), "amount: expected a number from 0"),
        (("--month", "2026-11", "--amount", "NaN"), "amount: expected a number from 0"),
        (("--month", "2026-11", "--amount", "12k"), "amount: expected a number such as 1200"),
        (("--month", "2026-11", "--amount", "1", "--rate", "2"), "rate: only for an amount"),
    ],
)
def test_bad_values_are_refused_in_one_line_and_store_nothing(
    run: Any, args: tuple[str, ...], said: str
) -> None:
    refused = run("costs", "set", "salon", *args)
    assert refused.exit_code == 2
    assert said in refused.output
    assert "Traceback" not in refused.output
    assert stored(run) == []


def test_a_source_named_like_a_formula_is_text_in_csv(run: Any) -> None:
    formula = '=HYPERLINK("http://evil.example","click")'
    run("costs", "set", formula, "--month", "2026-11", "--amount", "10")
    assert run("costs", "set", "--month", "2026-11", "--amount", "20", "--", "-2+3").exit_code == 0
    out = run("costs", "list", "--format", "csv").output
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["month", "source", "campaign", "amount (EUR)", "entered as"]
    assert sorted(r[1] for r in rows[1:]) == ["'-2+3", "'" + formula]
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+33 1 23", "'+33 1 23"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("salon", "salon"),
        (-5, -5),  # a number is a number
    ],
)
def test_safe_cell(value: Any, shown: Any) -> None:
    assert safe_cell(value) == shown


def test_a_text_table_aligns_numbers_right_and_says_its_definitions() -> None:
    data = table("Funnel", ("source", "leads"), [("web", 12), ("salon", 7)], ["leads: created"])
    assert as_text(data).splitlines() == [
        "Funnel",
        "  leads: created",
        "",
        "source  leads",
        "------  -----",
        "web        12",
        "salon       7",
    ]
    assert as_csv(data) == "source,leads\nweb,12\nsalon,7\n"
