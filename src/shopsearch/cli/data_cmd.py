"""``shopsearch data``: import a catalogue and judgments into a normalised Parquet dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopsearch.cli.common import (
    CatalogOpt,
    ConfigOpt,
    FormatOpt,
    GainOpt,
    JudgmentsOpt,
    OnErrorOpt,
    QueriesOpt,
    RelevantMinOpt,
    SchemeOpt,
    console,
    load_data,
)
from shopsearch.config import merge_settings

app = typer.Typer(help="Import and inspect datasets.", no_args_is_help=True)


@app.command("import")
def import_(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (Parquet + manifest + bad-row report).")],
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    format: FormatOpt = None,
    scheme: SchemeOpt = None,
    gain: GainOpt = None,
    relevant_min: RelevantMinOpt = None,
    on_error: OnErrorOpt = None,
    locale: Annotated[str | None, typer.Option(help="ESCI: product locale to keep (us, es, jp).")] = None,
    split: Annotated[str | None, typer.Option(help="ESCI: split to keep (train, test).")] = None,
    small_version: Annotated[
        bool | None, typer.Option("--small-version/--large-version", help="ESCI: keep only the small (task 1) version.")
    ] = None,
    encoding: Annotated[str | None, typer.Option(help="Text encoding of CSV inputs (default: detected per format).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Read a catalogue and judgments in any supported format, validate every row, and write the
    normalised dataset as Parquet for fast reuse. Bad rows are counted and written to
    bad_rows.jsonl in the output directory, never dropped silently."""
    from shopsearch.data import save_dataset

    settings = merge_settings(
        config,
        data=dict(
            catalog=catalog, judgments=judgments, queries=queries, format=format, scheme=scheme, gain=gain,
            relevant_min=relevant_min, on_error=on_error, locale=locale, split=split,
            small_version=small_version, encoding=encoding,
        ),
    )
    dataset = load_data(settings.data)
    path = save_dataset(dataset, out)
    console.print(f"wrote [bold]{path}[/] ({len(dataset.report)} bad rows reported in {path / 'bad_rows.jsonl'})")
