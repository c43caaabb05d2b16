"""``shopsearch doctor``: the machine, what shopsearch will use on it, and a self-check of each part."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shopsearch.cli.common import console, out


def doctor(
    skip: Annotated[
        list[str] | None,
        typer.Option("--skip", help="A check not to run, repeatable: 'torch + encoder', faiss, onnxruntime, llama.cpp."),
    ] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds each check may take, its start included.")] = 180.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
) -> None:
    """Print what this machine offers (CPU model and instruction sets, torch and its threads, whether
    training uses bf16 autocast and why, ONNX Runtime's providers, the llama.cpp build's CPU features,
    FAISS, the bundled models) and run a short self-check of each native part, each in a child process so
    that a crash is reported, not fatal: encode a sentence, search with FAISS, run an ONNX graph, answer
    one few-shot LLM prompt. Exits 0 when every part passes, 1 naming the parts that failed."""
    from shopsearch.artifacts import atomic_write_text
    from shopsearch.diagnostics.checks import CHECKS
    from shopsearch.diagnostics.doctor import diagnose

    known = {part for part, *_ in CHECKS}
    unknown = sorted(set(skip or ()) - known)
    if unknown:
        raise typer.BadParameter(f"unknown check(s) {unknown}; choose from {sorted(known)}", param_hint="--skip")
    with console.status("checking torch, FAISS, ONNX Runtime and llama.cpp (a few seconds each)"):
        report = diagnose(skip=skip or (), timeout=timeout)

    table = Table(title="shopsearch doctor", show_lines=True)
    for column in ("part", "status", "found", "shopsearch uses", "self-check"):
        table.add_column(column, overflow="fold")
    for part in report.parts:
        status = "[green]ok[/]" if part.ok else "[bold red]FAILED[/]"
        found = "\n".join(f"{k}: {_show(v)}" for k, v in part.facts.items() if v not in (None, "", []))
        check = part.verified if part.ok else (part.error or "")
        if part.seconds is not None:
            check += f" ({part.seconds:g} s)"
        table.add_row(part.part, status, escape(found), escape(part.uses), escape(check))
    out.print(table)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report.to_dict(), indent=2) + "\n")
        console.print(f"report: {json_out}")
    if not report.ok:
        for part in report.parts:
            if not part.ok and part.remedy:
                console.print(f"{escape(part.part)}: {escape(part.remedy)}", highlight=False)
        console.print(f"[bold red]doctor: failed: {escape(', '.join(report.failed))}[/]")
        raise typer.Exit(1)
    console.print("[green]doctor: every part works[/]")


def _show(value: object) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)
