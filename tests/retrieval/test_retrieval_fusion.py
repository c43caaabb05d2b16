"""Fusion math on hand-made result lists, and the hybrid retriever over stub components."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import NO_ID, NO_SCORE, Retriever, SearchResult
from shopsearch.retrieval.fusion import (
    HybridRetriever,
    normalize_scores,
    reciprocal_rank_fusion,
    weighted_score_fusion,
)


def result(rows: list[list[tuple[str, float]]], k: int | None = None) -> SearchResult:
    k = k or max(len(r) for r in rows)
    ids = np.full((len(rows), k), NO_ID, dtype=object)
    scores = np.full((len(rows), k), NO_SCORE, dtype=np.float32)
    for i, row in enumerate(rows):
        for j, (pid, s) in enumerate(row):
            ids[i, j], scores[i, j] = pid, s
    return SearchResult(ids, scores)


A = result([[("a", 9.0), ("b", 7.0), ("c", 1.0)], [("x", 3.0), ("", 0.0), ("", 0.0)]])
B = result([[("b", 0.9), ("d", 0.8), ("a", 0.1)], [("y", 0.5), ("x", 0.4), ("z", 0.3)]])


def test_rrf_values_are_exact():
    fused = reciprocal_rank_fusion([A, B], k=4, rrf_k=60)
    ids, scores = fused.row(0)
    expected = {
        "a": 1 / 61 + 1 / 63,
        "b": 1 / 62 + 1 / 61,
        "c": 1 / 63,
        "d": 1 / 62,
    }
    assert ids == ["b", "a", "d", "c"]
    np.testing.assert_allclose(scores, [expected[i] for i in ids], rtol=1e-6)
    assert fused.scores.dtype == np.float32
    # second row: padding of A is skipped; x is in both lists
    ids, scores = fused.row(1)
    assert ids == ["x", "y", "z"]
    np.testing.assert_allclose(scores, [1 / 61 + 1 / 62, 1 / 61, 1 / 63], rtol=1e-6)
    assert fused.ids[1, 3] == NO_ID and np.isneginf(fused.scores[1, 3])


def test_rrf_weights_and_k():
    fused = reciprocal_rank_fusion([A, B], k=2, rrf_k=10, weights=[2.0, 0.5])
    ids, scores = fused.row(0)
    expected = {"a": 2 / 11 + 0.5 / 13, "b": 2 / 12 + 0.5 / 11}
    assert ids == ["a", "b"] and fused.ids.shape == (2, 2)
    np.testing.assert_allclose(scores, [expected["a"], expected["b"]], rtol=1e-6)


def test_rrf_ties_break_by_best_rank_then_component_order():
    one = result([[("p", 1.0), ("q", 0.5)]])
    two = result([[("r", 1.0), ("s", 0.5)]])
    fused = reciprocal_rank_fusion([one, two], k=4)
    assert fused.row(0)[0] == ["p", "r", "q", "s"]


def test_weighted_minmax_values():
    fused = weighted_score_fusion([A, B], k=4, weights=[1.0, 1.0], normalization="minmax")
    # A row 0: a=1, b=0.75, c=0 ; B row 0: b=1, d=0.875, a=0 ; absent = 0
    expected = {"a": 1.0, "b": 1.75, "c": 0.0, "d": 0.875}
    ids, scores = fused.row(0)
    assert ids == ["b", "a", "d", "c"]
    np.testing.assert_allclose(scores, [expected[i] for i in ids], rtol=1e-6)
    # row 1: A has a single hit (x -> 1.0); B: y=1, x=0.5, z=0
    ids, scores = fused.row(1)
    assert ids == ["x", "y", "z"]
    np.testing.assert_allclose(scores, [1.5, 1.0, 0.0], atol=1e-6)


def test_weighted_zscore_credits_absent_products_with_the_row_floor():
    s = np.array([[1.0, 2.0, 3.0]])
    norm, floor = normalize_scores(s, np.ones_like(s, dtype=bool), "zscore")
    np.testing.assert_allclose(norm, [[-1.2247449, 0.0, 1.2247449]], rtol=1e-6)
    np.testing.assert_allclose(floor, [-1.2247449], rtol=1e-6)
    one = result([[("a", 1.0), ("b", 2.0), ("c", 3.0)]])
    two = result([[("c", 5.0), ("d", 1.0)]])
    fused = weighted_score_fusion([one, two], k=4, weights=[1.0, 2.0], normalization="zscore")
    z = 1.2247449
    expected = {"a": -z + 2 * -1, "b": 0 + 2 * -1, "c": z + 2 * 1, "d": -z + 2 * -1}
    ids, scores = fused.row(0)
    assert ids[0] == "c" and set(ids) == set(expected)
    np.testing.assert_allclose(scores, [expected[i] for i in ids], rtol=1e-5)


def test_fusion_input_errors():
    with pytest.raises(ShopsearchError, match="at least one"):
        reciprocal_rank_fusion([], k=3)
    with pytest.raises(ShopsearchError, match="different numbers of queries"):
        reciprocal_rank_fusion([A, result([[("a", 1.0)]])], k=3)
    with pytest.raises(ShopsearchError, match="weight"):
        weighted_score_fusion([A, B], k=3, weights=[1.0])
    with pytest.raises(ShopsearchError, match="normalization"):
        weighted_score_fusion([A, B], k=3, normalization="softmax")  # type: ignore[arg-type]


def test_fusion_of_all_padding_is_padding():
    empty = result([[("", 0.0), ("", 0.0)]])
    fused = reciprocal_rank_fusion([empty, empty], k=3)
    assert fused.ids.shape == (1, 3) and fused.row(0) == ([], [])


class Stub:
    """A retriever over fixed per-query score tables (product -> score)."""

    def __init__(self, name: str, table: dict[str, dict[str, float]]) -> None:
        self.name = name
        self.table = table

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        rows = [sorted(self.table.get(q, {}).items(), key=lambda kv: -kv[1])[:k] for q in queries]
        return result([r or [("", 0.0)] for r in rows], k=k)

    def score_candidates(
        self, queries: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        return [
            np.array([self.table.get(q, {}).get(c, 0.0) for c in cs])
            for q, cs in zip(queries, candidates, strict=True)
        ]


LEX = Stub("bm25", {"q": {"a": 9.0, "b": 7.0, "c": 1.0}})
SEM = Stub("dense", {"q": {"b": 0.9, "d": 0.8, "a": 0.1}})


def test_hybrid_search_matches_the_pure_functions():
    hybrid = HybridRetriever([LEX, SEM], method="rrf", depth=3, rescore_union=False)
    assert isinstance(hybrid, Retriever) and hybrid.name == "hybrid"
    fused = hybrid.search(["q", "unknown"], k=4)
    assert fused.row(0)[0] == ["b", "a", "d", "c"]
    assert fused.row(1) == ([], [])
    weighted = HybridRetriever([LEX, SEM], method="weighted", depth=3, rescore_union=False).search(["q"], k=2)
    assert weighted.row(0)[0] == ["b", "a"]


def test_default_hybrid_is_weighted_fusion_over_the_rescored_union():
    described = HybridRetriever([LEX, SEM]).describe()
    assert described["method"] == "weighted" and described["rescore_union"] is True
    assert described["weights"] is None and described["normalization"] == "minmax"


def test_hybrid_score_candidates_rrf_over_candidate_ranks():
    hybrid = HybridRetriever([LEX, SEM], method="rrf", rrf_k=60)
    (scores,) = hybrid.score_candidates(["q"], [["c", "a", "d"]])
    # LEX ranks within [c, a, d]: a=1, c=2, d=3 ; SEM: d=1, a=2, c=3
    expected = [1 / 62 + 1 / 63, 1 / 61 + 1 / 62, 1 / 63 + 1 / 61]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    # ties share their average rank: LEX gives x and y both 0 -> rank 1.5 each
    (tied,) = HybridRetriever([LEX], method="rrf").score_candidates(["q"], [["x", "y"]])
    np.testing.assert_allclose(tied, [1 / 61.5, 1 / 61.5], rtol=1e-6)


def test_hybrid_score_candidates_weighted():
    hybrid = HybridRetriever([LEX, SEM], method="weighted", weights=[1.0, 3.0])
    (scores,) = hybrid.score_candidates(["q"], [["a", "b", "d"]])
    # LEX over [9, 7, 0] -> [1, 7/9, 0]; SEM over [0.1, 0.9, 0.8] -> [0, 1, 0.875]
    np.testing.assert_allclose(scores, [1.0, 7 / 9 + 3.0, 3 * 0.875], rtol=1e-6)
    assert hybrid.score_candidates(["q"], [[]])[0].shape == (0,)


def test_rescored_union_scores_every_candidate_exactly():
    """Lists of depth 2: LEX [a 9, b 7], SEM [b 0.9, d 0.8]. Over the union [a, b, d] the exact scores
    are LEX [9, 7, 0] -> [1, 7/9, 0] and SEM [0.1, 0.9, 0.8] -> [0, 1, 0.875]: b 1.78, a 1, d 0.875.
    The lists' floors would have given a and b 1 each (a tie) and d 0."""
    hybrid = HybridRetriever([LEX, SEM], method="weighted", depth=2, rescore_union=True)
    fused = hybrid.search(["q", "unknown"], k=2)
    ids, scores = fused.row(0)
    assert ids == ["b", "a"]
    np.testing.assert_allclose(scores, [1 + 7 / 9, 1.0], rtol=1e-6)
    assert fused.row(1) == ([], [])
    assert hybrid.describe()["rescore_union"] is True
    floors = HybridRetriever([LEX, SEM], method="weighted", depth=2, rescore_union=False).search(["q"], k=2)
    np.testing.assert_allclose(floors.row(0)[1], [1.0, 1.0])


def test_rescored_union_needs_components_that_score_candidates():
    class SearchOnly:
        name = "search-only"

        def search(self, queries, k):
            return LEX.search(queries, k)

    with pytest.raises(ShopsearchError, match=r"search-only.*rescore_union=False"):
        HybridRetriever([LEX, SearchOnly()])
    fused = HybridRetriever([LEX, SearchOnly()], rescore_union=False).search(["q"], k=2)
    assert fused.row(0)[0] == ["a", "b"]


def test_rescored_union_encodes_each_dense_query_once():
    """Without a query cache (a server measuring its encoder), the dense component's search and its
    scoring of the union share one encoding, and the exact scores are the stored vectors' cosines."""
    from shopsearch.retrieval.dense import DenseRetriever

    class CountingEncoder:
        model_id, dimension, normalize = "counting", 3, True

        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        def encode(self, texts, *, is_query=False, show_progress=False):
            self.calls.append(list(texts))
            return np.array([[1.0, 2.0 * len(t), 0.3] for t in texts], dtype=np.float32)

    enc = CountingEncoder()
    vectors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=np.float32)
    dense = DenseRetriever(enc, ["a", "b", "c", "d"], vectors, query_cache_size=0)
    fused = HybridRetriever([LEX, dense], depth=2).search(["q", "unknown"], k=2)
    assert enc.calls == [["q", "unknown"]]
    # union for "q": LEX [a, b] + dense [b, d] -> exact cosines of q = (1, 2, .3) with a, b, d
    q = np.array([1, 2, 0.3])
    cos = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    lex = np.array([9.0, 7.0, 0.0])  # a, b, d
    sem = cos[[0, 1, 3]]
    expected = (lex - lex.min()) / np.ptp(lex) + (sem - sem.min()) / np.ptp(sem)
    ids, scores = fused.row(0)
    assert ids == ["b", "a"]  # then d: 0.905
    np.testing.assert_allclose(scores, expected[[1, 0]], rtol=1e-5)
    assert expected[2] < expected[0]


class CoverageStub(Stub):
    """LEX with a fixed term coverage per query, as BM25Retriever.query_term_coverage reports it."""

    def __init__(self, coverage: dict[str, float]) -> None:
        super().__init__("bm25", LEX.table)
        self.coverage = coverage

    def query_term_coverage(self, queries: Sequence[str]) -> np.ndarray:
        return np.array([self.coverage.get(q, 1.0) for q in queries])


def test_coverage_weighting_moves_the_lexical_weight_the_query_lacks_to_the_others():
    lex = CoverageStub({"q": 0.25})
    hybrid = HybridRetriever([lex, SEM], weights=[1.0, 3.0], weighting="coverage")
    # LEX keeps 1 x 0.25; the 0.75 it gives up goes to SEM, the only other component: 3.75
    np.testing.assert_allclose(hybrid.query_weights(["q", "full"]), [[0.25, 3.75], [1.0, 3.0]])
    (scores,) = hybrid.score_candidates(["q"], [["a", "b", "d"]])
    # normalised as in test_hybrid_score_candidates_weighted: LEX [1, 7/9, 0], SEM [0, 1, 0.875]
    np.testing.assert_allclose(scores, [0.25, 0.25 * 7 / 9 + 3.75, 3.75 * 0.875], rtol=1e-6)
    # equal weights, half coverage: search ranks by 0.25 x LEX + 0.75 x SEM over the rescored union
    half = HybridRetriever([CoverageStub({"q": 0.5}), SEM], depth=2, weighting="coverage").search(["q"], k=3)
    assert half.row(0)[0] == ["b", "d", "a"]  # fixed equal weights put a (1.0) above d (0.875)
    assert HybridRetriever([LEX, SEM], depth=2).search(["q"], k=3).row(0)[0] == ["b", "a", "d"]
    # without a lexical component, or fully covered, coverage weighting is the fixed weighting
    assert HybridRetriever([LEX, SEM], weighting="coverage").query_weights(["q"]).tolist() == [[1.0, 1.0]]
    assert HybridRetriever([lex, SEM], weighting="coverage").describe()["weighting"] == "coverage"


def test_hybrid_validates_its_options():
    with pytest.raises(ShopsearchError):
        HybridRetriever([])
    with pytest.raises(ShopsearchError, match="fusion method"):
        HybridRetriever([LEX], method="borda")  # type: ignore[arg-type]
    with pytest.raises(ShopsearchError, match="weight"):
        HybridRetriever([LEX, SEM], weights=[1.0, -1.0])
    with pytest.raises(ShopsearchError, match="depth"):
        HybridRetriever([LEX], depth=0)
    with pytest.raises(ShopsearchError, match="weighting"):
        HybridRetriever([LEX], weighting="idf")  # type: ignore[arg-type]
    with pytest.raises(ShopsearchError, match="rescore_union"):
        HybridRetriever([LEX, SEM], weighting="coverage", rescore_union=False)


@pytest.mark.parametrize("method", ["minmax", "zscore"])
def test_normalisation_of_padded_rows_is_silent_and_zero(method):
    scores = np.array([[NO_SCORE, NO_SCORE], [2.0, NO_SCORE], [3.0, 1.0]], dtype=np.float32)
    valid = np.array([[False, False], [True, False], [True, True]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        norm, floor = normalize_scores(scores, valid, method)
    assert np.isfinite(norm).all() and np.isfinite(floor).all()
    assert norm[0].tolist() == [0.0, 0.0] and floor[0] == 0.0
    expected_single = 1.0 if method == "minmax" else 0.0
    assert norm[1].tolist() == [expected_single, 0.0]
    assert norm[2].tolist() == ([1.0, 0.0] if method == "minmax" else [1.0, -1.0])


def test_system_specs_name_the_default_hybrid_plainly():
    from shopsearch.retrieval.systems import SystemSpec, parse_system

    assert (
        parse_system("hybrid") == parse_system("hybrid:weighted") == SystemSpec("hybrid", fusion="weighted")
    )
    assert parse_system("hybrid").name == "hybrid"
    assert parse_system("hybrid:rrf").name == "hybrid:rrf" and parse_system("hybrid:rrf").fusion == "rrf"
    coverage = parse_system("hybrid:coverage+spell")
    assert coverage.name == "hybrid:coverage+spell" and coverage.base.name == "hybrid:coverage"
    assert coverage.hybrid_options() == {"method": "weighted", "weighting": "coverage"}
    assert parse_system("hybrid").hybrid_options() == {"method": "weighted"}
    with pytest.raises(ShopsearchError, match="hybrid:coverage"):
        parse_system("hybrid:borda")
