"""Run scenario files against the sequence files on disk: `nurture test`, and pytest.

    from nurture import scenarios

    def test_journeys() -> None:
        for result in scenarios.run_all("tests/sequences"):
            assert result.passed, "\\n".join(map(str, result.failures))

A scenario names its sequence by id; the sequences are read from `sequences_dir`
(by default the `sequences/` folder next to the `tests/` folder holding the scenario).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from nurture.core.problems import Problem
from nurture.core.scenario import parse_scenario
from nurture.core.scenario_check import ScenarioResult, check
from nurture.core.scoring_parser import SCORING_FILE, load_scoring
from nurture.core.sequence_parser import load_directory
from nurture.core.yamlsource import read_text

__all__ = ["Problem", "ScenarioResult", "default_folder", "files", "run", "run_all"]


def default_folder(sequences_dir: Path) -> Path:
    """Where scenarios live for a sequences folder: `tests/sequences/` beside it."""
    return sequences_dir.parent / "tests" / "sequences"


def _sequences_for(scenario: Path) -> Path:
    # tests/sequences/x.yaml -> sequences/
    return scenario.resolve().parent.parent.parent / "sequences"


def files(paths: Iterable[str | Path]) -> list[Path]:
    """The scenario files named, a folder standing for its `*.yaml` / `*.yml` files."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(
                sorted(
                    entry
                    for entry in path.iterdir()
                    if entry.suffix in (".yaml", ".yml") and not entry.name.startswith(".")
                )
            )
        else:
            found.append(path)
    return found


def run(
    path: str | Path,
    sequences_dir: str | Path | None = None,
    cap_emails: int | None = None,
    cap_days: int = 7,
    scoring_file: str | Path | None = None,
) -> ScenarioResult:
    """One scenario file's result; a file that cannot be read or parsed, or that names
    a sequence that does not load, fails with the problems found.

    The lead is scored with `scoring_file` (by default `rules/scoring.yaml` of the
    sequences folder, when there is one), as the engine scores it.
    """
    path = Path(path)
    folder = Path(sequences_dir) if sequences_dir is not None else _sequences_for(path)
    scoring_path = Path(scoring_file) if scoring_file is not None else folder / SCORING_FILE
    text, problem = read_text(path)
    if text is None:
        assert problem is not None
        return ScenarioResult(str(path), path.stem, (problem,))
    scenario, problems = parse_scenario(text, str(path))
    if scenario is None:
        return ScenarioResult(str(path), path.stem, problems)
    catalog = load_directory(folder)
    sequence = catalog.sequences.get(scenario.sequence)
    if sequence is None:
        broken = [str(p) for p in catalog.problems if Path(p.path).stem == scenario.sequence]
        why = f"; its file has problems: {'; '.join(broken)}" if broken else ""
        failure = Problem(
            scenario.path,
            scenario.sequence_line,
            f'sequence: no sequence "{scenario.sequence}" in {folder}{why}',
        )
        return ScenarioResult(scenario.path, scenario.name, (failure,))
    scoring = None
    if scoring_path.is_file():
        scored = load_scoring(scoring_path)
        if scored.model is None:
            why = "; ".join(str(problem) for problem in scored.problems)
            return ScenarioResult(
                scenario.path,
                scenario.name,
                (Problem(scenario.path, scenario.line, f"the scoring file does not load: {why}"),),
            )
        scoring = scored.model
    return check(scenario, sequence, cap_emails, cap_days, scoring)


def run_all(
    paths: str | Path | Iterable[str | Path],
    sequences_dir: str | Path | None = None,
    cap_emails: int | None = None,
    cap_days: int = 7,
    scoring_file: str | Path | None = None,
) -> list[ScenarioResult]:
    """Every scenario of the files and folders named, in order."""
    named = [paths] if isinstance(paths, (str, Path)) else list(paths)
    return [run(path, sequences_dir, cap_emails, cap_days, scoring_file) for path in files(named)]
