"""Sequences: what each sequence and each of its steps did to the leads inside.

Opens and clicks count emails, not hits: an email opened five times by a person is
one human open. Machine opens (mail privacy proxies, pre-fetchers) and security
scanners' clicks are counted apart and never as interest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from nurture.core.experiments import SplitResults, share
from nurture.core.reports import ALL, Period, percent
from nurture.core.tables import Table, table

# What a step's emails may show, in the columns' order.
STEP_MEASURES = (
    "sent",
    "bounced",
    "opened",
    "clicked",
    "machine",
    "scanner",
    "unsubscribed",
    "complained",
)
# What only the sequence as a whole knows (enrollments are not at one step).
SEQUENCE_MEASURES = ("entered", "mql", "sql")


@dataclass(frozen=True)
class StepCount:
    """`count` of `measure` for one step (`step` None: the sequence as a whole).

    Exits carry their reason in `detail` (measure "exit")."""

    sequence: str
    step: str | None
    measure: str
    count: int
    detail: str = ""


def sequences(
    rows: Iterable[StepCount],
    period: Period,
    step_order: Mapping[str, Sequence[str]] | None = None,
) -> Table:
    """`step_order`: each sequence's step ids in file order (others follow, by name)."""
    figures: dict[tuple[str, str | None], dict[str, int]] = {}
    exits: dict[tuple[str, str | None], dict[str, int]] = {}
    for row in rows:
        if row.measure == "exit":
            for key in ((row.sequence, row.step), (row.sequence, None)):
                reasons = exits.setdefault(key, {})
                reasons[row.detail] = reasons.get(row.detail, 0) + row.count
            continue
        cell = figures.setdefault((row.sequence, row.step), {})
        cell[row.measure] = cell.get(row.measure, 0) + row.count
    steps: dict[str, set[str]] = {}
    for sequence, step in (*figures, *exits):
        steps.setdefault(sequence, set())
        if step is not None:
            steps[sequence].add(step)
    lines = []
    for sequence in sorted(steps):
        order = {s: i for i, s in enumerate((step_order or {}).get(sequence, ()))}
        listed = sorted(steps[sequence], key=lambda s: (order.get(s, len(order)), s))
        whole = dict(figures.get((sequence, None), {}))
        for step in listed:
            for measure, count in figures.get((sequence, step), {}).items():
                whole[measure] = whole.get(measure, 0) + count
        lines.append(_line(sequence, ALL, whole, exits.get((sequence, None), {}), True))
        for step in listed:
            cell = figures.get((sequence, step), {})
            lines.append(_line(sequence, step, cell, exits.get((sequence, step), {}), False))
    notes = [
        "entered: enrollments that began in the period; exits: enrollments that ended in"
        " it, by reason, at the step where the lead was",
        "sent: emails the relay took (or refused the address of) in the period;"
        " delivered: sent - bounced; bounced: the relay refused the address, or a bounce"
        " was reported for the email",
        "opened, clicked: emails a person opened or clicked (each email once, human hits"
        " only); machine: emails opened by a machine (privacy proxy, pre-fetch);"
        " scanner: emails whose links a security scanner followed; open % and click %"
        " are of delivered",
        "unsubscribed, complained: from those emails; what happened to the emails sent in"
        " the period, whenever it happened",
        "reached MQL, reached SQL: leads that crossed into mql (or later) or were"
        " promoted while enrolled, in the period",
    ]
    columns = (
        "sequence", "step", "entered", "sent", "delivered", "opened", "clicked",
        "open %", "click %", "machine", "scanner", "unsubscribed", "bounced", "complained",
        "exits", "reached MQL", "reached SQL",
    )  # fmt: skip
    return table(f"Sequences, {period}", columns, lines, notes)


def _line(
    sequence: str, step: str, cell: dict[str, int], reasons: dict[str, int], whole: bool
) -> tuple[object, ...]:
    sent, bounced = cell.get("sent", 0), cell.get("bounced", 0)
    delivered = sent - bounced
    opened, clicked = cell.get("opened", 0), cell.get("clicked", 0)
    said = ", ".join(
        f"{reason} {count}"
        for reason, count in sorted(reasons.items(), key=lambda r: (-r[1], r[0]))
    )
    return (
        sequence,
        step,
        cell.get("entered", 0) if whole else None,
        sent,
        delivered,
        opened,
        clicked,
        percent(opened, delivered),
        percent(clicked, delivered),
        cell.get("machine", 0),
        cell.get("scanner", 0),
        cell.get("unsubscribed", 0),
        bounced,
        cell.get("complained", 0),
        said,
        cell.get("mql", 0) if whole else None,
        cell.get("sql", 0) if whole else None,
    )


METRIC_NAMES = {"human_clicks": "clicked", "mql": "reached MQL", "sql": "reached SQL"}


def split_table(results: SplitResults) -> Table:
    """One A/B split's results per variant, since the split began (not a period: a
    test is read from its first lead), the control first and the holdout last."""
    split, metric = results.split, results.metric
    control = results.rows[0].counts.variant if results.rows else ""
    lines = []
    for row in results.rows:
        c = row.counts
        confidence = None if row.confidence is None else percent(row.confidence, 1)
        lines.append((
            c.variant, percent(share(split, c.variant), 1), c.entered, c.sent,
            c.clicked, percent(c.clicked, c.entered), c.mql, percent(c.mql, c.entered),
            c.sql, percent(c.sql, c.entered),
            "control" if c.variant == control else confidence,
        ))  # fmt: skip
    state = "no stop rule"
    if split.stop is not None:
        stop = split.stop
        state = (f"stops when the leader beats every other variant on {stop.metric} at"
                 f" {stop.confidence:.0%}, {stop.min_per_variant} leads each at least")  # fmt: skip
    if results.winner is not None:
        when = f" on {results.winner_at:%Y-%m-%d %H:%M} UTC" if results.winner_at else ""
        state = f"stopped{when}: {results.winner} won, every new lead gets it"
    notes = [
        f"{state}",
        "share: of new leads by the file's weights; entered: leads assigned the variant"
        " (each lead once, for good); sent: the split's email sent to them",
        "clicked: leads with a human click (no scanner, no machine) on an email of the"
        " sequence sent after the assignment; reached MQL, reached SQL: leads that"
        " crossed into mql, or were promoted, after the assignment while enrolled;"
        " each % is of entered",
        f"beats {control}: the confidence that the variant's {METRIC_NAMES[metric]} rate is"
        f" above the control's ({control}), by a one-sided two-proportion z-test",
    ]
    columns = (
        "variant", "share %", "entered", "sent", "clicked", "click %", "reached MQL",
        "MQL %", "reached SQL", "SQL %", f"beats {control} %",
    )  # fmt: skip
    return table(f"Split {split.id} of {results.sequence_id}, since it began", columns, lines,
                 notes)  # fmt: skip
