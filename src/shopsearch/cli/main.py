"""The ``shopsearch`` command: one typer app, one module per command group."""

from __future__ import annotations

import os
import sys

import typer

from shopsearch import __version__
from shopsearch.cli import (
    ab_cmd,
    data_cmd,
    demo_cmd,
    doctor_cmd,
    eval_cmd,
    index_cmd,
    model_cmd,
    reranker_cmd,
    sbs_cmd,
    search_cmd,
    serve_cmd,
    synth_cmd,
    train_cmd,
)
from shopsearch.cli.common import console

# Weights and data never come from a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

cli = typer.Typer(
    name="shopsearch",
    help="Semantic product search for e-commerce: load a catalogue and judgments, build BM25/dense/hybrid "
    "indexes, evaluate them per query-frequency stratum with significance tests, search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
cli.add_typer(data_cmd.app, name="data")
cli.add_typer(index_cmd.app, name="index")
cli.command("search")(search_cmd.search)
cli.command("eval")(eval_cmd.evaluate)
cli.command("train")(train_cmd.train)
cli.command("train-reranker")(reranker_cmd.train_reranker)
cli.add_typer(model_cmd.app, name="model")
cli.command("demo")(demo_cmd.demo)
cli.command("doctor")(doctor_cmd.doctor)
cli.command("serve")(serve_cmd.serve)
cli.add_typer(ab_cmd.app, name="ab")
cli.add_typer(sbs_cmd.app, name="sbs")
cli.add_typer(synth_cmd.app, name="synth")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shopsearch {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    if debug:
        os.environ["SHOPSEARCH_DEBUG"] = "1"


def app() -> None:
    """Console entry point: a shopsearch error prints its message and exits 2, no traceback."""
    from shopsearch.data.errors import ShopsearchError

    try:
        cli()
    except ShopsearchError as exc:
        if os.environ.get("SHOPSEARCH_DEBUG"):
            raise
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
