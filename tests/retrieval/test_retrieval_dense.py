"""Encoder resolution (offline only) and dense retrieval with the real bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from retrieval_catalog import pid_of

from shopsearch.data.errors import ShopsearchError
from shopsearch.data.render import ProductTextRenderer
from shopsearch.retrieval.base import NO_ID, Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import DEFAULT_MODEL, default_model_path, resolve_model
from shopsearch.retrieval.faiss_index import IndexSpec


@pytest.fixture(scope="module")
def dense(encoder, catalog) -> DenseRetriever:
    texts = ProductTextRenderer().render(catalog)
    return DenseRetriever.build(encoder, catalog.ids, texts, show_progress=False)


def test_resolve_model_offline_only(tmp_path):
    bundled = default_model_path()
    assert (bundled / "modules.json").is_file()
    for name in (None, DEFAULT_MODEL, "minilm", "sentence-transformers/all-MiniLM-L6-v2"):
        assert resolve_model(name) == (DEFAULT_MODEL, bundled)
    assert resolve_model(bundled) == (DEFAULT_MODEL, bundled)
    assert resolve_model(tmp_path) == (str(tmp_path.resolve()), tmp_path.resolve())
    with pytest.raises(ShopsearchError, match="does not download"):
        resolve_model("intfloat/e5-base-v2")
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ShopsearchError, match="is a file"):
        resolve_model(tmp_path / "weights.bin")


def test_a_directory_that_is_no_model_is_a_clear_error(tmp_path):
    from shopsearch.retrieval.encoder import SentenceEncoder

    with pytest.raises(ShopsearchError, match="could not load"):
        SentenceEncoder(tmp_path)


def test_encode_shapes_normalisation_and_order(encoder):
    assert encoder.model_id == DEFAULT_MODEL and encoder.dimension == 384
    texts = [
        "drill",
        "a much longer product title about a cordless drill driver kit with two batteries",
        "saw",
    ]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # length-sorted batching must not change which vector belongs to which text
    one_by_one = np.vstack([encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_batches_are_formed_by_length(encoder, monkeypatch):
    """We rely on sentence-transformers sorting inputs by length before batching (less padding);
    this fails if a future version stops doing so on CPU."""
    seen: list[list[int]] = []
    original = encoder._model.preprocess

    def spy(inputs, *args, **kwargs):
        seen.append([len(t) for t in inputs])
        return original(inputs, *args, **kwargs)

    monkeypatch.setattr(encoder._model, "preprocess", spy)
    monkeypatch.setattr(encoder, "batch_size", 3)
    texts = ["a" * n for n in (5, 80, 12, 40, 3, 60, 25, 7, 33)]
    encoder.encode(texts)
    assert [len(b) for b in seen] == [3, 3, 3]
    for earlier, later in itertools.pairwise(seen):
        assert min(earlier) >= max(later)


def test_is_a_retriever(dense):
    assert isinstance(dense, Retriever) and dense.name == "dense"


def test_finds_paraphrases(dense, catalog):
    queries = ["couch for the living room", "bbq", "glue", "smart home temperature control"]
    result = dense.search(queries, k=3)
    assert result.ids[:, 0].tolist() == [
        pid_of(catalog, "Ashley Three-Seat Fabric Sofa"),
        pid_of(catalog, "Weber Spirit"),
        pid_of(catalog, "Gorilla"),
        pid_of(catalog, "Google Nest"),
    ]
    assert (np.diff(result.scores, axis=1) <= 1e-6).all()  # best first
    assert (result.scores <= 1.0 + 1e-5).all()  # cosines


def test_score_candidates_agree_with_search(dense):
    queries = ["cordless drill", "white paint"]
    result = dense.search(queries, k=5)
    hits = [result.row(i)[0] for i in range(2)]
    scored = dense.score_candidates(queries, hits)
    for i in range(2):
        np.testing.assert_allclose(scored[i], result.row(i)[1], atol=1e-5)
    with pytest.raises(ShopsearchError, match="not in the dense index"):
        dense.score_candidates(["x"], [["NOT-A-PRODUCT"]])


def test_k_above_catalogue_and_empty_batch(dense, catalog):
    n = len(catalog)
    result = dense.search(["ladder"], k=n + 5)
    assert result.ids.shape == (1, n + 5)
    assert len(result.row(0)[0]) == n and (result.ids[0, n:] == NO_ID).all()
    assert len(dense.search([], k=3)) == 0


def test_search_vectors_normalises_queries(dense):
    q = dense.encode_queries(["tape measure"])
    a, b = dense.search_vectors(q, 3), dense.search_vectors(q * 7.5, 3)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    with pytest.raises(ShopsearchError, match="query vectors"):
        dense.search_vectors(np.zeros((1, 5), dtype=np.float32), 3)


def test_unnormalised_vectors_are_normalised(encoder, dense):
    scaled = DenseRetriever(encoder, dense.product_ids, dense.vectors * 3.0)
    np.testing.assert_allclose(np.linalg.norm(scaled.vectors, axis=1), 1.0, atol=1e-5)
    a, b = dense.search(["garden hose"], 3), scaled.search(["garden hose"], 3)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_hnsw_agrees_with_flat(encoder, dense):
    hnsw = DenseRetriever(encoder, dense.product_ids, dense.vectors, IndexSpec(kind="hnsw", hnsw_m=8))
    queries = ["electric lawn mower", "door lock", "refrigerator", "vacuum"]
    np.testing.assert_array_equal(hnsw.search(queries, 3).ids, dense.search(queries, 3).ids)


def test_inconsistent_inputs_are_refused(encoder, dense):
    with pytest.raises(ShopsearchError, match="product ids"):
        DenseRetriever(encoder, dense.product_ids[:3], dense.vectors)
    with pytest.raises(ShopsearchError, match="dimension"):
        DenseRetriever(encoder, dense.product_ids, dense.vectors[:, :100])
    with pytest.raises(ShopsearchError, match="FAISS index holds"):
        other = DenseRetriever(encoder, dense.product_ids[:5], dense.vectors[:5])
        DenseRetriever(encoder, dense.product_ids, dense.vectors, index=other.index)


def test_query_vectors_are_cached_and_identical():
    import numpy as np

    from shopsearch.retrieval.dense import DenseRetriever

    class CountingEncoder:
        model_id, dimension, normalize = "counting", 4, True

        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        def encode(self, texts, *, is_query=False, show_progress=False):
            self.calls.append(list(texts))
            return np.array([[len(t), 1.0, 0.0, float(t.count("a"))] for t in texts], dtype=np.float32)

    enc = CountingEncoder()
    vecs = np.eye(4, dtype=np.float32)
    retriever = DenseRetriever(enc, ["a", "b", "c", "d"], vecs, query_cache_size=2)
    first = retriever.encode_queries(["tv", "sofa", "tv"])
    assert enc.calls == [["tv", "sofa"]]  # duplicates encoded once
    again = retriever.encode_queries(["sofa", "lamp"])
    assert enc.calls[-1] == ["lamp"] and np.array_equal(again[0], first[1])
    retriever.encode_queries(["tv"])  # evicted by the size-2 LRU: encoded again
    assert enc.calls[-1] == ["tv"]
