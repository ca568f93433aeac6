"""The dependency floors exclude releases with known fixes missing, and the lock file
pins a version of every runtime dependency that the floors allow."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# Releases that fix security problems: anything older must not install.
FIXED = {"werkzeug": "3.0.6", "jinja2": "3.1.6"}


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = (Requirement(line) for line in project["dependencies"])
    return {canonicalize_name(r.name): r for r in found}


def locked() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version.strip())
    return pins


def test_the_floors_exclude_releases_with_known_vulnerabilities() -> None:
    declared = requirements()
    for name, fixed in FIXED.items():
        *head, last = Version(fixed).release
        before = ".".join(str(n) for n in (*head, last - 1))  # 3.1.6 -> 3.1.5
        specifier = declared[name].specifier
        assert not specifier.contains(before), f"{name} {before} must not install"
        assert specifier.contains(fixed), name


def test_the_lock_file_pins_every_dependency_within_its_floor() -> None:
    pins = locked()
    for name, requirement in requirements().items():
        assert name in pins, f"{name} is not in requirements.lock: run .ci/lock"
        assert requirement.specifier.contains(pins[name]), (name, str(pins[name]))
