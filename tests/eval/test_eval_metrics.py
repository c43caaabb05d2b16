"""Metric definitions, cross-checked against pytrec_eval (fast) and ranx (slow: numba compile)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shopsearch.data.schema import ESCI, HOME_DEPOT
from shopsearch.eval.metrics import AucPool, parse_metric, per_query_metrics, pooled_auc
from shopsearch.eval.runs import read_trec_run, read_trec_run_scored, write_trec_run


def random_case(seed: int, n_queries: int = 150, n_docs: int = 60, max_grade: int = 6):
    """Random qrels (some queries all grade 0, some without a relevant product) and runs with strictly
    decreasing scores (external tools sort by score; our evaluator reads rank order: they agree)."""
    rng = np.random.default_rng(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels, run = {}, {}
    for qi in range(n_queries):
        q = f"q{qi}"
        judged = rng.choice(n_docs, size=int(rng.integers(1, 25)), replace=False)
        qrels[q] = {docs[j]: int(rng.integers(0, max_grade + 1)) for j in judged}
        ranked = rng.choice(n_docs, size=int(rng.integers(1, 45)), replace=False)
        run[q] = {docs[j]: float(len(ranked) - r) for r, j in enumerate(ranked)}
    return qrels, run


PYTREC = [  # ours, pytrec_eval measure
    ("ndcg@10", "ndcg_cut_10"),
    ("ndcg@5", "ndcg_cut_5"),
    ("ndcg", "ndcg"),
    ("recall@20", "recall_20"),
    ("map@10", "map_cut_10"),
    ("map", "map"),
    ("precision@5", "P_5"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pytrec_eval(seed):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels, run = random_case(seed)
    ours = per_query_metrics({q: list(v) for q, v in run.items()}, qrels, HOME_DEPOT, [m for m, _ in PYTREC])
    # binary metrics: pytrec_eval's relevance_level plays relevant_min
    res = pytrec_eval.RelevanceEvaluator(qrels, {m for _, m in PYTREC}, relevance_level=5).evaluate(run)
    with_rel = ours["map@10"].notna().to_numpy()
    assert 0 < with_rel.sum() < len(ours)  # both kinds of query are exercised
    for col, measure in PYTREC:
        theirs = np.array([res[q][measure] for q in ours.index])
        mine = ours[col].to_numpy()
        ok = ~np.isnan(mine)
        np.testing.assert_allclose(mine[ok], theirs[ok], atol=1e-12, err_msg=col)
        if parse_metric(col).binary:
            assert (~ok == ~with_rel).all()  # NaN exactly where no relevant product
    # mrr@k: trec_eval's recip_rank on the run cut at k
    cut = {q: dict(sorted(v.items(), key=lambda kv: -kv[1])[:10]) for q, v in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=5).evaluate(cut)
    theirs = np.array([rr[q]["recip_rank"] for q in ours.index])
    mrr = per_query_metrics({q: list(v) for q, v in run.items()}, qrels, HOME_DEPOT, ["mrr@10"])["mrr@10"]
    ok = mrr.notna().to_numpy()
    np.testing.assert_allclose(mrr.to_numpy()[ok], theirs[ok], atol=1e-12)


@pytest.mark.slow
def test_agrees_with_ranx():
    ranx = pytest.importorskip("ranx")
    qrels, run = random_case(3)
    ours = per_query_metrics({q: list(v) for q, v in run.items()}, qrels, HOME_DEPOT,
                             ["ndcg@10", "recall@20", "mrr@10", "map@10"])
    ranx_run = ranx.Run(run)
    # ranx "ndcg" is the linear-gain (Jarvelin) form; "-l5" thresholds binary metrics at relevant_min
    names = {"ndcg@10": "ndcg@10", "recall@20": "recall@20-l5", "mrr@10": "mrr@10-l5", "map@10": "map@10-l5"}
    ranx.evaluate(ranx.Qrels(qrels), ranx_run, list(names.values()))
    for col, name in names.items():
        theirs = np.array([ranx_run.scores[name][q] for q in ours.index])
        mine = ours[col].to_numpy()
        ok = ~np.isnan(mine)
        np.testing.assert_allclose(mine[ok], theirs[ok], atol=1e-12, err_msg=col)
        if parse_metric(col).binary:
            assert (theirs[~ok] == 0).all()  # ranx scores them 0; we leave them out (NaN)


def test_hand_example():
    qrels = {"q": {"a": 3, "b": 0, "c": 2, "d": 3}}
    run = {"q": ["x", "a", "", "b", "c", "a", "d"]}  # unjudged x, padding "", a duplicate of a
    m = per_query_metrics(run, qrels, ESCI, ["ndcg@3", "recall@3", "mrr@10", "map@10", "precision@2"]).loc["q"]
    # effective list: x a b c d -> grades 0 3 0 2 3
    dcg = 3 / math.log2(3) + 0 + 0
    idcg = 3 + 3 / math.log2(3) + 2 / math.log2(4)
    assert m["ndcg@3"] == pytest.approx(dcg / idcg)
    assert m["recall@3"] == pytest.approx(0.5)  # relevant = grade 3 (ESCI Exact): a, d
    assert m["mrr@10"] == pytest.approx(0.5)
    assert m["map@10"] == pytest.approx((1 / 2 + 2 / 5) / 2)
    assert m["precision@2"] == pytest.approx(0.5)
    exp = per_query_metrics(run, qrels, ESCI.with_gain("exponential"), ["ndcg@3"]).loc["q", "ndcg@3"]
    assert exp == pytest.approx((7 / math.log2(3)) / (7 + 7 / math.log2(3) + 3 / math.log2(4)))


def test_all_zero_and_missing_queries():
    qrels = {"z": {"a": 0, "b": 0}, "m": {"a": 6}}
    m = per_query_metrics({"z": ["a", "b"]}, qrels, HOME_DEPOT, ["ndcg@10", "recall@100"])
    assert m.loc["z", "ndcg@10"] == 0.0 and np.isnan(m.loc["z", "recall@100"])
    assert m.loc["m", "ndcg@10"] == 0.0 and m.loc["m", "recall@100"] == 0.0  # absent from run = empty list
    empty = per_query_metrics({}, {}, HOME_DEPOT)
    assert isinstance(empty, pd.DataFrame) and len(empty) == 0


def test_parse_metric():
    assert parse_metric("NDCG@10").k == 10 and parse_metric("p@5").base == "precision"
    assert parse_metric("auc").k is None and parse_metric("map").k is None
    for bad in ("foo@3", "ndcg@0", "auc@10", "ndcg@x"):
        with pytest.raises(ValueError):
            parse_metric(bad)


def _brute_auc(scores, grades, rel_min):
    s = np.concatenate(scores)
    g = np.concatenate(grades) >= rel_min
    pos, neg = s[g], s[~g]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (pos.size * neg.size)


def test_pooled_auc_and_weighted_pool():
    rng = np.random.default_rng(5)
    scores = [np.round(rng.normal(size=int(rng.integers(1, 9))), 1) for _ in range(80)]  # many ties
    grades = [rng.integers(0, 4, size=s.size) for s in scores]
    assert pooled_auc(scores, grades, 3) == pytest.approx(_brute_auc(scores, grades, 3))
    pool = AucPool(scores, grades, 3)
    assert pool.auc(np.ones((1, 80)))[0] == pytest.approx(pooled_auc(scores, grades, 3))
    w = rng.integers(0, 3, size=80)
    expanded_s = [s for s, k in zip(scores, w, strict=True) for _ in range(k)]
    expanded_g = [g for g, k in zip(grades, w, strict=True) for _ in range(k)]
    assert pool.auc(w[None, :])[0] == pytest.approx(_brute_auc(expanded_s, expanded_g, 3))
    assert np.isnan(pooled_auc([np.array([1.0])], [np.array([3])], 3))  # no negative
    assert pooled_auc([np.array([np.nan, 0.0])], [np.array([3, 0])], 3) == 0.0  # NaN ranks lowest


def test_trec_roundtrip(tmp_path):
    run = {"q1": [("b", 2.0), ("a", 2.0), ("c", 1.0)], "q2": [("x", 0.5)]}
    for name in ("r.txt", "r.txt.gz"):
        path = write_trec_run(run, tmp_path / name, tag="my run")
        assert read_trec_run(path) == {"q1": ["b", "a", "c"], "q2": ["x"]}  # ties kept in rank order
        assert read_trec_run_scored(path)["q1"][0] == ("b", 2.0)
    # rank column wins over file order
    (tmp_path / "s.txt").write_text("q 0 b 2 1.0 t\nq 0 a 1 1.0 t\n")
    assert read_trec_run(tmp_path / "s.txt") == {"q": ["a", "b"]}


def test_adjacent_grade_accuracy_counts_only_consecutive_present_grades():
    import numpy as np

    from shopsearch.eval.metrics import adjacent_grade_accuracy

    # grades 3, 1, 1, 0 (2 absent): pairs 3>1 (x2) and 1>0 (x2); 3 vs 0 is not adjacent
    scores = np.array([0.9, 0.5, 0.95, 0.1])
    grades = np.array([3, 1, 1, 0])
    correct, total = adjacent_grade_accuracy(scores, grades)
    assert total == 2 * 4
    assert correct == 2 * 3  # 0.9 > 0.5, 0.9 < 0.95 wrong, 0.5 > 0.1, 0.95 > 0.1
    c, t = adjacent_grade_accuracy(np.array([0.5, 0.5]), np.array([2, 1]))
    assert (c, t) == (1, 2)  # a tie counts half
    assert adjacent_grade_accuracy(np.array([0.3]), np.array([2])) == (0, 0)
