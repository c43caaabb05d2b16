"""The MiniLM Siamese encoder: saved in the ST format, reopened by plain SentenceTransformer(path)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from models_testdata import PREFIX, QUERIES, TITLES
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

from shopsearch.models import (
    EncoderConfig,
    build_siamese_encoder,
    load_encoder,
    read_model_info,
    save_encoder,
)
from shopsearch.retrieval.encoder import SentenceEncoder


@pytest.fixture(scope="module")
def reloaded(minilm_dir):
    return SentenceTransformer(str(minilm_dir), device="cpu", local_files_only=True)


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_one_shared_stack(minilm):
    assert [type(m) for m in minilm] == [Transformer, Pooling, Normalize]
    assert minilm[1].pooling_mode == "mean"
    assert minilm.prompts == {"query": PREFIX, "document": ""} and minilm.default_prompt_name is None


def test_reload_reproduces_scores(minilm, reloaded):
    before = _cos(minilm.encode_query(QUERIES), minilm.encode_document(TITLES))
    after = _cos(reloaded.encode_query(QUERIES), reloaded.encode_document(TITLES))
    np.testing.assert_allclose(after, before, atol=1e-5)
    assert reloaded.prompts == {"query": PREFIX, "document": ""}
    assert reloaded.max_seq_length == minilm.max_seq_length == 64


def test_query_prefix_applies_to_queries_only(reloaded):
    q = reloaded.encode_query(QUERIES)
    np.testing.assert_allclose(q, reloaded.encode(QUERIES, prompt_name="query"), atol=1e-6)
    np.testing.assert_allclose(q, reloaded.encode([PREFIX + t for t in QUERIES]), atol=1e-5)
    plain = reloaded.encode(QUERIES)  # products: no default prompt
    np.testing.assert_allclose(plain, reloaded.encode_document(QUERIES), atol=1e-6)
    assert np.abs(plain - q).max() > 1e-3


def test_serve_dim_is_truncate_dim(minilm, reloaded, minilm_dir):
    assert reloaded.truncate_dim == 128 and reloaded.get_embedding_dimension() == 128
    served = reloaded.encode(TITLES, normalize_embeddings=True)
    with reloaded.truncate_embeddings(None):
        full = reloaded.encode(TITLES)
    assert full.shape[1] == 384 and served.shape[1] == 128
    np.testing.assert_allclose(served, _unit(full[:, :128]), atol=1e-5)
    # The index code's encoder serves the same dimension from the same directory.
    enc = SentenceEncoder(minilm_dir, query_prefix=PREFIX)
    assert enc.dimension == 128
    np.testing.assert_allclose(enc.encode(QUERIES, is_query=True), reloaded.encode_query(QUERIES, normalize_embeddings=True), atol=1e-5)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_model_info_recorded(minilm_dir):
    info = read_model_info(minilm_dir)
    assert info["pooling"] == "mean" and info["query_prefix"] == PREFIX and info["document_prefix"] == ""
    assert info["full_dim"] == 384 and info["serve_dim"] == 128 and info["matryoshka_dims"] == [384, 256, 128]
    assert info["base_model"] == "all-MiniLM-L6-v2" and info["metadata"] == {"run": "test"}
    assert info["lora"]["enabled"] is False and info["encoder_config"]["serve_dim"] == 128
    model = load_encoder(minilm_dir)
    assert model.shopsearch_config.matryoshka_dims == [384, 256, 128]


def test_cls_pooling_persisted(minilm_dir, tmp_path):
    cls = build_siamese_encoder(EncoderConfig(base_model=str(minilm_dir), pooling="cls", device="cpu"))
    assert cls[1].pooling_mode == "cls" and cls.truncate_dim is None and cls.prompts["query"] == ""
    out = save_encoder(cls, tmp_path / "cls")
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode"] == "cls"
    again = SentenceTransformer(str(out), device="cpu", local_files_only=True)
    assert again[1].pooling_mode == "cls" and read_model_info(out)["pooling"] == "cls"
    np.testing.assert_allclose(again.encode(TITLES), cls.encode(TITLES), atol=1e-5)
    # Overwriting an existing model directory is atomic and leaves no temporary directories.
    save_encoder(cls, out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
