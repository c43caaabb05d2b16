"""``shopsearch sbs``: side-by-side judging reports (GSB per pair of systems)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from shopsearch.cli.common import console, out

app = typer.Typer(help="Side-by-side judgments: blinded verdicts and GSB scores.", no_args_is_help=True)


def _f(x: float, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:+.{digits}f}"


@app.command("report")
def report(
    store: Annotated[Path, typer.Option("--store", "-s", help="Side-by-side store (SQLite) written by SbsStore.")],
    system_a: Annotated[str | None, typer.Option(help="System A (with --system-b; default: every pair found).")] = None,
    system_b: Annotated[str | None, typer.Option(help="System B.")] = None,
    rater: Annotated[str | None, typer.Option(help="Only this rater's verdicts.")] = None,
    n_resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples (over queries).")] = 10000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON.")] = None,
    markdown_out: Annotated[Path | None, typer.Option("--markdown", help="Write the Markdown table.")] = None,
) -> None:
    """GSB = (Good - Bad) / (Good + Same + Bad) of A against B, unblinded from the recorded sides,
    with a 95% bootstrap CI over queries, the sign-test p-value, and a check that raters do not
    favour the left or right side."""
    from shopsearch.artifacts import atomic_write_text
    from shopsearch.data.errors import DataError
    from shopsearch.eval.report import _clean
    from shopsearch.experiments.sbs import SbsStore, gsb, gsb_all

    if (system_a is None) != (system_b is None):
        raise typer.BadParameter("give both --system-a and --system-b, or neither")
    if not store.is_file():
        raise DataError("side-by-side store not found", file=store)
    with SbsStore(store) as s:
        verdicts = s.verdicts(rater=rater)
    kw = {"n_resamples": n_resamples, "seed": seed}
    results = [gsb(verdicts, system_a, system_b, **kw)] if system_a and system_b else gsb_all(verdicts, **kw)
    lines = [f"# Side-by-side report ({len(verdicts):,} verdicts{f' by {rater}' if rater else ''})", "",
             "| A | B | verdicts | queries | good | same | bad | GSB | 95% CI | p (sign) | left/right | p (side) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|"]
    for r in results:
        lines.append(f"| {r.system_a} | {r.system_b} | {r.n:,} | {r.queries:,} | {r.good:,} | {r.same:,} | {r.bad:,} | "
                     f"{_f(r.gsb)} | [{_f(r.ci[0])}, {_f(r.ci[1])}] | {r.p_value:.4f} | {r.left_wins}/{r.right_wins} | "
                     f"{r.position_p_value:.4f} |")
    if not results:
        lines.append("| – | – | 0 | 0 | 0 | 0 | 0 | – | | | | |")
    text = "\n".join(lines) + "\n\nGSB > 0: A preferred. p (side) < 0.05 flags raters favouring one side.\n"
    out.print(text, soft_wrap=True)
    if json_out is not None:
        payload = {"verdicts": len(verdicts), "rater": rater, "pairs": [r.to_dict() for r in results]}
        atomic_write_text(json_out, json.dumps(_clean(payload), indent=2, allow_nan=False) + "\n")
        console.print(f"JSON report: [bold]{json_out}[/]")
    if markdown_out is not None:
        atomic_write_text(markdown_out, text)
        console.print(f"Markdown report: [bold]{markdown_out}[/]")
