"""The layer rule: the pure core imports no web framework, ORM or scheduler."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "nurture" / "core"
FORBIDDEN = ("flask", "sqlalchemy", "apscheduler", "werkzeug", "smtplib", "socket", "nurture.")
ALLOWED_INSIDE = "nurture.core"


@pytest.mark.parametrize("module", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(module: Path) -> None:
    tree = ast.parse(module.read_text(), filename=str(module))
    bad = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name.startswith(ALLOWED_INSIDE):
                continue
            if any(name == f.rstrip(".") or name.startswith(f) for f in FORBIDDEN):
                bad.append(name)
    assert not bad, f"{module.name} imports {bad}: the core must stay pure"


def test_core_never_reads_the_clock() -> None:
    offenders = [
        p.name
        for p in CORE.glob("*.py")
        if "datetime.now(" in p.read_text() or "utcnow(" in p.read_text()
    ]
    assert offenders == []
