"""What `nurture validate` checks, for the command and the console alike: every problem
of the authored content by file and line, and one status line per part (no output).

The command prints the lines and the problems; the console's Sequences page shows the
problems beside the files they concern.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nurture.config import Settings
from nurture.content import Content
from nurture.core.problems import Problem
from nurture.core.sequences import Sequence, TriggerKind

RULES = (
    ("scoring", "scoring_file"),
    ("routing", "routing_file"),
    ("qualification", "qualification_file"),
)


@dataclass(frozen=True)
class Checked:
    """`lines`: what each part is (`ok …`, `off …`, `css …`), in order; `problems`:
    what is wrong, sorted, each once."""

    lines: tuple[str, ...]
    problems: tuple[Problem, ...]


def check(
    content: Content, settings: Settings, environ: Mapping[str, str] | None = None
) -> Checked:
    """Every check of `nurture validate` over `content`, as loaded with `settings`."""
    environ = os.environ if environ is None else environ
    lines: list[str] = []
    problems = [*content.problems, *content.templates.validate_all(), *content.rule_problems]
    for sequence in sorted(content.live(), key=lambda s: s.id):
        lines.append(
            f"ok  {sequence.path}: {sequence.id} v{sequence.version}, {len(sequence.steps)} steps"
        )
    lines += _broadcasts(content, settings, problems)
    for name, attribute in RULES:
        path: Path = getattr(settings, attribute)
        variable = f"NURTURE_{name.upper()}_FILE"
        if getattr(content, name) is not None:
            lines.append(f"ok  {path}: {name}")
        elif not path.exists():
            if environ.get(variable):  # asked for by name: a typo, not a choice
                problems.append(
                    Problem(str(path), 1, f"no such file ({variable}): {name} would be off")
                )
            else:
                lines.append(f"off {path}: {name} (no such file; set {variable} to use one)")
    line, found = recycle(settings.recycle_sequence, content, settings.sequences_dir)
    lines += [line] if line else []
    problems += found
    lines += [f"css {report}" for report in content.templates.inlining_report()]
    if settings.double_opt_in_forms:
        problems += confirmation_problems(settings)
    return Checked(tuple(lines), tuple(sorted(set(problems))))


def _broadcasts(content: Content, settings: Settings, problems: list[Problem]) -> list[str]:
    """The broadcast files, checked like sequences (docs/broadcasts.md)."""
    from nurture.core.broadcast_parser import load_broadcasts

    live = frozenset(s.id for s in content.live())
    loaded = load_broadcasts(settings.broadcasts_dir, content.templates, live)
    problems.extend(loaded.problems)
    return [
        f"ok  {b.path}: broadcast {b.id} v{b.version}, {b.schedule}"
        for b in sorted(loaded.broadcasts.values(), key=lambda b: b.id)
    ]


def entered_when_recycled(sequence: Sequence) -> bool:
    return any(
        t.kind == TriggerKind.STAGE_REACHED and t.stage == "recycled" for t in sequence.triggers
    )


def recycle(recycle: str | None, content: Content, folder: Path) -> tuple[str, list[Problem]]:
    """Where leads rejected by sales go back to: said, and refused when it cannot work
    (no such live sequence, or one a lead that was in it may never enter again)."""
    if recycle is None:
        catching = [s for s in content.live() if entered_when_recycled(s)]
        if not catching:
            why = (
                "leads sales reject or lose would be nurtured in no sequence: set"
                " NURTURE_RECYCLE_SEQUENCE, or enter a sequence on `stage_reached: recycled`"
            )
            return "", [Problem(str(folder), 0, why)]
        blocked = [s for s in catching if not s.reentry.allowed]
        if blocked:
            why = (
                f"{blocked[0].id} is entered when sales recycle a lead, but a lead never"
                " enters it twice (no reentry): a lead recycled a second time would land"
                " nowhere; give it `reentry: {after: ...}`"
            )
            return "", [Problem(blocked[0].path, 1, why)]
        names = ", ".join(s.id for s in catching)
        return f"ok  leads sales reject or lose enter {names} (stage_reached: recycled)", []
    sequence = content.get(recycle)
    if sequence is None:
        why = f"NURTURE_RECYCLE_SEQUENCE={recycle}: no such live sequence; rejected leads"
        return "", [Problem(str(folder), 0, why + " would be put back in none")]
    if not sequence.reentry.allowed:
        why = (
            f"NURTURE_RECYCLE_SEQUENCE names {recycle}, which a lead never enters twice"
            " (no reentry): a lead that was in it once could not be recycled into it;"
            " give it `reentry: {after: ...}`"
        )
        return "", [Problem(sequence.path, 1, why)]
    after = sequence.reentry.cooldown or "leaving"
    return f"ok  NURTURE_RECYCLE_SEQUENCE: {recycle}, re-entered after {after}", []


def confirmation_problems(settings: Settings) -> list[Problem]:
    """The double opt-in email must load and render in every language it is sent in."""
    from nurture.composing import sender_of
    from nurture.confirmation import load_template
    from nurture.core.confirmation import ConfirmationEmail, TemplateError, compose

    found: list[Problem] = []
    for locale in ("en", "fr"):
        try:
            template = load_template(settings.templates_dir, locale)
            sample = ConfirmationEmail(
                message_id="check@nurture.invalid", to_email="someone@example.com",
                first_name="Camille", form="newsletter",
                confirm_url=f"{settings.base_url}/forms/confirm/x", days=7,
                sender=sender_of(settings), reply_to=None,
                date=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
            )  # fmt: skip
            compose(template, sample)
        except (FileNotFoundError, TemplateError) as error:
            where = str(settings.templates_dir / "forms" / "form_confirmation" / locale)
            found.append(Problem(where, 1, f"double opt-in email: {error}"))
    return found
