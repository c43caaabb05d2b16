"""``shopsearch demo``: the whole job end to end on the bundled, SYNTHETIC demo shop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from shopsearch.cli.common import console, out

DEMO_TEXT_FIELDS = ("title", "brand", "color", "category", "attributes")
# Sized for the 10-minute demo on 2 CPU cores: one epoch per stage, short texts, few pairs per query.
DEMO_TRAIN_CONFIG = {
    "encoder": {"max_seq_length": 64},
    "stage1": {"batch_size": 32, "hard_negatives": 1, "mining_top_k": 20, "max_pairs_per_query": 2},
    "stage2": {"batch_size": 16, "max_group_size": 4, "max_per_grade": 2},
    "dev": {"pool_size": None},
    "save_steps": 1000,
}


def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the dataset, index and report.")] = Path(
        "demo-out"
    ),
    products: Annotated[int, typer.Option(help="Products in the generated shop.")] = 3000,
    queries: Annotated[int, typer.Option(help="Judged queries in the generated shop.")] = 1000,
    seed: Annotated[int, typer.Option(help="Generator seed (the same seed gives the same shop).")] = 13,
    n_resamples: Annotated[
        int, typer.Option(help="Resamples for the significance tests (enough for Holm across the report's tests).")
    ] = 20000,
    train: Annotated[bool, typer.Option("--train/--no-train", help="Train the two-stage encoder on the demo's train queries.")] = True,
    dev_fraction: Annotated[float, typer.Option(help="Share of the queries held out for evaluation.")] = 0.2,
) -> None:
    """Generate the SYNTHETIC demo shop, import it, build BM25 + dense indexes, train the two-stage
    encoder (masked InfoNCE, then ROAR) on its train queries, and evaluate BM25, the off-the-shelf
    encoder, the trained one and the hybrid on the held-out queries per stratum with significance
    tests; writes a JSON/Markdown/HTML report. Needs no data of your own and no network."""
    from shopsearch.cli.train_cmd import split_by_query
    from shopsearch.config import DataSettings, EvalSettings, ShopsearchConfig
    from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
    from shopsearch.data.render import ProductTextRenderer
    from shopsearch.data.store import save_dataset
    from shopsearch.eval.pipeline import run_evaluation
    from shopsearch.retrieval.store import build_index
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.trainer import train as train_encoder

    start = time.perf_counter()
    console.rule("[bold]shopsearch demo[/] — a SYNTHETIC shop, generated; not real shop data")
    with console.status("generating the demo shop"):
        dataset = generate_demo_shop(DemoShopConfig(n_products=products, n_queries=queries, seed=seed))
    s = dataset.summary()
    console.print(f"1/5 generated {s['products']:,} products, {s['queries']:,} queries, {s['judgments']:,} judgments")

    data_dir = save_dataset(dataset, output / "dataset")
    console.print(f"2/5 imported to {data_dir}")

    renderer = ProductTextRenderer(fields=DEMO_TEXT_FIELDS)
    index_dir = build_index(dataset.catalog, output / "index", renderer=renderer)
    console.print(f"3/5 index built in {index_dir}")

    train_set, dev_set = split_by_query(dataset, dev_fraction, seed)
    systems = ["bm25", "dense", "hybrid"]
    if train:
        config = TrainConfig.model_validate(DEMO_TRAIN_CONFIG | {"text_fields": list(DEMO_TEXT_FIELDS), "seed": seed})
        result = train_encoder(train_set, config, output / "train", dev_set=dev_set, resume=False)
        systems = ["bm25", f"dense:{result.model_dir}", "dense", "hybrid"]
        console.print(f"4/5 trained on {len(train_set.queries):,} queries: {result.model_dir}")
    else:
        console.print("4/5 training skipped (--no-train)")

    settings = ShopsearchConfig(
        data=DataSettings(catalog=data_dir, format="shopsearch", text_fields=list(DEMO_TEXT_FIELDS)),
        eval=EvalSettings(
            systems=systems,
            n_resamples=n_resamples,
            json_out=output / "report.json",
            html_out=output / "report.html",
            markdown_out=output / "report.md",
        ),
    )
    report = run_evaluation(dev_set, settings, index_dir=index_dir)
    console.print(f"5/5 evaluated on {len(dev_set.queries):,} held-out queries")
    out.print(report.to_markdown(full=False), soft_wrap=True)
    console.rule()
    console.print(f"SYNTHETIC demo shop — report: [bold]{(output / 'report.html').resolve()}[/]")
    console.print(f"JSON: {output / 'report.json'}   Markdown: {output / 'report.md'}")
    console.print(f'try: shopsearch search --index {index_dir} "black leather sofa"')
    console.print(f"done in {time.perf_counter() - start:.0f} s")
