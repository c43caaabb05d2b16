"""The cross-encoder's ONNX export: the same logits as torch, int8 close, checked on open, served by spec."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.stats import spearmanr

from shopsearch.artifacts import MANIFEST, ArtifactError, write_manifest
from shopsearch.data.errors import ShopsearchError
from shopsearch.models import export_cross_encoder_onnx, is_cross_encoder_dir
from shopsearch.retrieval.rerank import FUSION_FILE, CrossEncoderReranker, load_reranker
from shopsearch.retrieval.rerank_onnx import OnnxCrossEncoder, is_onnx_cross_encoder

QUERIES = ["cordless drill", "white paint", "led bulb 60w", "garden hose 50 ft", "cordless drill"]
TEXTS = [
    "DEWALT 20-Volt MAX Cordless Drill/Driver Kit",
    "Behr Premium Plus 1 gal. Ultra Pure White Flat Interior Paint",
    "Philips 60-Watt Equivalent A19 LED Light Bulb Soft White (4-Pack)",
    "Flexzilla 5/8 in. x 50 ft. Garden Hose",
    "Ryobi ONE+ 18V Cordless Impact Driver with extra long description text " * 4,
]


def test_the_export_scores_pairs_like_torch(tiny_cross_encoder, tiny_cross_encoder_onnx):
    manifest = json.loads((tiny_cross_encoder_onnx / MANIFEST).read_text())
    assert manifest["kind"] == "onnx-cross-encoder" and set(manifest["files_by_precision"]) == {"fp32", "int8"}
    assert is_onnx_cross_encoder(tiny_cross_encoder_onnx) and not is_onnx_cross_encoder(tiny_cross_encoder)
    assert is_cross_encoder_dir(tiny_cross_encoder) and not is_cross_encoder_dir(tiny_cross_encoder_onnx)
    torch_logits = CrossEncoderReranker(tiny_cross_encoder).score(QUERIES, TEXTS)
    fp32 = OnnxCrossEncoder(tiny_cross_encoder_onnx, int8=False, batch_size=2)  # several batches, sorted by length
    assert np.allclose(fp32.score(QUERIES, TEXTS), torch_logits, atol=1e-4)
    int8 = OnnxCrossEncoder(tiny_cross_encoder_onnx)
    got = int8.score(QUERIES, TEXTS)
    assert got.shape == (len(QUERIES),) and got.dtype == np.float32
    assert np.abs(got - torch_logits).max() < 0.1 * max(1.0, float(np.abs(torch_logits).max()))
    assert spearmanr(got, torch_logits).statistic > 0.8
    assert int8.score([], []).shape == (0,)
    assert int8.describe()["precision"] == "int8" and int8.text_fields == ("title",)
    with pytest.raises(ValueError, match="queries for"):
        int8.score(["a"], [])


def test_load_reranker_opens_either_form_and_the_export_keeps_the_models_settings(tiny_cross_encoder, tmp_path):
    model = shutil.copytree(tiny_cross_encoder, tmp_path / "run" / "model")
    (model / FUSION_FILE).write_text(json.dumps({"text_fields": ["title", "brand"], "fusion_weight": 0.4}))
    out = tmp_path / "export"
    export_cross_encoder_onnx(model, out, quantize_int8=False)
    onnx = load_reranker(out, int8=False)
    torch_ce = load_reranker(model)
    assert isinstance(onnx, OnnxCrossEncoder) and isinstance(torch_ce, CrossEncoderReranker)
    for r in (onnx, torch_ce):
        assert (r.fusion_weight, r.text_fields) == (0.4, ("title", "brand"))
    with pytest.raises(ArtifactError, match="no int8 model"):
        OnnxCrossEncoder(out)
    with pytest.raises(ShopsearchError, match="not a cross-encoder"):
        export_cross_encoder_onnx(tmp_path / "run", tmp_path / "x")


def test_a_corrupted_or_mismatched_export_is_refused(tiny_cross_encoder_onnx, tmp_path):
    broken = shutil.copytree(tiny_cross_encoder_onnx, tmp_path / "broken")
    data = bytearray((broken / "model_int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / "model_int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        OnnxCrossEncoder(broken)
    # Files that no longer give the recorded probe logits (manifest re-written, so the checksums pass):
    mixed = shutil.copytree(tiny_cross_encoder_onnx, tmp_path / "mixed")
    info = {k: v for k, v in json.loads((mixed / MANIFEST).read_text()).items()
            if k not in ("kind", "files", "shopsearch_version", "created")}  # fmt: skip
    info["probe"]["logits"]["fp32"] = [x + 1.0 for x in info["probe"]["logits"]["fp32"]]
    write_manifest(mixed, "onnx-cross-encoder", **info)
    with pytest.raises(ArtifactError, match="mismatched"):
        OnnxCrossEncoder(mixed, int8=False)
    with pytest.raises(ArtifactError, match="not a directory"):
        OnnxCrossEncoder(tmp_path / "missing")
    with pytest.raises(ShopsearchError, match="exceeds"):
        OnnxCrossEncoder(tiny_cross_encoder_onnx, max_length=4096)


def test_the_cli_exports_a_cross_encoder_as_a_reranker(tiny_cross_encoder, tmp_path):
    from typer.testing import CliRunner

    from shopsearch.cli.main import cli

    out = tmp_path / "cli-export"
    result = CliRunner().invoke(cli, ["model", "export-onnx", "-m", str(tiny_cross_encoder), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "re-ranker" in result.output and is_onnx_cross_encoder(out)
