"""ONNX export: fp32 matches torch, int8 stays close, and a broken or mismatched export is refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from models_testdata import PREFIX, QUERIES, TITLES
from sentence_transformers import SentenceTransformer

from shopsearch.artifacts import MANIFEST, ArtifactError, write_manifest
from shopsearch.models import (
    EncoderConfig,
    OnnxQueryEncoder,
    build_siamese_encoder,
    export_onnx,
    save_encoder,
)
from shopsearch.retrieval.dense import DenseRetriever


@pytest.fixture(scope="module")
def torch_model(minilm_dir):
    return SentenceTransformer(str(minilm_dir), device="cpu", local_files_only=True)


def _rowcos(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_manifest_describes_the_export(minilm_onnx):
    m = json.loads((minilm_onnx / MANIFEST).read_text())
    assert m["kind"] == "onnx-encoder" and m["dimension"] == 384 and m["truncate_dim"] == 128
    assert m["query_prefix"] == PREFIX and m["max_seq_length"] == 64 and m["pooling"] == "mean"
    assert set(m["files_by_precision"]) == {"fp32", "int8"}
    assert m["export_check_min_cosine_vs_torch"]["fp32"] > 0.9999


def test_fp32_matches_torch(minilm_onnx, torch_model):
    enc = OnnxQueryEncoder(minilm_onnx, int8=False, intra_op_threads=1, batch_size=3)
    assert enc.dimension == 128 and enc.query_prefix == PREFIX
    q, d = enc.encode(QUERIES), enc.encode(TITLES, is_query=False)
    assert q.dtype == np.float32 and q.shape == (len(QUERIES), 128)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    assert _rowcos(q, torch_model.encode_query(QUERIES)).min() > 0.999
    assert _rowcos(d, torch_model.encode_document(TITLES)).min() > 0.999
    # Alone or in a padded batch: the same vector (the attention mask is in the graph).
    alone = np.vstack([enc.encode([t], is_query=False) for t in TITLES])
    np.testing.assert_allclose(alone, d, atol=1e-5)


def test_int8_is_close(minilm_onnx, torch_model):
    enc = OnnxQueryEncoder(minilm_onnx, int8=True)
    texts = QUERIES + TITLES
    cos = _rowcos(enc.encode(texts, is_query=False), torch_model.encode(texts))
    assert cos.mean() > 0.98 and cos.min() > 0.97


def test_onnx_encoder_serves_a_dense_retriever(minilm_onnx):
    enc = OnnxQueryEncoder(minilm_onnx, int8=False)
    ids = [f"p{i}" for i in range(len(TITLES))]
    dense = DenseRetriever(enc, ids, enc.encode(TITLES, is_query=False))
    top = dense.search(QUERIES, k=1).ids[:, 0].tolist()
    assert top == ["p0", "p1", "p2", "p3"]


def test_corrupted_export_is_refused(minilm_onnx, tmp_path):
    broken = shutil.copytree(minilm_onnx, tmp_path / "broken")
    data = bytearray((broken / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        OnnxQueryEncoder(broken, int8=False)
    (broken / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        OnnxQueryEncoder(broken)
    with pytest.raises(ArtifactError, match="not a directory"):
        OnnxQueryEncoder(tmp_path / "missing")


def test_mismatched_export_is_refused(minilm_onnx, tiny_dir, tmp_path):
    """A graph from another model swapped in (manifest re-written, so the checksums pass) is caught."""
    tiny = save_encoder(build_siamese_encoder(EncoderConfig(base_model=str(tiny_dir), device="cpu")), tmp_path / "t")
    tiny_onnx = tmp_path / "tiny-onnx"
    manifest = export_onnx(tiny, tiny_onnx, quantize_int8=False)
    assert manifest["padding_side"] == "left" and manifest["pooling"] == "lasttoken"
    assert OnnxQueryEncoder(tiny_onnx, int8=False).encode(QUERIES).shape == (len(QUERIES), 64)
    with pytest.raises(ArtifactError, match="no int8 model"):
        OnnxQueryEncoder(tiny_onnx, int8=True)

    mixed = shutil.copytree(minilm_onnx, tmp_path / "mixed")
    shutil.copy(tiny_onnx / "model.onnx", mixed / "model.onnx")
    info = {k: v for k, v in json.loads((mixed / MANIFEST).read_text()).items()
            if k not in ("kind", "files", "shopsearch_version", "created")}  # fmt: skip
    write_manifest(mixed, "onnx-encoder", **info)
    with pytest.raises(ArtifactError, match="mismatched"):
        OnnxQueryEncoder(mixed, int8=False)
    write_manifest(mixed, "dense-index", **info)
    with pytest.raises(ArtifactError, match="expected a 'onnx-encoder'"):
        OnnxQueryEncoder(mixed, int8=False)
