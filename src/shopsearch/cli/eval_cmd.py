"""``shopsearch eval``: compare retrieval systems on judged queries, per stratum, with significance."""

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
    TextFieldOpt,
    console,
    data_flags,
    load_data,
    out,
)
from shopsearch.config import merge_settings


def evaluate(
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    format: FormatOpt = None,
    scheme: SchemeOpt = None,
    gain: GainOpt = None,
    relevant_min: RelevantMinOpt = None,
    on_error: OnErrorOpt = None,
    text_field: TextFieldOpt = None,
    system: Annotated[
        list[str] | None,
        typer.Option(
            "--system", "-s",
            help="bm25 | dense | dense:MODEL_PATH | hybrid | hybrid:rrf | hybrid:coverage (BM25's weight scaled "
            "per query by the share of its words BM25 knows; for a trained model), each optionally with +spell (queries "
            "spelling-corrected against the catalogue first, e.g. hybrid+spell), repeatable; the first is the "
            "baseline (default: bm25, dense, hybrid).",
        ),
    ] = None,
    index: Annotated[
        Path | None, typer.Option(help="Reuse a built index directory instead of encoding the catalogue again.")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option(help="full (search the whole catalogue; unjudged = grade 0) | rerank (judged only).")
    ] = None,
    depth: Annotated[int | None, typer.Option(help="Retrieval depth per query (>= the largest cutoff).")] = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", help="e.g. ndcg@10, recall@100, mrr@10, map@10, auc.")] = None,
    baseline: Annotated[str | None, typer.Option(help="System the others are tested against (default: the first).")] = None,
    n_resamples: Annotated[int | None, typer.Option(help="Randomisation/bootstrap resamples.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the resampling.")] = None,
    proxy: Annotated[
        str | None, typer.Option(help="Frequency proxy when queries have no traffic counts: idf | length.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report with plots.")] = None,
    markdown_out: Annotated[Path | None, typer.Option("--markdown", help="Write the Markdown tables.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Evaluate systems on judged queries: NDCG/Recall/MRR/MAP/AUC overall, per query-frequency
    stratum, vertical and query type, with paired randomisation tests and bootstrap confidence
    intervals against the baseline (Holm-corrected). Prints the Markdown table."""
    from shopsearch.eval.pipeline import run_evaluation

    strata = {"proxy": proxy} if proxy else None
    settings = merge_settings(
        config,
        data=data_flags(
            catalog=catalog, judgments=judgments, queries=queries, format=format, scheme=scheme, gain=gain,
            relevant_min=relevant_min, on_error=on_error, text_field=text_field,
        ),
        eval=dict(
            systems=system, protocol=protocol, depth=depth, metrics=metric, baseline=baseline,
            n_resamples=n_resamples, seed=seed, strata=strata, json=json_out, html=html_out, markdown=markdown_out,
        ),
    )
    dataset = load_data(settings.data)
    report = run_evaluation(dataset, settings, index_dir=index)
    out.print(report.to_markdown(full=False), soft_wrap=True)
    for label, path in (("JSON", settings.eval.json_out), ("HTML", settings.eval.html_out), ("Markdown", settings.eval.markdown_out)):
        if path is not None:
            console.print(f"{label} report: [bold]{path}[/]")
