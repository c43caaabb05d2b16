"""FAISS structures: exact flat search, HNSW / IVF-PQ recall against it, padding, parameters."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.faiss_index import (
    IndexSpec,
    available_threads,
    build_faiss_index,
    configure_threads,
    l2_normalize,
    read_index,
    search_index,
    write_index,
)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = l2_normalize(rng.standard_normal((5000, 64)))
    q = l2_normalize(rng.standard_normal((200, 64)))
    exact = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    return x, q, exact


def recall_at_10(rows: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, exact, strict=True)]))


def test_flat_is_exact(data):
    x, q, exact = data
    spec = IndexSpec()
    index = build_faiss_index(x, spec)
    assert isinstance(index, faiss.IndexFlatIP)
    rows, scores = search_index(index, q, 10, spec)
    assert recall_at_10(rows, exact) == 1.0
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, rows, axis=1), atol=1e-5)


def test_hnsw_recall(data):
    x, q, exact = data
    spec = IndexSpec(kind="hnsw", hnsw_m=16, ef_construction=100, ef_search=64)
    index = build_faiss_index(x, spec)
    assert index.metric_type == faiss.METRIC_INNER_PRODUCT
    rows, _ = search_index(index, q, 10, spec)
    assert recall_at_10(rows, exact) >= 0.9
    # efSearch is a per-call parameter: a narrower search is worse and leaves the index as built
    narrow = IndexSpec(kind="hnsw", hnsw_m=16, ef_search=10)
    rows_narrow, _ = search_index(index, q, 10, narrow)
    assert recall_at_10(rows_narrow, exact) <= recall_at_10(rows, exact)
    assert index.hnsw.efSearch == 64


def test_ivfpq_recall_and_nprobe(data):
    x, q, exact = data
    spec = IndexSpec(kind="ivfpq", nlist=32, nprobe=4)
    index = build_faiss_index(x, spec)
    assert isinstance(index, faiss.IndexIVFPQ)
    assert index.nlist == 32 and index.pq.M == 8 and index.metric_type == faiss.METRIC_INNER_PRODUCT
    rows, _ = search_index(index, q, 10, spec)
    low = recall_at_10(rows, exact)
    rows_all, _ = search_index(index, q, 10, IndexSpec(kind="ivfpq", nlist=32, nprobe=32))
    high = recall_at_10(rows_all, exact)
    # 8-byte codes on isotropic random vectors are a hard case; far above chance (0.002) is the bar
    assert high >= low and high >= 0.2


def test_ivfpq_training_is_reproducible(data):
    x, q, _ = data
    spec = IndexSpec(kind="ivfpq", nlist=16, nprobe=4)
    a = search_index(build_faiss_index(x, spec), q[:20], 5, spec)[0]
    b = search_index(build_faiss_index(x, spec), q[:20], 5, spec)[0]
    np.testing.assert_array_equal(a, b)


def test_ivfpq_needs_enough_vectors():
    x = l2_normalize(np.random.default_rng(0).standard_normal((100, 32)))
    with pytest.raises(ShopsearchError, match="at least 256 vectors"):
        build_faiss_index(x, IndexSpec(kind="ivfpq"))


def test_pq_m_defaults_and_validation():
    assert IndexSpec().resolved_pq_m(384) == 48
    assert IndexSpec().resolved_pq_m(768) == 96
    assert IndexSpec().resolved_pq_m(64) == 8
    assert IndexSpec(pq_m=12).resolved_pq_m(384) == 12
    with pytest.raises(ShopsearchError, match="must divide"):
        IndexSpec(pq_m=7).resolved_pq_m(384)
    assert IndexSpec().resolved_nlist(10_000) == 400
    with pytest.raises(ValueError):
        IndexSpec(kind="annoy")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_k_above_ntotal_is_padded(kind):
    x = l2_normalize(np.random.default_rng(1).standard_normal((6, 16)))
    spec = IndexSpec(kind=kind)
    rows, scores = search_index(build_faiss_index(x, spec), x[:2], 10, spec)
    assert rows.shape == scores.shape == (2, 10)
    assert (rows[:, 6:] == -1).all() and np.isneginf(scores[:, 6:]).all()
    assert sorted(rows[0, :6].tolist()) == list(range(6)) and rows[0, 0] == 0


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
@pytest.mark.parametrize("mmap", [False, True])
def test_write_read_round_trip(tmp_path, data, kind, mmap):
    x, q, _ = data
    spec = IndexSpec(kind=kind, nlist=16, hnsw_m=8, ef_construction=40)
    index = build_faiss_index(x[:2000], spec)
    write_index(index, tmp_path / "index.faiss")
    loaded = read_index(tmp_path / "index.faiss", mmap=mmap)
    a, b = search_index(index, q[:10], 5, spec), search_index(loaded, q[:10], 5, spec)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1])


def test_unreadable_index_is_a_clear_error(tmp_path):
    path = tmp_path / "index.faiss"
    path.write_bytes(b"definitely not a faiss index")
    with pytest.raises(ShopsearchError, match="could not read the FAISS index"):
        read_index(path)


def test_thread_pool_honours_omp_num_threads(monkeypatch):
    """FAISS and torch share the OpenMP pool: a user's OMP_NUM_THREADS must survive the first search."""
    before = faiss.omp_get_max_threads()
    try:
        monkeypatch.delenv("SHOPSEARCH_FAISS_THREADS", raising=False)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert configure_threads() == 1 and faiss.omp_get_max_threads() == 1
        monkeypatch.setenv("SHOPSEARCH_FAISS_THREADS", "2")
        assert configure_threads() == 2
        monkeypatch.delenv("SHOPSEARCH_FAISS_THREADS")
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert configure_threads() == available_threads()
    finally:
        faiss.omp_set_num_threads(before)
