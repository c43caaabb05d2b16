"""Pieces every command shares: the console, option types, loading data from settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from shopsearch.config import DataSettings
from shopsearch.data.schema import Dataset

console = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML/TOML/JSON config file; flags override it.", show_default=False)
]
CatalogOpt = Annotated[
    Path | None,
    typer.Option(help="Catalogue file (products.csv, ESCI products parquet, WANDS product.csv, ...) or a saved dataset dir."),
]
JudgmentsOpt = Annotated[
    Path | None, typer.Option(help="Judgments file (judgments_dev.csv, ESCI examples parquet, WANDS label.csv, ...).")
]
QueriesOpt = Annotated[Path | None, typer.Option(help="Queries file, for formats that keep them apart (WANDS query.csv).")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", "-f", help="homedepot | esci | wands | generic | shopsearch (default: detected).")
]
SchemeOpt = Annotated[
    str | None, typer.Option(help="Grade scheme: esci (E3 S2 C1 I0) | wands (2/1/0) | mean-rating (round(3*(r-1))).")
]
GainOpt = Annotated[str | None, typer.Option(help="NDCG gain: linear (grade) | exponential (2^grade - 1).")]
RelevantMinOpt = Annotated[int | None, typer.Option(help="Smallest grade counted relevant by Recall/MRR/MAP/AUC.")]
OnErrorOpt = Annotated[
    str | None, typer.Option(help="Bad rows: report (count, write a report, go on) | raise (stop at the first).")
]
TextFieldOpt = Annotated[
    list[str] | None, typer.Option("--text-field", help="Product field rendered for search, repeatable, in order.")
]


def data_flags(**flags: Any) -> dict[str, Any]:
    """Flags of the data section, with the CLI's names mapped to the settings' names."""
    if flags.get("text_field"):
        flags["text_fields"] = flags.pop("text_field")
    flags.pop("text_field", None)
    return flags


def load_data(settings: DataSettings) -> Dataset:
    """Load the dataset the settings point at and print a one-line summary of bad rows."""
    from shopsearch.data import load_dataset

    if settings.catalog is None and settings.judgments is None:
        raise typer.BadParameter("give --catalog and/or --judgments (or a config file with a data section)")
    mapping = None
    if settings.mapping is not None:
        from shopsearch.data import ColumnMapping

        mapping = ColumnMapping(**settings.mapping)
    with console.status("loading data"):
        dataset = load_dataset(
            catalog=settings.catalog,
            judgments=settings.judgments,
            queries=settings.queries,
            format=settings.format,
            scheme=settings.grade_scheme(),
            mapping=mapping,
            on_error=settings.on_error,
            locale=settings.locale,
            small_version=settings.small_version,
            split=settings.split,
            encoding=settings.encoding,
        )
    s = dataset.summary()
    console.print(
        f"[bold]{dataset.meta.get('format', '?')}[/]: {s['products']:,} products, {s['queries']:,} queries, "
        f"{s['judgments']:,} judgments; grade scheme {dataset.scheme.name} ({dataset.scheme.description})"
    )
    if dataset.synthetic:
        console.print("[yellow]SYNTHETIC data (the demo shop), not a real shop's[/]")
    if len(dataset.report):
        console.print(f"[yellow]bad rows:[/] {dataset.report.summary(limit=5)}")
    return dataset


def nest_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """``{"stage1.loss": "infonce"}`` -> ``{"stage1": {"loss": "infonce"}}``; a flag that was not
    given (None or an empty list) is left out, so it cannot override the config file."""
    nested: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None or value == []:
            continue
        *path, last = key.split(".")
        node = nested
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, section by section (config file < flags)."""
    merged = dict(base)
    for k, v in over.items():
        merged[k] = deep_merge(merged.get(k) or {}, v) if isinstance(v, dict) else v
    return merged
