"""End to end on a tiny in-memory setup: two fake retrievers -> evaluate -> JSON / Markdown / HTML."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from shopsearch.data.schema import ESCI, Judgments, Queries
from shopsearch.eval import METRIC_KEYS, EvalError, StratumConfig, evaluate, evaluate_runs, holm
from shopsearch.retrieval.base import NO_ID, NO_SCORE, SearchResult

N_PRODUCTS, N_QUERIES = 60, 48


class FakeRetriever:
    """Scores every product from a fixed table: ``quality`` weighs the true grade against noise."""

    def __init__(self, name: str, table: dict[str, dict[str, float]], products: list[str]):
        self.name, self.table, self.products = name, table, products

    def _score(self, text: str, pid: str) -> float:
        return self.table.get(text, {}).get(pid, 0.0)

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        k_eff = min(k, len(self.products))
        ids = np.full((len(queries), k), NO_ID, dtype=object)
        scores = np.full((len(queries), k), NO_SCORE, dtype=np.float32)
        for i, text in enumerate(queries):
            s = np.array([self._score(text, p) for p in self.products])
            top = np.argsort(-s, kind="stable")[: k_eff - 5]  # fewer hits than k: padded rows
            ids[i, : top.size] = [self.products[j] for j in top]
            scores[i, : top.size] = s[top]
        return SearchResult(ids, scores)

    def score_candidates(self, queries: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[np.ndarray]:
        return [np.array([self._score(t, p) for p in c]) for t, c in zip(queries, candidates, strict=True)]


class SearchOnly:
    def __init__(self, inner: FakeRetriever):
        self.name, self.inner = "search-only", inner

    def search(self, queries: Sequence[str], k: int) -> SearchResult:
        return self.inner.search(queries, k)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    products = [f"p{i}" for i in range(N_PRODUCTS)]
    rows, good, bad = [], {}, {}
    texts = [f"query {i} " + "word " * (i % 4) for i in range(N_QUERIES)]
    for qi, text in enumerate(texts):
        judged = rng.choice(N_PRODUCTS, size=8, replace=False)
        grades = rng.integers(0, 4, size=8)
        rows += [(f"q{qi}", products[j], int(g)) for j, g in zip(judged, grades, strict=True)]
        noise = rng.normal(0, 1, N_PRODUCTS)
        truth = np.zeros(N_PRODUCTS)
        truth[judged] = grades
        good[text] = dict(zip(products, 1.5 * truth + noise, strict=True))
        bad[text] = dict(zip(products, 0.3 * truth + noise, strict=True))
    queries = Queries(pd.DataFrame({
        "query_id": [f"q{i}" for i in range(N_QUERIES)] + ["q_empty", "q_unjudged"],
        "text": [*texts, "", "nothing judged"],
        "traffic": np.r_[np.round(1000 / np.arange(1, N_QUERIES + 1)), [3, 7]],
        "vertical": ["tools" if i % 2 else "garden" for i in range(N_QUERIES + 2)],
        "query_type": ["knowledge" if i % 3 == 0 else None for i in range(N_QUERIES + 2)],
    }))
    rows.append(("q_empty", "p0", 3))
    judgments = Judgments(pd.DataFrame(rows, columns=["query_id", "product_id", "grade"]), ESCI)
    systems = {"bad": FakeRetriever("bad", bad, products), "good": FakeRetriever("good", good, products)}
    return systems, queries, judgments, products


@pytest.fixture(scope="module")
def report(setup):
    systems, queries, judgments, products = setup
    return evaluate(systems, queries, judgments, depth=30, n_resamples=2000, show_progress=False,
                    strata=StratumConfig(shares=(0.3, 0.3, 0.2)),
                    dataset_info={"name": "toy", "split": "dev", "products": len(products), "synthetic": True})


def test_json_shape(report, tmp_path):
    out = json.loads(report.write_json(tmp_path / "eval.json").read_text())  # allow_nan=False: no NaN inside
    for key in ("protocol", "grade_scheme", "systems", "comparisons", "strata_method", "counts", "significance"):
        assert key in out
    assert out["synthetic"] is True and out["protocol"]["name"] == "full"
    assert out["protocol"]["catalogue_size"] == N_PRODUCTS and out["protocol"]["split"] == "dev"
    assert out["counts"]["queries_evaluated"] == N_QUERIES
    assert out["counts"]["judged_queries_with_empty_text"] == 1 and out["counts"]["queries_without_judgments"] == 1
    for name in ("bad", "good"):
        system = out["systems"][name]
        assert list(system["metrics"]) == list(METRIC_KEYS)
        assert all(isinstance(system["metrics"][k], float) for k in METRIC_KEYS)
        assert set(system["strata"]) == {"frequency", "vertical", "query_type"}
        head = system["strata"]["frequency"]["HEAD"]
        assert head["n"] > 0 and set(METRIC_KEYS) <= set(head) and "ndcg@10" in head["ci"]
        assert len(system["per_query"]) == N_QUERIES
    assert out["strata_method"]["frequency"]["method"] == "traffic"
    assert out["strata_method"]["frequency"]["thresholds"]["share_cuts"] == pytest.approx([0.3, 0.6, 0.8])


def test_comparisons_and_holm(report):
    comps = report.comparisons
    assert {c["system"] for c in comps} == {"good"} and {c["baseline"] for c in comps} == {"bad"}
    assert {c["metric"] for c in comps} == set(METRIC_KEYS)
    np.testing.assert_allclose([c["p_holm"] for c in comps], holm([c["p_value"] for c in comps]))
    overall = {c["metric"]: c for c in comps if c["stratification"] == "overall"}
    for key in METRIC_KEYS:  # the planted difference is found, in points, with a CI excluding 0
        assert overall[key]["diff_points"] > 0 and overall[key]["ci_low_points"] > 0, key
    assert overall["ndcg@10"]["significant"]
    assert not any("too few" in n for n in report.notes)
    small = evaluate_runs({"a": report.runs["bad"], "b": report.runs["good"]}, None,
                          Judgments(pd.DataFrame({"query_id": ["q"], "product_id": ["p"], "grade": [3]}), ESCI),
                          n_resamples=3)
    assert any("too few" in n for n in small.notes)
    good = report.systems["good"]["metrics"]["ndcg@10"] - report.systems["bad"]["metrics"]["ndcg@10"]
    assert overall["ndcg@10"]["diff_points"] == pytest.approx(100 * good)


def test_markdown_and_html(report, tmp_path):
    md = report.to_markdown()
    assert "SYNTHETIC DATA" in md and "| system | ndcg@10 |" in md and "## By frequency" in md
    assert "full-corpus" in md and "Paired comparisons vs bad" in md
    path = report.write_html(tmp_path / "eval.html")
    page = path.read_text()
    assert page.count("data:image/png;base64,") >= 4  # overall + three stratifications
    assert "<style>" in page and "SYNTHETIC DATA" in page
    assert not re.search(r"(src|href)=['\"](https?:)?//", page)  # self-contained
    assert not list(tmp_path.glob(".eval.html*"))  # atomic write left no temp file


def test_rerank_protocol_and_auc_skip(setup):
    systems, queries, judgments, _ = setup
    rep = evaluate(systems, queries, judgments, protocol="rerank", n_resamples=200, show_progress=False)
    assert rep.protocol["name"] == "rerank" and "stable" in rep.protocol["tie_rule"]
    run = rep.runs["good"]["q0"]
    assert len(run) == 8 and [s for _, s in run] == sorted((s for _, s in run), reverse=True)
    with pytest.raises(EvalError, match="score_candidates"):
        evaluate({"x": SearchOnly(systems["good"])}, queries, judgments, protocol="rerank", show_progress=False)
    rep = evaluate({"good": systems["good"], "search-only": SearchOnly(systems["good"])}, queries, judgments,
                   n_resamples=200, show_progress=False)
    assert rep.systems["search-only"]["metrics"]["auc"] is None
    assert any("AUC not computed" in n for n in rep.systems["search-only"]["notes"])
    assert rep.systems["search-only"]["metrics"]["ndcg@10"] == rep.systems["good"]["metrics"]["ndcg@10"]
    assert not [c for c in rep.comparisons if c["metric"] == "auc"]
    with pytest.raises(EvalError, match="baseline"):
        evaluate(systems, queries, judgments, baseline="nope", n_resamples=10, show_progress=False)


def test_evaluate_runs_matches_evaluate(setup, report):
    systems, queries, judgments, _ = setup
    qrels = judgments.qrels()
    runs = {n: {q: [p for p, _ in v] for q, v in report.runs[n].items()} for n in systems}
    texts = dict(zip(queries.df["query_id"], queries.df["text"], strict=True))
    cand = {n: {q: dict(zip(qrels[q], s.score_candidates([texts[q]], [list(qrels[q])])[0], strict=True))
                for q in report.per_query[n].index} for n, s in systems.items()}
    rep = evaluate_runs(runs, queries, judgments, candidate_scores=cand, depth=30, n_resamples=2000,
                        strata=StratumConfig(shares=(0.3, 0.3, 0.2)))
    for n in systems:
        for key in METRIC_KEYS:
            assert rep.systems[n]["metrics"][key] == pytest.approx(report.systems[n]["metrics"][key])
    bare = evaluate_runs({"only": runs["good"]}, None, judgments, n_resamples=50)
    assert bare.systems["only"]["metrics"]["auc"] is None and bare.comparisons == []
    assert bare.counts["queries_evaluated"] == N_QUERIES + 1  # no query table: every judged query
