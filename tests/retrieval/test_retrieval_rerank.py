"""Retrieve, then re-rank: the order a cross-encoder gives the top N, the tail kept, and the spec everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import NO_ID, SearchResult
from shopsearch.retrieval.rerank import CrossEncoderReranker, RerankedRetriever
from shopsearch.retrieval.systems import build_systems, parse_system

TEXTS = {f"p{i}": f"product {i}" for i in range(8)}


class FixedFirstStage:
    """Returns p0..p{n-1} in order for every query (fewer when the catalogue is short)."""

    name = "first"

    def __init__(self, n: int = 6) -> None:
        self.n = n

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        m = min(k, self.n)
        ids = np.full((len(queries), k), NO_ID, dtype=object)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids[:, :m] = [f"p{j}" for j in range(m)]
        scores[:, :m] = np.arange(m, 0, -1)
        return SearchResult(ids, scores)


class DigitReranker:
    """Scores a pair by the product's number (p5 best), and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(queries))
        return np.array([float(t.split()[-1]) for t in texts], dtype=np.float32)


def test_the_top_n_is_reordered_by_the_cross_encoder_and_the_rest_keeps_its_place():
    reranker = DigitReranker()
    system = RerankedRetriever(FixedFirstStage(6), reranker, TEXTS, depth=3)
    result = system.search(["a", "b"], 5)
    assert result.ids[0].tolist() == ["p2", "p1", "p0", "p3", "p4"]
    assert reranker.calls == [6]  # every pair of both queries in one call
    assert np.all(np.diff(result.scores[0]) < 0)  # descending, tail below the re-ranked head
    assert system.name == "first>rerank@3"


def test_k_below_depth_and_short_lists_are_padded():
    system = RerankedRetriever(FixedFirstStage(2), DigitReranker(), TEXTS, depth=5)
    result = system.search(["a"], 4)
    assert result.ids[0].tolist() == ["p1", "p0", NO_ID, NO_ID]
    assert np.isneginf(result.scores[0, 2:]).all()


def test_rerank_specs_parse_and_name_themselves():
    spec = parse_system("hybrid+spell>rerank:runs/ce-7/model@30")
    assert (spec.kind, spec.spell, spec.rerank, spec.rerank_depth) == ("hybrid", True, "runs/ce-7/model", 30)
    assert spec.name == "hybrid+spell>rerank:ce-7@30"
    assert spec.first_stage.name == "hybrid+spell" and spec.base.name == "hybrid"
    assert parse_system("bm25>rerank:/m/ce").rerank_depth == 50
    with pytest.raises(ShopsearchError, match="N >= 1"):
        parse_system("bm25>rerank:@0")


def test_a_saved_cross_encoder_reranks_a_built_system(tiny_cross_encoder, catalog):
    texts = list(catalog.df["title"])
    systems = build_systems(["bm25", f"bm25>rerank:{tiny_cross_encoder}@5"], catalog.ids, texts, show_progress=False)
    assert list(systems) == ["bm25", f"bm25>rerank:{tiny_cross_encoder.parent.name}@5"]  # RUN/model: named by RUN
    plain, reranked = systems.values()
    queries = ["cordless drill", "running shoes for women"]
    first, second = plain.search(queries, 8), reranked.search(queries, 8)
    for i in range(len(queries)):
        assert sorted(first.ids[i, :5]) == sorted(second.ids[i, :5])  # the same five, re-ordered
        assert first.ids[i, 5:].tolist() == second.ids[i, 5:].tolist()
    direct = CrossEncoderReranker(tiny_cross_encoder)
    text_of = dict(zip(catalog.ids, texts, strict=True))
    hits = [p for p in second.ids[0, :5] if p != NO_ID]
    assert len(hits) >= 2
    logits = direct.score([queries[0]] * len(hits), [text_of[p] for p in hits])
    assert np.allclose(logits, second.scores[0, : len(hits)], atol=1e-5) and np.all(np.diff(logits) <= 0)


def test_a_missing_reranker_is_a_clear_error(tmp_path):
    with pytest.raises(ShopsearchError, match="is not a directory"):
        CrossEncoderReranker(tmp_path / "nope")


class FavouriteReranker:
    """Scores p3 far above every other product: a cross-encoder sure of one hit."""

    fusion_weight = 0.5

    def score(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        return np.array([10.0 if t == "product 3" else 0.0 for t in texts], dtype=np.float32)


@pytest.mark.parametrize(("weight", "order"), [
    (0.0, ["p0", "p1", "p2", "p3"]),  # the first stage alone
    (0.5, ["p0", "p3", "p1", "p2"]),  # z-scores: 0.5*(1.34, 0.45, -0.45, -1.34) + 0.5*(-0.58, -0.58, -0.58, 1.73)
    (1.0, ["p3", "p0", "p1", "p2"]),  # the cross-encoder alone, its ties in first-stage order
    (None, ["p3", "p0", "p1", "p2"]),
])
def test_fusion_weighs_the_cross_encoder_against_the_first_stage(weight, order):
    system = RerankedRetriever(FixedFirstStage(4), FavouriteReranker(), TEXTS, depth=4, fusion_weight=weight)
    result = system.search(["q"], 4)
    assert result.ids[0].tolist() == order
    assert np.all(np.diff(result.scores[0]) <= 0)


def test_the_fusion_weight_defaults_to_the_models_own_and_is_checked(tmp_path):
    from shopsearch.retrieval.rerank import FUSION_FILE, read_fusion_weight

    assert RerankedRetriever(FixedFirstStage(4), FavouriteReranker(), TEXTS, depth=4).fusion_weight == 0.5
    assert RerankedRetriever(FixedFirstStage(4), DigitReranker(), TEXTS, depth=4).fusion_weight is None
    assert read_fusion_weight(tmp_path) is None
    (tmp_path / FUSION_FILE).write_text('{"fusion_weight": 0.3}')
    assert read_fusion_weight(tmp_path) == 0.3
    (tmp_path / FUSION_FILE).write_text('{"fusion_weight": 3}')
    with pytest.raises(ShopsearchError, match="fusion_weight"):
        read_fusion_weight(tmp_path)
    with pytest.raises(ShopsearchError, match="fusion_weight"):
        RerankedRetriever(FixedFirstStage(4), DigitReranker(), TEXTS, fusion_weight=1.5)
