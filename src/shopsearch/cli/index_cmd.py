"""``shopsearch index``: build a search index directory (BM25 + dense FAISS) with a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopsearch.cli.common import (
    CatalogOpt,
    ConfigOpt,
    FormatOpt,
    OnErrorOpt,
    TextFieldOpt,
    console,
    data_flags,
    load_data,
)
from shopsearch.config import merge_settings

app = typer.Typer(help="Build and inspect search indexes.", no_args_is_help=True)


@app.command("build")
def build(
    output: Annotated[Path, typer.Option("--output", "-o", help="Index directory to write (replaced atomically).")],
    catalog: CatalogOpt = None,
    format: FormatOpt = None,
    model: Annotated[
        str | None, typer.Option(help="Encoder: a sentence-transformers directory (default: bundled all-MiniLM-L6-v2).")
    ] = None,
    system: Annotated[list[str] | None, typer.Option(help="bm25 and/or dense, repeatable (default: both).")] = None,
    kind: Annotated[str | None, typer.Option(help="FAISS index: flat (exact inner product) | hnsw | ivfpq.")] = None,
    hnsw_m: Annotated[int | None, typer.Option(help="HNSW: links per node.")] = None,
    ef_search: Annotated[int | None, typer.Option(help="HNSW: search breadth.")] = None,
    nlist: Annotated[int | None, typer.Option(help="IVF-PQ: number of clusters (default about 4*sqrt(n)).")] = None,
    pq_m: Annotated[int | None, typer.Option(help="IVF-PQ: sub-quantisers (must divide the dimension).")] = None,
    nprobe: Annotated[int | None, typer.Option(help="IVF-PQ: clusters visited per query.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Encoding batch size.")] = None,
    text_field: TextFieldOpt = None,
    on_error: OnErrorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Encode the catalogue and write an index directory: products.parquet, BM25 (bm25s), dense
    vectors with a FAISS index, and a manifest (model, dimension, normalisation, product ids,
    checksums, build time, throughput). Serving and `shopsearch search` load it."""
    from shopsearch.data.render import ProductTextRenderer
    from shopsearch.retrieval.store import build_index

    settings = merge_settings(
        config,
        data=data_flags(catalog=catalog, format=format, on_error=on_error, text_field=text_field),
        index=dict(
            model=model, systems=system, kind=kind, hnsw_m=hnsw_m, ef_search=ef_search, nlist=nlist, pq_m=pq_m,
            nprobe=nprobe, batch_size=batch_size,
        ),
    )
    dataset = load_data(settings.data)
    idx = settings.index
    path = build_index(
        dataset.catalog,
        output,
        renderer=ProductTextRenderer(fields=tuple(settings.data.text_fields)),
        systems=tuple(idx.systems),
        model=idx.model,
        spec=idx.index_spec(),
        bm25_params={"k1": idx.k1, "b": idx.b},
        batch_size=idx.batch_size,
    )
    console.print(f"index written to [bold]{path}[/]")


@app.command("info")
def info(index: Annotated[Path, typer.Argument(help="Index directory.")]) -> None:
    """Check an index directory against its manifest and print what it holds."""
    import json

    from shopsearch.retrieval.store import load_index

    bundle = load_index(index)
    shown = {k: v for k, v in bundle.manifest.items() if k != "files"}
    console.print_json(json.dumps(shown, default=str))
    console.print(f"[green]ok[/]: {len(bundle.product_ids):,} products, all file checksums match")
