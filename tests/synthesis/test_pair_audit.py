"""Precision of synthetic pairs against held-back judgments: only judged pairs count, the judged pool
of the same queries is the bar, breakdowns per type and source, and a clear error on bad input."""

from __future__ import annotations

import pandas as pd
import pytest

from shopsearch.data.schema import HOME_DEPOT, Judgments
from shopsearch.synthesis.audit import pair_precision
from shopsearch.synthesis.errors import SynthesisError


@pytest.fixture
def judgments() -> Judgments:
    rows = [("q1", "a", 6), ("q1", "b", 2), ("q1", "c", 5), ("q1", "d", 1), ("q2", "e", 5), ("q2", "f", 0),
            ("q3", "g", 6)]  # q3 has no synthetic pair: it is not part of the pool
    return Judgments(pd.DataFrame(rows, columns=["query_id", "product_id", "grade"]), HOME_DEPOT)


def test_precision_counts_judged_pairs_only(judgments):
    pairs = pd.DataFrame({
        "seed_query_id": ["q1", "q1", "q1", "q2", "q2"],
        "product_id": ["a", "b", "x", "e", "y"],  # x and y are unjudged
        "query_type": ["plain", "plain", "plain", "negative", "negative"],
        "source": ["bm25", "both", "dense", "dense", "bm25"],
    })
    audit = pair_precision(pairs, judgments)
    assert audit["pairs"] == 5 and audit["judged_share"] == 0.6
    assert audit["overall"]["judged"] == 3 and audit["overall"]["relevant"] == 2
    assert audit["overall"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    low, high = audit["overall"]["wilson_95"]
    assert low < 2 / 3 < high
    assert audit["judged_pool"]["judged"] == 6 and audit["judged_pool"]["precision"] == 0.5
    assert audit["mean_grade"] == pytest.approx((6 + 2 + 5) / 3, abs=1e-4)
    assert audit["by_query_type"]["negative"]["precision"] == 1.0
    assert audit["by_source"]["both"]["relevant"] == 0 and "y" not in str(audit["by_source"])
    assert pair_precision(pairs, judgments, relevant_min=6)["overall"]["relevant"] == 1


def test_no_judged_pair_gives_no_precision(judgments):
    audit = pair_precision(pd.DataFrame({"seed_query_id": ["q9"], "product_id": ["a"]}), judgments)
    assert audit["overall"] == {"judged": 0, "relevant": 0, "precision": None, "wilson_95": None}
    assert audit["judged_share"] == 0.0


def test_pairs_without_ids_are_refused(judgments):
    with pytest.raises(SynthesisError, match="seed_query_id"):
        pair_precision(pd.DataFrame({"query": ["x"], "product_id": ["a"]}), judgments)
