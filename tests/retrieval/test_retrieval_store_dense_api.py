"""``IndexBundle.dense_retriever`` (a dense retriever with the caller's encoder and query cache)
and ``load_index(check_model=False)`` (no source-model check, checksums still verified)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.store import IndexIntegrityError, build_index, load_index

QUERIES = ["cordless drill", "couch for the living room", "white paint", "stainless steel"]


class CountingEncoder:
    """The test encoder behind a call counter, optionally claiming another dimension or
    normalisation (to stand for an encoder of another vector space)."""

    def __init__(self, inner: Any, *, dimension: int | None = None, normalize: bool | None = None) -> None:
        self.inner = inner
        self.calls = 0
        self.model_id = f"counting:{inner.model_id}"
        self.dimension = inner.dimension if dimension is None else dimension
        self.normalize = inner.normalize if normalize is None else normalize

    def encode(
        self, texts: Sequence[str], *, is_query: bool = False, show_progress: bool = False
    ) -> np.ndarray:
        self.calls += 1
        return self.inner.encode(texts, is_query=is_query, show_progress=show_progress)


@pytest.fixture(scope="module")
def built(tmp_path_factory, catalog, encoder) -> Path:
    out = tmp_path_factory.mktemp("dense-api") / "index"
    return build_index(catalog, out, encoder=encoder, show_progress=False)


@pytest.fixture
def index_copy(built, tmp_path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(built, target)
    return target


def edit_dense_manifest(directory: Path, **changes: Any) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["dense"].update(changes)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def model_gone(directory: Path) -> None:
    """The manifest names a model that is no longer where the build found it (a deployment that
    shipped the index and an ONNX export, but not the model)."""
    edit_dense_manifest(
        directory, model_id="my-finetuned-model", model_path=str(directory.parent / "gone" / "model")
    )


def test_dense_retriever_defaults_to_the_index_model_and_shares_its_arrays(built):
    bundle = load_index(built)
    first, second = bundle.dense_retriever(), bundle.dense_retriever()
    assert first is not second and bundle.dense() is bundle.dense()  # dense() stays the cached one
    assert first.encoder is bundle.encoder()
    assert first.index is second.index and first.vectors is second.vectors  # shared, not copied
    a, b = first.search(QUERIES, 5), bundle.dense().search(QUERIES, 5)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)


def test_dense_retriever_queries_with_the_given_encoder_and_cache_size(built, encoder):
    bundle = load_index(built)
    uncached = CountingEncoder(encoder)
    retriever = bundle.dense_retriever(uncached, query_cache_size=0)
    assert retriever.encoder is uncached
    np.testing.assert_array_equal(retriever.search(QUERIES, 5).ids, bundle.dense().search(QUERIES, 5).ids)
    retriever.search(QUERIES, 5)
    assert uncached.calls == 2  # cache size 0: every search encodes its queries
    cached = CountingEncoder(encoder)
    retriever = bundle.dense_retriever(cached, query_cache_size=len(QUERIES))
    retriever.search(QUERIES, 5)
    retriever.search(QUERIES, 5)
    assert cached.calls == 1


@pytest.mark.parametrize("claim", [{"dimension": 128}, {"normalize": False}], ids=["dimension", "normalize"])
def test_dense_retriever_refuses_an_encoder_of_another_space(built, encoder, claim):
    with pytest.raises(IndexIntegrityError, match=r"holds 384-d vectors \(normalize=True\)"):
        load_index(built).dense_retriever(CountingEncoder(encoder, **claim))


def test_dense_retriever_needs_a_dense_part(tmp_path, catalog):
    out = build_index(catalog, tmp_path / "lexical", systems=("bm25",), show_progress=False)
    with pytest.raises(ShopsearchError, match="no dense part"):
        load_index(out).dense_retriever()


def test_check_model_false_opens_an_index_whose_model_is_gone(index_copy, built, encoder):
    model_gone(index_copy)
    with pytest.raises(ShopsearchError, match="cannot be found now"):
        load_index(index_copy)
    bundle = load_index(index_copy, check_model=False)
    # queried with an encoder of the same model, as a deployment with its ONNX export would
    ids = bundle.dense_retriever(encoder).search(QUERIES, 5).ids
    np.testing.assert_array_equal(ids, load_index(built).dense().search(QUERIES, 5).ids)


def test_check_model_false_skips_the_fingerprint_check(index_copy):
    edit_dense_manifest(index_copy, model_fingerprint="0" * 64)
    with pytest.raises(IndexIntegrityError, match=r"model files .* differ"):
        load_index(index_copy)
    assert load_index(index_copy, check_model=False).systems == ["bm25", "dense"]


def test_check_model_false_still_verifies_checksums(index_copy):
    model_gone(index_copy)
    path = index_copy / "dense" / "vectors.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, one vector component changed
    path.write_bytes(bytes(data))
    with pytest.raises(IndexIntegrityError, match=r"vectors\.npy does not match its checksum"):
        load_index(index_copy, check_model=False)


def test_expect_model_is_checked_whatever_check_model_says(built, tmp_path):
    other = tmp_path / "my-finetuned-model"
    other.mkdir()
    (other / "config.json").write_text('{"hidden_size": 768}')
    with pytest.raises(IndexIntegrityError, match="was expected"):
        load_index(built, expect_model=other, check_model=False)
