"""``shopsearch search``: query an index from the shell, one-shot or interactively."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shopsearch.cli.common import console, out


def search(
    query: Annotated[list[str] | None, typer.Argument(help="Query text; leave out for an interactive prompt.")] = None,
    index: Annotated[Path, typer.Option("--index", "-i", help="Index directory from `shopsearch index build`.")] = Path(
        "index"
    ),
    mode: Annotated[str, typer.Option("--mode", "-m", help="dense | bm25 | hybrid")] = "hybrid",
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="Number of results.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON lines.")] = False,
    spell: Annotated[
        bool, typer.Option("--spell/--no-spell", help="Correct words no product uses to catalogue words first.")
    ] = True,
) -> None:
    """Search an index. With a query, print its top k and exit; without, read queries from a
    prompt until an empty line or Ctrl-D."""
    import json

    from shopsearch.retrieval.spelling import CatalogSpellCorrector
    from shopsearch.retrieval.store import load_index

    bundle = load_index(index)
    retriever = bundle.retriever(mode)  # type: ignore[arg-type]
    products = bundle.products.set_index("product_id")
    speller = CatalogSpellCorrector.from_products(bundle.products) if spell else None

    def show(typed: str) -> None:
        text = speller.correct(typed) if speller is not None else typed
        if text != typed and not as_json:
            console.print(f"showing results for [bold]{text}[/] (--no-spell searches {typed!r} as typed)")
        result = retriever.search([text], k)
        ids, scores = result.row(0)
        if as_json:
            for rank, (pid, score) in enumerate(zip(ids, scores, strict=True), 1):
                title = str(products.at[pid, "title"]) if pid in products.index else ""
                typer.echo(json.dumps({"query": typed, "searched": text, "rank": rank, "product_id": pid, "score": score, "title": title}))
            return
        table = Table(title=f"{mode}: {text!r}", show_lines=False)
        for col in ("#", "score", "product", "title"):
            table.add_column(col)
        for rank, (pid, score) in enumerate(zip(ids, scores, strict=True), 1):
            title = str(products.at[pid, "title"]) if pid in products.index else ""
            table.add_row(str(rank), f"{score:.4f}", pid, title)
        out.print(table if ids else f"no results for {text!r}")

    if query:
        show(" ".join(query))
        return
    console.print(f"[bold]{len(bundle.product_ids):,}[/] products, mode {mode}. Empty line or Ctrl-D to quit.")
    while True:
        try:
            text = input("query> ").strip()
        except EOFError:
            break
        if not text:
            break
        show(text)
