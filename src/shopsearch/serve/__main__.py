"""``python -m shopsearch.serve --index DIR ...``: the ``shopsearch serve`` command on its own
(used by ``benchmarks/serve_load.py`` to start a server process)."""

from __future__ import annotations

import os
import sys

import typer

from shopsearch.cli.common import console
from shopsearch.cli.serve_cmd import serve
from shopsearch.data.errors import ShopsearchError


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(serve)
    try:
        app()
    except ShopsearchError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
