"""``shopsearch model``: export a trained encoder or re-ranker for serving (ONNX fp32 + int8)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopsearch.cli.common import console

app = typer.Typer(help="Trained encoders and re-rankers: export for serving.", no_args_is_help=True)


@app.command("export-onnx")
def export_onnx_cmd(
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m",
            help="Encoder (a sentence-transformers directory, e.g. RUN/model, or name) or re-ranker "
            "(a CrossEncoder directory from train-reranker).",
        ),
    ] = "all-MiniLM-L6-v2",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Export directory. Default: INDEX/onnx with --index (where `serve` finds it).",
        ),
    ] = None,
    index: Annotated[
        Path | None, typer.Option("--index", help="Index directory: export its own model into INDEX/onnx.")
    ] = None,
    int8: Annotated[
        bool, typer.Option("--int8/--no-int8", help="Also write the int8 dynamic quantisation.")
    ] = True,
    opset: Annotated[int, typer.Option(min=14, help="ONNX opset.")] = 17,
) -> None:
    """Export the query/product encoder to ONNX (fp32 and, by default, int8 dynamic quantisation) with
    a manifest that records the source model's fingerprint and the export's agreement with torch.
    `shopsearch serve` uses an export in INDEX/onnx (or --onnx DIR) when its fingerprint matches the
    index's model, and falls back to torch otherwise. A cross-encoder (a `train-reranker` model) is
    exported as a re-ranker: give the export directory wherever a re-ranker path goes
    (`--system "hybrid>rerank:EXPORT@50"`, `serve --reranker EXPORT`)."""
    from shopsearch.data.errors import ShopsearchError
    from shopsearch.models import export_onnx, is_cross_encoder_dir

    if index is not None:
        from shopsearch.retrieval.store import index_model_location

        model = str(index_model_location(index))
        output = output or index / "onnx"
    if output is None:
        raise ShopsearchError("give --output DIR (or --index INDEX to export into INDEX/onnx)")
    if is_cross_encoder_dir(model):
        _export_reranker(Path(model), output, int8, opset)
        return
    with console.status(f"exporting {model} to ONNX"):
        manifest = export_onnx(model, output, quantize_int8=int8, opset=opset)
    check = manifest["export_check_min_cosine_vs_torch"]
    console.print(
        f"wrote {output}: {', '.join(manifest['files_by_precision'].values())} "
        f"(dimension {manifest['dimension']}; lowest cosine vs torch on probe texts: "
        + ", ".join(f"{k} {v:.4f}" for k, v in check.items())
        + f"; {manifest['export_seconds']} s)"
    )


def _export_reranker(model: Path, output: Path, int8: bool, opset: int) -> None:
    from shopsearch.models import export_cross_encoder_onnx

    with console.status(f"exporting the re-ranker {model} to ONNX"):
        manifest = export_cross_encoder_onnx(model, output, quantize_int8=int8, opset=opset)
    diff = manifest["export_check_max_abs_logit_diff_vs_torch"]
    console.print(
        f"wrote {output}: {', '.join(manifest['files_by_precision'].values())} (re-ranker; largest |logit| "
        "difference from torch on probe pairs: " + ", ".join(f"{k} {v:.4f}" for k, v in diff.items())
        + f"; {manifest['export_seconds']} s)"
    )
