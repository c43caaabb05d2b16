"""Stage-1 pairs from judgments, and merging pair sources."""

from __future__ import annotations

import pandas as pd
import pytest

from shopsearch.data.schema import ESCI, HOME_DEPOT, Catalog, Dataset, Judgments, Queries
from shopsearch.training.pairs import (
    PAIR_COLUMNS,
    PairConfig,
    merge_pairs,
    normalize_query,
    pairs_from_judgments,
)


def make_dataset(
    rows: list[tuple[str, str, int]], scheme=ESCI, texts: dict[str, str] | None = None
) -> Dataset:
    """rows: (query_id, product_id, grade); query text = 'text of <qid>' unless given."""
    pids = sorted({p for _, p, _ in rows})
    qids = sorted({q for q, _, _ in rows})
    texts = texts or {}
    return Dataset(
        Catalog(pd.DataFrame({"product_id": pids, "title": [f"title {p}" for p in pids]})),
        Queries(pd.DataFrame({"query_id": qids, "text": [texts.get(q, f"text of {q}") for q in qids]})),
        Judgments(pd.DataFrame(rows, columns=["query_id", "product_id", "grade"]), scheme),
    )


ESCI_ROWS = [
    ("q1", "e1", 3), ("q1", "e2", 3), ("q1", "s1", 2), ("q1", "c1", 1), ("q1", "i1", 0),
    ("q2", "s2", 2), ("q2", "i2", 0),
    ("q3", "e3", 3),
]  # fmt: skip


def test_default_takes_only_the_top_grade():
    pairs = pairs_from_judgments(make_dataset(ESCI_ROWS))
    assert list(pairs.columns[: len(PAIR_COLUMNS)]) == list(PAIR_COLUMNS)
    assert sorted(pairs["product_id"]) == ["e1", "e2", "e3"]
    assert set(pairs["source"]) == {"judgment"}
    assert (pairs["grade"] == 3).all() and (pairs["weight"] == 1.0).all()
    assert pairs.loc[pairs["product_id"] == "e1", "query"].item() == "text of q1"
    assert pairs.attrs["stats"]["pairs"] == 3 and pairs.attrs["stats"]["substitute_pairs"] == 0


def test_substitutes_join_when_configured_with_their_weight():
    cfg = PairConfig(substitutes_as_positives=True, substitute_weight=0.5)
    pairs = pairs_from_judgments(make_dataset(ESCI_ROWS), cfg)
    assert sorted(pairs["product_id"]) == ["e1", "e2", "e3", "s1", "s2"]  # complements never
    assert pairs.set_index("product_id").loc["s1", "weight"] == 0.5
    assert pairs.attrs["stats"]["substitute_min_grade"] == 2
    explicit = pairs_from_judgments(
        make_dataset(ESCI_ROWS), PairConfig(substitutes_as_positives=True, substitute_min_grade=1)
    )
    assert "c1" in set(explicit["product_id"])
    with pytest.raises(ValueError, match="above"):
        pairs_from_judgments(
            make_dataset(ESCI_ROWS), PairConfig(substitutes_as_positives=True, substitute_min_grade=4)
        )


def test_mean_rating_threshold_is_relevant_min_and_overridable():
    rows = [("q1", f"p{g}", g) for g in range(7)]
    ds = make_dataset(rows, scheme=HOME_DEPOT)
    assert sorted(pairs_from_judgments(ds)["grade"].tolist()) == [5, 6]  # r >= 2.67
    assert sorted(pairs_from_judgments(ds, PairConfig(positive_min_grade=6))["grade"].tolist()) == [6]
    with_subs = pairs_from_judgments(ds, PairConfig(substitutes_as_positives=True))
    assert sorted(with_subs["grade"].tolist()) == [4, 5, 6]  # one grade below: r = 2.33


def test_cap_per_query_keeps_best_grades_and_is_seeded():
    rows = [("q1", f"e{i}", 3) for i in range(6)] + [("q1", "s", 2)]
    ds = make_dataset(rows)
    cfg = PairConfig(substitutes_as_positives=True, max_pairs_per_query=3, seed=7)
    a, b = pairs_from_judgments(ds, cfg), pairs_from_judgments(ds, cfg)
    assert len(a) == 3 and (a["grade"] == 3).all()
    assert a["product_id"].tolist() == b["product_id"].tolist()
    assert a.attrs["stats"]["dropped_over_query_cap"] == 4


def test_pairs_without_text_are_counted_not_kept():
    ds = make_dataset(ESCI_ROWS, texts={"q3": "   "})
    texts = {p: f"title {p}" for p in ds.catalog.df["product_id"]} | {"e2": ""}
    pairs = pairs_from_judgments(ds, product_texts=texts)
    assert sorted(pairs["product_id"]) == ["e1"]
    stats = pairs.attrs["stats"]
    assert stats["dropped_no_query_text"] == 1 and stats["dropped_no_product_text"] == 1


def test_normalize_query():
    assert normalize_query("  Cordless   DRILL\t") == "cordless drill"
    assert normalize_query("ｄｒｉｌｌ") == "drill"  # NFKC folds full-width letters
    assert normalize_query(None) == "" and normalize_query(float("nan")) == ""


def test_merge_dedupes_on_normalised_text_keeps_max_weight_and_sources():
    judged = pairs_from_judgments(make_dataset(ESCI_ROWS, texts={"q1": "Cordless Drill"}))
    logs = pd.DataFrame(
        {
            "query_id": ["text:cordless drill", "text:cordless drill", "text:saw"],
            "query": ["cordless  drill", "cordless drill", "saw"],
            "product_id": ["e1", "x9", "e1"],
            "source": ["log:order", "log:click", "log:click"],
            "grade": [None, None, None],
            "weight": [5.0, 1.0, 1.0],
        }
    )
    merged = merge_pairs(judged, logs)
    assert len(merged) == len(judged) + 2  # (drill, e1) merged
    row = merged[(merged["product_id"] == "e1") & (merged["query_id"] == "q1")].iloc[0]
    assert row["weight"] == 5.0 and row["source"] == "log:order"
    assert row["sources"] == "judgment|log:order" and row["grade"] == 3
    # the log pair of a judged query takes the dataset's query id; an unjudged query keeps its own
    assert merged.loc[merged["product_id"] == "x9", "query_id"].item() == "q1"
    assert "text:saw" in set(merged["query_id"])
    # weights per source family: down-weighting logs lets the judgment win the merge
    down = merge_pairs(judged, logs, weights={"log": 0.1})
    row = down[(down["product_id"] == "e1") & (down["query_id"] == "q1")].iloc[0]
    assert row["source"] == "judgment" and row["weight"] == 1.0
    assert merge_pairs().empty
