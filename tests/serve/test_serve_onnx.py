"""The fast path: an ONNX export in or next to the index is found, checked and used for queries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_support import make_settings

from shopsearch.data.errors import ShopsearchError
from shopsearch.serve.app import create_app
from shopsearch.serve.holder import IndexHolder
from shopsearch.serve.settings import ServeSettings

QUERIES = ["wireless headphones", "red dress", "kettle", "kids puzzle", "cordless drill"]


@pytest.fixture(scope="module")
def index_with_onnx(index_a, tmp_path_factory) -> Path:
    """index_a with its model exported inside it (INDEX/onnx) by ``shopsearch model export-onnx
    --index``: extra files the manifest does not list."""
    from typer.testing import CliRunner

    from shopsearch.cli.main import cli

    out = tmp_path_factory.mktemp("served") / "index"
    shutil.copytree(index_a, out)
    result = CliRunner().invoke(cli, ["model", "export-onnx", "--index", str(out)])
    assert result.exit_code == 0, result.output
    assert "model_int8.onnx" in result.output and (out / "onnx" / "manifest.json").is_file()
    return out


@pytest.fixture(scope="module")
def onnx_export(index_with_onnx) -> Path:
    """The bundled MiniLM exported to ONNX (fp32 + int8), outside any index."""
    return index_with_onnx / "onnx"


def test_export_command_needs_a_destination():
    from typer.testing import CliRunner

    from shopsearch.cli.main import cli

    result = CliRunner().invoke(cli, ["model", "export-onnx", "--model", "all-MiniLM-L6-v2"])
    assert result.exit_code != 0 and "--output" in str(result.exception)


def ranked(client, mode="dense", k=10):
    return {q: client.get("/search", params={"q": q, "k": k, "mode": mode}).json()["results"] for q in QUERIES}


def test_auto_serves_queries_with_the_int8_export(index_with_onnx, index_a):
    auto = ServeSettings(index=index_with_onnx, encoder_threads=1)
    with TestClient(create_app(auto)) as c:
        assert c.get("/info").json()["index"]["encoder"] == "onnx-int8"
        identity = c.app.state.shopsearch.holder.encoder_identity
        assert identity.location == str((index_with_onnx / "onnx").resolve())
        onnx_hits = ranked(c)
        assert c.get("/search", params={"q": "tent", "mode": "hybrid"}).status_code == 200
    with TestClient(create_app(make_settings(index_a))) as c:
        torch_hits = ranked(c)
    for q in QUERIES:  # int8 moves scores a little, not the neighbourhood
        a = [h["product_id"] for h in onnx_hits[q]][:5]
        b = [h["product_id"] for h in torch_hits[q]]
        assert len(set(a) & set(b)) >= 4, q


def test_fp32_export_reproduces_torch_scores(index_with_onnx, index_a):
    with TestClient(create_app(ServeSettings(index=index_with_onnx, int8=False, encoder_threads=1))) as c:
        assert c.get("/info").json()["index"]["encoder"] == "onnx-fp32"
        fp32 = ranked(c)
    with TestClient(create_app(make_settings(index_a))) as c:
        torch = ranked(c)
    for q in QUERIES:
        assert [h["product_id"] for h in fp32[q]][:3] == [h["product_id"] for h in torch[q]][:3], q
        assert fp32[q][0]["score"] == pytest.approx(torch[q][0]["score"], abs=1e-4)


def test_explicit_onnx_dir_and_required_onnx(index_a, onnx_export):
    holder = IndexHolder(ServeSettings(index=index_a, onnx=onnx_export, encoder_threads=1))
    snapshot, _ = holder.reload(index_a)
    assert snapshot.encoder.kind == "onnx-int8"
    again, previous = holder.reload()  # a reload keeps the encoder: no model is opened again
    assert previous is snapshot and again.retrievers["dense"].encoder is snapshot.retrievers["dense"].encoder
    with pytest.raises(ShopsearchError, match="no usable ONNX export"):
        IndexHolder(ServeSettings(index=index_a, encoder="onnx")).reload(index_a)


def test_export_of_another_model_is_skipped_or_refused(index_a, onnx_export, tmp_path):
    other = tmp_path / "other-onnx"
    shutil.copytree(onnx_export, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["source_fingerprint"] = "0" * 64  # an export made from some other model
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShopsearchError, match="fingerprint"):
        IndexHolder(ServeSettings(index=index_a, onnx=other)).reload(index_a)
    served = tmp_path / "index"
    shutil.copytree(index_a, served)
    shutil.copytree(other, served / "onnx")
    snapshot, _ = IndexHolder(ServeSettings(index=served, encoder="auto")).reload(served)
    assert snapshot.encoder.kind == "torch"  # auto falls back instead of serving wrong vectors
