"""``shopsearch demo``: the whole job end to end on the bundled, SYNTHETIC demo shop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from shopsearch.cli.common import console, out

DEMO_TEXT_FIELDS = ("title", "brand", "color", "category", "attributes")


def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the dataset, index and report.")] = Path(
        "demo-out"
    ),
    products: Annotated[int, typer.Option(help="Products in the generated shop.")] = 5000,
    queries: Annotated[int, typer.Option(help="Judged queries in the generated shop.")] = 1500,
    seed: Annotated[int, typer.Option(help="Generator seed (the same seed gives the same shop).")] = 13,
    n_resamples: Annotated[int, typer.Option(help="Resamples for the significance tests.")] = 5000,
) -> None:
    """Generate the SYNTHETIC demo shop, import it, build BM25 + dense indexes, evaluate BM25,
    the off-the-shelf encoder and their hybrid per stratum with significance tests, and write a
    JSON/Markdown/HTML report. Needs no data of your own and no network."""
    from shopsearch.config import DataSettings, EvalSettings, ShopsearchConfig
    from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
    from shopsearch.data.render import ProductTextRenderer
    from shopsearch.data.store import save_dataset
    from shopsearch.eval.pipeline import run_evaluation
    from shopsearch.retrieval.store import build_index

    start = time.perf_counter()
    console.rule("[bold]shopsearch demo[/] — a SYNTHETIC shop, generated; not real shop data")
    with console.status("generating the demo shop"):
        dataset = generate_demo_shop(DemoShopConfig(n_products=products, n_queries=queries, seed=seed))
    s = dataset.summary()
    console.print(f"1/4 generated {s['products']:,} products, {s['queries']:,} queries, {s['judgments']:,} judgments")

    data_dir = save_dataset(dataset, output / "dataset")
    console.print(f"2/4 imported to {data_dir}")

    renderer = ProductTextRenderer(fields=DEMO_TEXT_FIELDS)
    index_dir = build_index(dataset.catalog, output / "index", renderer=renderer)
    console.print(f"3/4 index built in {index_dir}")

    settings = ShopsearchConfig(
        data=DataSettings(catalog=data_dir, format="shopsearch", text_fields=list(DEMO_TEXT_FIELDS)),
        eval=EvalSettings(
            systems=["bm25", "dense", "hybrid"],
            n_resamples=n_resamples,
            json=output / "report.json",
            html=output / "report.html",
            markdown=output / "report.md",
        ),
    )
    report = run_evaluation(dataset, settings, index_dir=index_dir)
    console.print("4/4 evaluated")
    out.print(report.to_markdown(full=False), soft_wrap=True)
    console.rule()
    console.print(f"SYNTHETIC demo shop — report: [bold]{(output / 'report.html').resolve()}[/]")
    console.print(f"JSON: {output / 'report.json'}   Markdown: {output / 'report.md'}")
    console.print(f'try: shopsearch search --index {index_dir} "black leather sofa"')
    console.print(f"done in {time.perf_counter() - start:.0f} s")
