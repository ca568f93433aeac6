"""What the README shows works: every sequence in it passes `nurture validate`'s checks
against the shipped templates (a renamed template or step breaks this test, not a
newcomer's first try)."""

from __future__ import annotations

import re
from pathlib import Path

from nurture.core.rendering import TemplateCatalog
from nurture.core.sequence_parser import parse_sequence

ROOT = Path(__file__).resolve().parent.parent


def readme_sequences() -> list[tuple[int, str]]:
    """Each ```yaml block of the README that is a sequence, with its first line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M):
        block = match.group(1)
        if re.search(r"^steps:", block, flags=re.M):
            found.append((text.count("\n", 0, match.start()) + 2, block))
    return found


def test_every_sequence_the_readme_shows_is_valid() -> None:
    sequences = readme_sequences()
    assert sequences, "the README shows the sequence language by example"
    templates = TemplateCatalog(ROOT / "templates")
    for line, block in sequences:
        result = parse_sequence(block, f"README.md (block at line {line})", templates)
        assert result.problems == (), [str(problem) for problem in result.problems]
        assert result.sequence is not None and result.sequence.email_steps()
