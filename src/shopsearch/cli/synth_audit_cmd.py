"""``shopsearch synth audit``: the precision of synthetic pairs on held-back judgments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shopsearch.cli.common import (
    CatalogOpt,
    ConfigOpt,
    FormatOpt,
    JudgmentsOpt,
    OnErrorOpt,
    QueriesOpt,
    console,
)
from shopsearch.cli.synth_common import load_dataset, summary_table


def audit_command(
    pairs: Annotated[Path, typer.Option(help="A `synth pairs` output directory or its pairs.parquet.")],
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = None,
    relevant_min: Annotated[
        int | None, typer.Option(help="Smallest relevant grade (default: the grade scheme's).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the audit as JSON.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Look up every synthetic (seed query, product) pair in judgments the pipeline never read (for
    instance dev judgments when the seeds were dev query texts; seed query ids must be the judgments'
    query ids) and report the share of the judged ones that are relevant, with a Wilson 95% interval,
    beside the same share over all judged products of those queries, per query type and retrieval
    source."""
    from shopsearch.artifacts import atomic_write_text
    from shopsearch.synthesis.audit import pair_precision
    from shopsearch.synthesis.pipeline import read_pairs

    dataset, _ = load_dataset(config, catalog=catalog, judgments=judgments, queries=queries, format=format,
                              on_error=on_error)
    audit = pair_precision(read_pairs(pairs), dataset.judgments, relevant_min=relevant_min)
    overall, pool = audit["overall"], audit["judged_pool"]
    summary_table(f"Synthetic pairs against {judgments or 'the judgments'}", [
        ("pairs", audit["pairs"]),
        ("judged", overall["judged"]),
        (f"precision (grade >= {audit['relevant_min']})",
         "n/a" if overall["precision"] is None else f"{overall['precision']:.3f} {overall['wilson_95']}"),
        ("judged pool of the same queries", "n/a" if pool["precision"] is None else f"{pool['precision']:.3f}"),
        *[(f"  {kind} {name}", "n/a" if v["precision"] is None else f"{v['precision']:.3f} of {v['judged']}")
          for kind in ("query_type", "source") for name, v in audit.get(f"by_{kind}", {}).items()],
    ])
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(audit, indent=2) + "\n")
        console.print(f"JSON: [bold]{json_out}[/]")
