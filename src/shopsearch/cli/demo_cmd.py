"""``shopsearch demo``: the whole job end to end on the bundled, SYNTHETIC demo shop."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from shopsearch.artifacts import atomic_write_text
from shopsearch.cli.common import console, out

DEMO_TEXT_FIELDS = ("title", "brand", "color", "category", "attributes")
# Sized for the 10-minute demo on 2 CPU cores: one epoch per stage, short texts, few pairs per query,
# pseudo-queries for a third as many products as judged pairs (the default ratio would add 72%).
DEMO_TRAIN_CONFIG = {
    "encoder": {"max_seq_length": 64},
    "stage1": {"batch_size": 32, "hard_negatives": 1, "mining_top_k": 20, "max_pairs_per_query": 2,
               "pseudo_query_ratio": 0.34},
    "stage2": {"batch_size": 16, "max_group_size": 4, "max_per_grade": 2, "epochs": 1.0},
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
    synth: Annotated[
        bool,
        typer.Option("--synth/--no-synth", help="Run a small synthesis pass (long-tail seeds -> LLM rewrites -> judged pairs) "
                     "and train with its pairs."),
    ] = True,
    dev_fraction: Annotated[float, typer.Option(help="Share of the queries held out for evaluation.")] = 0.2,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Then start the search service and page on the demo index.")
    ] = False,
    host: Annotated[str, typer.Option(help="With --serve: interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="With --serve: TCP port.")] = 8000,
) -> None:
    """Generate the SYNTHETIC demo shop, import it, build BM25 + dense indexes, train the two-stage
    encoder (masked InfoNCE, then ROAR) on its train queries, and evaluate BM25, the off-the-shelf
    encoder, the trained one and the hybrid on the held-out queries per stratum with significance
    tests; writes a JSON/Markdown/HTML report. Needs no data of your own and no network. With
    --serve, then serves the demo index (search page with grades, events, side-by-side judging)."""
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
    extra: dict[str, Any] = {}
    steps: dict[str, dict[str, Any]] = {}
    if synth:
        from shopsearch.synthesis.demo import run_demo_synthesis, summary_lines
        from shopsearch.synthesis.llm.base import LLMError

        clock = time.perf_counter()
        try:
            # seeds and the business judge read the TRAIN split only: held-out queries stay unseen
            made = run_demo_synthesis(train_set, output / "synthesis", index_dir=index_dir, progress=False)
        except LLMError as exc:
            # The LLM is an optional native component: its failure costs the synthetic pairs, not the demo.
            steps["synthesis"] = {"status": "failed", "reason": str(exc)}
            console.print(f"3b  [bold yellow]synthesis step failed[/]: {escape(str(exc))}", highlight=False)
            console.print("    going on without synthetic pairs (the other steps do not need them)")
        else:
            for line in summary_lines(made):
                console.print(f"    {line}", highlight=False)
            extra = {"extra_pairs": [str(made["pairs_file"])]}
            steps["synthesis"] = {"status": "ok", "pairs_file": str(made["pairs_file"]),
                                  "backend": made["backend"]}
            console.print(f"3b  synthetic pairs: {made['pairs_file']}")
        steps["synthesis"]["seconds"] = round(time.perf_counter() - clock, 1)
    else:
        steps["synthesis"] = {"status": "skipped", "reason": "--no-synth"}
    systems = ["bm25", "dense", "hybrid"]
    if train:
        config = TrainConfig.model_validate(
            DEMO_TRAIN_CONFIG | {"text_fields": list(DEMO_TEXT_FIELDS), "seed": seed} | extra
        )
        result = train_encoder(train_set, config, output / "train", dev_set=dev_set, resume=False)
        systems = ["bm25", f"dense:{result.model_dir}", "dense", "hybrid"]
        console.print(f"4/5 trained on {len(train_set.queries):,} queries: {result.model_dir}")
    else:
        console.print("4/5 training skipped (--no-train)")
    steps["train"] = {"status": "ok", "model": str(result.model_dir)} if train else {"status": "skipped"}

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
    steps["evaluate"] = {"status": "ok", "report": str(output / "report.json")}
    write_steps(output, steps, time.perf_counter() - start)
    failed = [name for name, step in steps.items() if step["status"] == "failed"]
    if failed:
        console.print(f"[bold yellow]done with {len(failed)} failed optional step(s)[/]: {', '.join(failed)} "
                      f"(reasons above and in {output / 'steps.json'})", highlight=False)
    console.print(f"done in {time.perf_counter() - start:.0f} s")
    options = serve_options(output, index_dir, data_dir)
    if not serve:
        console.print("search page, event log and side-by-side judging on the demo index:")
        console.print(f"  {serve_command(options)}", soft_wrap=True, highlight=False)
        console.print("  then open http://127.0.0.1:8000/   (or run: shopsearch demo --serve)", highlight=False)
        return
    from shopsearch.cli.serve_cmd import serve as run_server

    console.rule("[bold]serving the demo index[/] — Ctrl+C stops it")
    console.print(f"open http://{host}:{port}/", highlight=False)
    run_server(host=host, port=port, **options)  # prints the URL again once the index is loaded


def write_steps(output: Path, steps: dict[str, dict[str, Any]], seconds: float) -> Path:
    """``output/steps.json``: each step's status (ok / failed / skipped), and why a step failed."""
    path = output / "steps.json"
    atomic_write_text(path, json.dumps({"steps": steps, "seconds": round(seconds, 1)}, indent=2) + "\n")
    return path


def serve_options(output: Path, index_dir: Path, data_dir: Path) -> dict[str, Any]:
    """``shopsearch serve`` settings for the demo's outputs: its index, its judgments (grades on the
    page), and event and side-by-side stores beside them."""
    return {
        "index": index_dir,
        "judgments": data_dir,
        "format": "shopsearch",
        "events_db": output / "events.db",
        "sbs_db": output / "sbs.db",
    }


def serve_command(options: dict[str, Any]) -> str:
    """The ``shopsearch serve`` command line for ``options`` (paths quoted for a POSIX shell)."""
    return "shopsearch serve " + " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in options.items())
