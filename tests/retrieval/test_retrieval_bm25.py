"""BM25 (bm25s + PyStemmer): finds the obvious product, pads no-match queries, round-trips."""

from __future__ import annotations

import numpy as np
import pytest
from retrieval_catalog import pid_of

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import NO_ID, Retriever
from shopsearch.retrieval.bm25 import BM25Retriever


@pytest.fixture(scope="module")
def bm25(catalog) -> BM25Retriever:
    return BM25Retriever(catalog.ids, catalog.df["title"].tolist())


def test_is_a_retriever(bm25):
    assert isinstance(bm25, Retriever)
    assert bm25.name == "bm25"


def test_finds_the_obvious_product(bm25, catalog):
    result = bm25.search(["cordless drill", "kohler toilet", "garden hose", "paint roller"], k=5)
    assert result.ids.shape == (4, 5) and result.scores.dtype == np.float32
    assert result.ids[0, 0] == pid_of(catalog, "Bosch 18V Cordless Drill")
    assert result.ids[1, 0] == pid_of(catalog, "Kohler Cimarron")
    assert result.ids[2, 0] == pid_of(catalog, "Flexzilla")
    assert result.ids[3, 0] == pid_of(catalog, "Wooster")
    # best first within each row
    for i in range(len(result)):
        _, scores = result.row(i)
        assert scores == sorted(scores, reverse=True)


def test_stemming_matches_inflections(bm25, catalog):
    result = bm25.search(["drills", "hammers", "screw"], k=1)
    assert result.ids[:, 0].tolist() == [
        pid_of(catalog, "Bosch 18V"),
        pid_of(catalog, "Estwing"),
        pid_of(catalog, "Everbilt"),
    ]


def test_no_match_queries_are_padded_not_crashing(bm25):
    result = bm25.search(["xyzzy plugh", "", "the of and a", "cordless"], k=4)
    for i in range(3):
        assert (result.ids[i] == NO_ID).all()
        assert np.isneginf(result.scores[i]).all()
        assert result.row(i) == ([], [])
    ids, _ = result.row(3)
    assert len(ids) == 3  # the drill, the circular saw and the leaf blower say "cordless"
    assert len(bm25.search([], k=3)) == 0


def test_partial_matches_are_padded(bm25):
    result = bm25.search(["toilet"], k=10)
    ids, scores = result.row(0)
    assert len(ids) == 1 and scores[0] > 0
    assert (result.ids[0, 1:] == NO_ID).all() and np.isneginf(result.scores[0, 1:]).all()


def test_k_above_catalogue_size(bm25, catalog):
    result = bm25.search(["white", "nothing-matches-this"], k=len(catalog) + 25)
    assert result.ids.shape == (2, len(catalog) + 25)
    assert 0 < len(result.row(0)[0]) < len(catalog)
    assert result.row(1) == ([], [])


def test_unknown_query_words_are_ignored_not_mismapped(bm25):
    plain = bm25.search(["circular saw"], k=5)
    noisy = bm25.search(["circular qwertyuiop saw zzzzfoo"], k=5)
    np.testing.assert_array_equal(plain.ids, noisy.ids)
    np.testing.assert_allclose(plain.scores, noisy.scores)


def test_query_term_coverage_is_the_share_of_analysed_terms_the_index_knows(bm25):
    # stop words do not count; "drills" stems to a known term; two of four terms are unknown
    cov = bm25.query_term_coverage(["the cordless drills", "circular qwertyuiop saw zzzzfoo", "xyzzy", "the of", ""])
    np.testing.assert_allclose(cov, [1.0, 0.5, 0.0, 1.0, 1.0])
    assert cov.dtype == np.float64 and bm25.query_term_coverage([]).shape == (0,)


def test_batched_equals_one_by_one(bm25):
    queries = ["led light bulbs", "stainless steel", "tool chest", "white paint", "nothingmatches"]
    batch = bm25.search(queries, k=6)
    for i, q in enumerate(queries):
        single = bm25.search([q], k=6)
        np.testing.assert_array_equal(batch.ids[i], single.ids[0])
        np.testing.assert_allclose(batch.scores[i], single.scores[0])


def test_thread_pool_gives_the_same_results(catalog):
    texts = catalog.df["title"].tolist()
    queries = ["white", "cordless saw", "paint", "steel", "light"] * 20  # above the pool threshold
    serial = BM25Retriever(catalog.ids, texts, n_threads=0).search(queries, k=8)
    pooled = BM25Retriever(catalog.ids, texts, n_threads=2).search(queries, k=8)
    np.testing.assert_array_equal(serial.ids, pooled.ids)
    np.testing.assert_array_equal(serial.scores, pooled.scores)


def test_score_candidates_agree_with_search(bm25, catalog):
    queries = ["white paint", "cordless", "xyzzy"]
    result = bm25.search(queries, k=5)
    hits = [result.row(i)[0] for i in range(len(queries))]
    scored = bm25.score_candidates(queries, hits)
    for i in range(len(queries)):
        np.testing.assert_allclose(scored[i], result.row(i)[1], rtol=1e-6)
    # a product without any query term scores 0
    hammer = pid_of(catalog, "Estwing")
    assert bm25.score_candidates(["white paint"], [[hammer]])[0].tolist() == [0.0]
    assert bm25.score_candidates(["xyzzy"], [[hammer]])[0].tolist() == [0.0]


def test_score_candidates_unknown_id_is_a_clear_error(bm25):
    with pytest.raises(ShopsearchError, match=r"not in the BM25 index.*NOPE"):
        bm25.score_candidates(["paint"], [["NOPE"]])
    with pytest.raises(ShopsearchError, match="candidate lists"):
        bm25.score_candidates(["paint", "saw"], [[]])


def test_save_load_round_trip(bm25, tmp_path):
    bm25.save(tmp_path / "bm25")
    for mmap in (False, True):
        loaded = BM25Retriever.load(tmp_path / "bm25", mmap=mmap)
        queries = ["cordless drill", "white", "nothing here"]
        a, b = bm25.search(queries, k=7), loaded.search(queries, k=7)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert loaded.params == bm25.params


def test_load_refuses_a_foreign_directory(tmp_path):
    with pytest.raises(ShopsearchError, match="not a shopsearch BM25 index"):
        BM25Retriever.load(tmp_path)


def test_parameters_are_validated(catalog):
    titles = catalog.df["title"].tolist()
    with pytest.raises(ShopsearchError, match="product ids"):
        BM25Retriever(catalog.ids[:3], titles)
    with pytest.raises(ShopsearchError, match="stemmer"):
        BM25Retriever(catalog.ids, titles, stemmer="klingon")
    with pytest.raises(ShopsearchError, match="method"):
        BM25Retriever(catalog.ids, titles, method="bm99")
    with pytest.raises(ShopsearchError, match="empty catalogue"):
        BM25Retriever([], [])
    with pytest.raises(ShopsearchError, match="marks padding"):
        BM25Retriever(["a", "", "c"], ["x", "y", "z"])


def test_no_stemmer_no_stopwords(catalog):
    raw = BM25Retriever(catalog.ids, catalog.df["title"].tolist(), stemmer=None, stopwords=None)
    assert raw.search(["drills"], k=3).row(0) == ([], [])  # no stemming: "drills" != "drill"
    assert raw.search(["with"], k=3).row(0)[0]  # "with" is no longer a stop word


@pytest.mark.parametrize("method", ["robertson", "atire", "bm25l", "bm25+"])
def test_other_bm25_variants_rank_the_obvious_product_first(catalog, method):
    r = BM25Retriever(catalog.ids, catalog.df["title"].tolist(), method=method)
    result = r.search(["kohler toilet", "xyzzy"], k=3)
    assert result.ids[0, 0] == pid_of(catalog, "Kohler")
    assert result.row(1) == ([], [])


@pytest.mark.parametrize("positive_only", [True, False])
@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_top_k_equals_a_full_stable_sort(positive_only, k):
    """The selection over candidates only gives exactly a full sort by (-score, row): ties, zeros
    and k beyond the number of hits included."""
    from shopsearch.retrieval.bm25 import top_k

    rng = np.random.default_rng(k)
    for _ in range(50):
        scores = rng.choice([0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.25], size=40).astype(np.float32)
        rows, values = top_k(scores, k, positive_only=positive_only)
        order = np.lexsort((np.arange(len(scores)), -scores))
        if positive_only:
            order = order[scores[order] > 0]
        assert rows.tolist() == order[:k].tolist()
        assert values.dtype == np.float32 and np.array_equal(values, scores[rows])


def test_equal_scores_rank_in_catalogue_order():
    """Products with the same text tie; they come back in catalogue order, whatever the query batch."""
    ids = [f"P{i}" for i in range(6)]
    texts = ["oak shelf", "pine shelf", "oak shelf", "steel hook", "oak shelf", "oak table"]
    bm25 = BM25Retriever(ids, texts)
    alone = bm25.search(["oak shelf"], 5).row(0)[0]
    assert list(alone[:3]) == ["P0", "P2", "P4"]
    batch = bm25.search(["steel", "oak shelf"] * 40, 5)  # large enough for the thread pool
    assert all(list(batch.row(i)[0]) == list(alone) for i in range(1, 80, 2))
