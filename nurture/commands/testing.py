"""Testing and tooling for authors: `nurture test` plays scenario files against the
sequences, `nurture schema` prints the JSON Schema of each file language."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nurture.cli import _runtime, cli
from nurture.core.schema import languages


@cli.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--verbose", "-v", is_flag=True, help="Print each scenario's journey too.")
@click.pass_context
def run_scenarios(ctx: click.Context, paths: tuple[Path, ...], verbose: bool) -> None:
    """Run scenario files (default: tests/sequences/ beside the sequences folder)
    against the sequence files; exit 1 if one fails."""
    from nurture import scenarios

    settings = _runtime(ctx).settings
    named = list(paths) or [scenarios.default_folder(settings.sequences_dir)]
    missing = [str(path) for path in named if not path.exists()]
    if missing:
        raise click.ClickException(f"no such file or folder: {', '.join(missing)}")
    cap = settings.frequency_cap
    results = scenarios.run_all(
        named, settings.sequences_dir, cap.emails, cap.days, settings.scoring_file
    )
    if not results:
        raise click.ClickException(f"no scenario file (*.yaml) in {', '.join(map(str, named))}")
    for result in results:
        click.echo(f"{'ok  ' if result.passed else 'FAIL'} {result.path}: {result.name}")
        for failure in result.failures:
            click.echo(f"     {failure}")
        if verbose or not result.passed:
            for entry in result.timeline:
                click.echo(f"       {entry.local:<26} {entry.what}")
    failed = sum(1 for result in results if not result.passed)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        sys.exit(1)


@cli.command()
@click.argument(
    "language",
    required=False,
    type=click.Choice(list(languages())),
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write <language>.json files to this folder.",
)
def schema(language: str | None, output: Path | None) -> None:
    """Print (or write) the JSON Schema of a file language, or of all of them."""
    from nurture.core.schema import dumps, json_schema

    chosen = {name: lang for name, lang in languages().items() if language in (None, name)}
    if output is None:
        if len(chosen) != 1:
            raise click.UsageError("name a language to print, or give --output to write them all")
        click.echo(dumps(json_schema(next(iter(chosen.values())))), nl=False)
        return
    output.mkdir(parents=True, exist_ok=True)
    for name, lang in chosen.items():
        target = output / f"{name}.json"
        target.write_text(dumps(json_schema(lang)), encoding="utf-8")
        click.echo(f"wrote {target}")
