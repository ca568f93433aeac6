"""A deployment plan: the sequence and template files on disk against what is live.

What is live is what leads in flight follow: the sequence versions they are pinned to,
and the template versions pinned to those. The plan says, per sequence, what an
`nurture apply` would do to each group of leads (same version, same step): move to a
step of the new version, or stay on theirs. Pure: the database side gathers the facts
(nurture/deployment.py) and carries the plan out.

The rule for a lead in flight on an older version, at step `s`, when the new version
has a `migrate:` key: `s` named there moves to its target (or stays, for "stay"); `s`
unnamed but kept (same id) moves to the same step; `s` removed and unnamed stays, and
is a problem. Without `migrate:` nobody moves (as before apply existed), and leads at
a removed step are a problem all the same: the author must say what happens to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as Seq
from dataclasses import asdict, dataclass, field

from nurture.core.problems import Problem
from nurture.core.sequence_language import STAY
from nurture.core.sequences import EmailStep, Sequence, WaitStep

Key = tuple[str, str]  # (sequence id, version)


@dataclass(frozen=True)
class Group:
    """Leads in flight on one older version, at one step, and what apply does to them."""

    version: str
    step_id: str
    kind: str  # email, wait, branch, or "unknown" (a version that no longer parses)
    leads: int
    target: str | None  # the step of the new version they move to; None: they stay
    why: str
    problem: bool = False


@dataclass(frozen=True)
class MigrateEntry:
    """A `migrate:` line of the new file, and how many leads it moves."""

    old: str
    new: str
    line: int
    leads: int


@dataclass(frozen=True)
class SequencePlan:
    id: str
    status: str  # added, changed, unchanged, removed
    path: str | None
    version: str | None  # on disk
    published: bool  # the disk version is already stored (a process has loaded it)
    in_flight: int  # leads on the disk version
    groups: tuple[Group, ...] = ()
    migrate: tuple[MigrateEntry, ...] = ()
    templates: tuple[str, ...] = ()  # templates whose new version reaches it on apply
    removed: tuple[tuple[str, int], ...] = ()  # steps gone from the new version: leads there

    @property
    def moving(self) -> int:
        return sum(g.leads for g in self.groups if g.target is not None)

    @property
    def staying(self) -> int:
        return sum(g.leads for g in self.groups if g.target is None)


@dataclass(frozen=True)
class TemplatePlan:
    name: str
    version: str  # on disk
    pinned: tuple[str, ...]  # the versions sequence versions in use are pinned to now
    sequences: tuple[str, ...]  # the sequences using it


@dataclass(frozen=True)
class Plan:
    sequences: tuple[SequencePlan, ...]
    templates: tuple[TemplatePlan, ...]
    errors: tuple[Problem, ...] = ()  # apply refuses: refused files, bad `migrate:`
    problems: tuple[str, ...] = ()  # apply goes ahead; CI may gate on them

    @property
    def moving(self) -> int:
        return sum(s.moving for s in self.sequences)

    @property
    def staying(self) -> int:
        return sum(s.staying for s in self.sequences)


@dataclass(frozen=True)
class Facts:
    """What the database side found."""

    disk: Mapping[str, Sequence]  # sequences on disk that load
    refused: tuple[Problem, ...]  # sequence files that do not
    stored: Mapping[Key, Sequence | None]  # every stored version (None: no longer parses)
    newest: Mapping[str, str]  # sequence id -> the version most recently published
    in_flight: Mapping[tuple[str, str, str], int]  # (sequence, version, step) -> leads
    pins: Mapping[Key, Mapping[str, str]]  # sequence version -> template -> version
    templates: Mapping[str, str] = field(default_factory=dict)  # on disk: name -> version


def kind_of(sequence: Sequence | None, step_id: str) -> str:
    step = None if sequence is None else sequence.step(step_id)
    if step is None:
        return "unknown"
    if isinstance(step, EmailStep):
        return "email"
    if isinstance(step, WaitStep):
        return "wait"
    return "branch"


def target_of(new: Sequence, step_id: str) -> tuple[str | None, str, bool]:
    """Where apply puts a lead at `step_id` of an older version: (step or None, why,
    whether it is a problem)."""
    mapping = {m.old: m.new for m in new.migrate}
    kept = new.step(step_id) is not None
    if step_id in mapping:
        if mapping[step_id] == STAY:
            return None, "stays: migrate says stay", False
        return mapping[step_id], f"moves to {mapping[step_id]} (migrate)", False
    if kept and new.migrate:
        return step_id, f"moves to {step_id} (same step)", False
    if kept:
        return None, "stays on its version: the file has no migrate:", False
    return (
        None,
        f"stays on its version: the new version has no step {step_id} and migrate:"
        f' does not name it (add "{step_id}: <step>" or "{step_id}: stay")',
        True,
    )


def plan(facts: Facts) -> Plan:
    errors: list[Problem] = list(facts.refused)
    problems: list[str] = []
    ids = sorted(set(facts.disk) | {sid for sid, _, _ in facts.in_flight})
    result = []
    for sid in ids:
        new = facts.disk.get(sid)
        groups = []
        for (flight_id, version, step_id), leads in sorted(facts.in_flight.items()):
            if flight_id != sid or (new is not None and version == new.version):
                continue
            old = facts.stored.get((sid, version))
            if new is None:
                target, why, problem = (
                    None,
                    "stays: the file is gone; it finishes its version",
                    False,
                )
            else:
                target, why, problem = target_of(new, step_id)
            groups.append(
                Group(version, step_id, kind_of(old, step_id), leads, target, why, problem)
            )
            if problem:
                problems.append(
                    f"{sid}: {leads} lead(s) at step {step_id} of v{version[:8]}: {why}"
                )
        migrate: tuple[MigrateEntry, ...] = ()
        if new is not None:
            known = {
                step.id
                for (stored_id, _), old in facts.stored.items()
                if stored_id == sid and old is not None
                for step in old.steps
            }
            for m in new.migrate:
                if m.old not in known:
                    errors.append(
                        Problem(
                            new.path,
                            m.line,
                            f"migrate.{m.old}: no published version of {sid} has a step"
                            f" {m.old!r}; known steps: {', '.join(sorted(known)) or 'none'}",
                        )
                    )
            leads_at: dict[str, int] = {}
            for g in groups:
                leads_at[g.step_id] = leads_at.get(g.step_id, 0) + g.leads
            migrate = tuple(
                MigrateEntry(m.old, m.new, m.line, leads_at.get(m.old, 0)) for m in new.migrate
            )
        templates = _changed_templates(facts, sid, new)
        status = _status(facts, sid, new, groups, templates)
        removed = _removed(facts, sid, new, groups)
        on_disk = sum(
            n
            for (f, v, _), n in facts.in_flight.items()
            if new is not None and f == sid and v == new.version
        )
        result.append(
            SequencePlan(
                sid,
                status,
                None if new is None else new.path,
                None if new is None else new.version,
                new is not None and (sid, new.version) in facts.stored,
                on_disk,
                tuple(groups),
                migrate,
                templates,
                removed,
            )
        )
    return Plan(tuple(result), _template_plans(facts), tuple(sorted(set(errors))), tuple(problems))


def _removed(
    facts: Facts, sid: str, new: Sequence | None, groups: list[Group]
) -> tuple[tuple[str, int], ...]:
    """The steps of the versions leads are in (and of the newest published one) that the
    new version no longer has, with how many leads wait at each."""
    if new is None:
        return ()
    versions = {g.version for g in groups} | {facts.newest.get(sid, new.version)}
    gone: dict[str, int] = {}
    for version in sorted(versions):
        old = facts.stored.get((sid, version))
        for step in old.steps if old is not None else ():
            if new.step(step.id) is None:
                gone.setdefault(step.id, 0)
    for g in groups:
        if g.step_id in gone:
            gone[g.step_id] += g.leads
    return tuple(sorted(gone.items()))


def _versions_in_use(facts: Facts, sid: str, new: Sequence | None) -> set[Key]:
    keys = {(f, v) for f, v, _ in facts.in_flight if f == sid}
    if new is not None:
        keys.add((sid, new.version))
    return keys


def _changed_templates(facts: Facts, sid: str, new: Sequence | None) -> tuple[str, ...]:
    changed = set()
    for key in _versions_in_use(facts, sid, new):
        for name, pinned in facts.pins.get(key, {}).items():
            disk = facts.templates.get(name)
            if disk is not None and disk != pinned:
                changed.add(name)
    return tuple(sorted(changed))


def _status(
    facts: Facts, sid: str, new: Sequence | None, groups: list[Group], templates: tuple[str, ...]
) -> str:
    if new is None:
        return "removed"
    if not any(stored_id == sid for stored_id, _ in facts.stored):
        return "added"
    if facts.newest.get(sid) != new.version or groups or templates:
        return "changed"
    return "unchanged"


def _template_plans(facts: Facts) -> tuple[TemplatePlan, ...]:
    in_use: set[Key] = {(f, v) for f, v, _ in facts.in_flight}
    in_use |= {(sid, s.version) for sid, s in facts.disk.items()}
    found: dict[str, tuple[set[str], set[str]]] = {}
    for key in in_use:
        for name, pinned in facts.pins.get(key, {}).items():
            disk = facts.templates.get(name)
            if disk is not None and disk != pinned:
                versions, users = found.setdefault(name, (set(), set()))
                versions.add(pinned)
                users.add(key[0])
    return tuple(
        TemplatePlan(name, facts.templates[name], tuple(sorted(v)), tuple(sorted(u)))
        for name, (v, u) in sorted(found.items())
    )


# --- as a person reads it ----------------------------------------------------------------


def _short(version: str | None) -> str:
    return "-" if version is None else f"v{version[:8]}"


def lines(result: Plan) -> list[str]:
    """The plan as text, one thing a line."""
    out: list[str] = []
    for s in result.sequences:
        if s.status == "unchanged":
            continue
        head = f"sequence {s.id}: {s.status}"
        if s.version is not None:
            head += f", {_short(s.version)} on disk" + ("" if s.published else " (new)")
        out.append(head + (f" ({s.path})" if s.path else ""))
        for name in s.templates:
            out.append(f"  template {name}: its new version reaches these leads on apply")
        if s.removed:
            gone = ", ".join(f"{step} ({n} lead(s) there)" for step, n in s.removed)
            out.append(f"  steps removed: {gone}")
        for g in s.groups:
            flag = "  PROBLEM" if g.problem else ""
            at = f"{g.step_id} ({g.kind}) of {_short(g.version)}"
            out.append(f"  {g.leads} lead(s) at {at}: {g.why}{flag}")
        for m in s.migrate:
            out.append(f"  migrate {m.old} -> {m.new} (line {m.line}): {m.leads} lead(s)")
    for t in result.templates:
        pinned = ", ".join(_short(v) for v in t.pinned)
        out.append(
            f"template {t.name}: changed, {pinned} -> {_short(t.version)},"
            f" used by {', '.join(t.sequences)}"
        )
    changed = [s for s in result.sequences if s.status != "unchanged"]
    counts = {k: sum(1 for s in changed if s.status == k) for k in ("added", "changed", "removed")}
    out.append(
        f"plan: {counts['added']} added, {counts['changed']} changed, {counts['removed']} removed;"
        f" {len(result.templates)} template(s) changed; {result.moving} lead(s) move,"
        f" {result.staying} stay on their version; {len(result.problems)} problem(s),"
        f" {len(result.errors)} error(s)"
    )
    return out


def as_json(result: Plan) -> dict[str, object]:
    body = asdict(result)
    body["errors"] = [str(p) for p in result.errors]
    body["moving"], body["staying"] = result.moving, result.staying
    return body


def problem_lines(result: Plan) -> Seq[str]:
    return [*(str(p) for p in result.errors), *result.problems]
