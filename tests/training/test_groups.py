"""Stage-2 graded groups, and the column layouts handed to the losses."""

from __future__ import annotations

import pandas as pd
import pytest

from shopsearch.data.schema import ESCI, HOME_DEPOT, Catalog, Dataset, Judgments, Queries
from shopsearch.training.groups import (
    MEAN_RATING_4_LEVELS,
    PADDING_LABEL,
    GroupConfig,
    build_groups,
    groups_to_columns,
    pairs_to_columns,
)


def make_dataset(
    rows: list[tuple[str, str, int]], scheme=ESCI, extra_products: tuple[str, ...] = ()
) -> Dataset:
    pids = sorted({p for _, p, _ in rows} | set(extra_products))
    qids = sorted({q for q, _, _ in rows})
    return Dataset(
        Catalog(pd.DataFrame({"product_id": pids, "title": [f"title {p}" for p in pids]})),
        Queries(pd.DataFrame({"query_id": qids, "text": [f"query {q}" for q in qids]})),
        Judgments(pd.DataFrame(rows, columns=["query_id", "product_id", "grade"]), scheme),
    )


ROWS = (
    [("big", f"e{i}", 3) for i in range(6)]
    + [("big", f"s{i}", 2) for i in range(3)]
    + [("big", "c0", 1)]
    + [("big", f"i{i}", 0) for i in range(5)]
    + [("small", "e9", 3), ("small", "i9", 0)]
    + [("one", "x1", 3), ("one", "x2", 3)]  # a single grade: skipped
)


def test_caps_variable_sizes_order_and_skips():
    groups, stats = build_groups(make_dataset(ROWS), GroupConfig(max_per_grade=2))
    g = groups.set_index("query_id")
    assert set(g.index) == {"big", "small"}
    assert g.loc["big", "grades"] == [3, 3, 2, 2, 1, 0, 0] and g.loc["small", "grades"] == [3, 0]
    assert g.loc["big", "size"] == 7 and g.loc["small", "size"] == 2  # variable sizes
    assert g.loc["big", "query"] == "query big" and g.loc["big", "product_ids"][0].startswith("e")
    assert stats["skipped_few_grades"] == 1 and stats["groups"] == 2
    assert stats["removed_by_grade_cap"] == (6 - 2) + (3 - 2) + (5 - 2) and stats["size_histogram"] == {
        2: 1,
        7: 1,
    }
    # per-grade caps as a dict; unlisted grades are bounded by the group size only
    groups, _ = build_groups(make_dataset(ROWS), GroupConfig(max_per_grade={3: 1, 0: 2}))
    assert groups.set_index("query_id").loc["big", "grades"] == [3, 2, 2, 2, 1, 0, 0]
    # seeded choice inside a capped grade
    a, _ = build_groups(make_dataset(ROWS), GroupConfig(max_per_grade=2, seed=1))
    b, _ = build_groups(make_dataset(ROWS), GroupConfig(max_per_grade=2, seed=1))
    assert a["product_ids"].tolist() == b["product_ids"].tolist()


def test_group_size_trim_keeps_every_grade():
    groups, stats = build_groups(make_dataset(ROWS), GroupConfig(max_per_grade=10, max_group_size=4))
    big = groups.set_index("query_id").loc["big"]
    assert big["grades"] == [3, 2, 1, 0]  # round-robin over grades, not the four best products
    assert stats["removed_by_group_size"] == 15 - 4


def test_min_grades_and_min_top_grade():
    _, stats = build_groups(make_dataset(ROWS), GroupConfig(min_grades=4))
    assert stats["groups"] == 1 and stats["skipped_few_grades"] == 2
    rows = [("q", "s", 2), ("q", "i", 0)]
    assert build_groups(make_dataset(rows), GroupConfig())[1]["groups"] == 1
    groups, stats = build_groups(make_dataset(rows), GroupConfig(min_top_grade=3))
    assert groups.empty and stats["skipped_top_grade_below_min"] == 1


def test_collapse_mean_rating_levels():
    rows = [("q", f"p{g}", g) for g in range(7)]
    groups, stats = build_groups(make_dataset(rows, HOME_DEPOT), GroupConfig(collapse=MEAN_RATING_4_LEVELS))
    assert groups.iloc[0]["grades"] == [3, 3, 2, 1, 1, 0, 0]
    assert stats["collapse"] == MEAN_RATING_4_LEVELS
    with pytest.raises(ValueError, match="no level"):
        build_groups(make_dataset(rows, HOME_DEPOT), GroupConfig(collapse={6: 1, 0: 0}))


def test_hard_negatives_join_at_the_bottom_grade_judgments_win():
    ds = make_dataset([("q", "e", 3), ("q", "s", 2)], extra_products=("h1", "h2"))
    mined = pd.DataFrame(  # as mine_hard_negatives leaves it: the pair's columns plus negative_i
        {
            "query_id": ["q", "q", "text:unjudged"],
            "product_id": ["e", "s", "e"],
            "negative_1": ["h1", "s", "h1"],
            "negative_2": ["h2", None, None],
        }
    )
    groups, stats = build_groups(ds, GroupConfig(), hard_negatives=mined)
    row = groups.iloc[0]
    assert row["product_ids"][:2] == ["e", "s"] and sorted(row["product_ids"][2:]) == ["h1", "h2"]
    assert row["grades"] == [3, 2, 0, 0]
    assert stats["hard_negatives_added"] == 2 and stats["hard_negatives_already_judged"] == 1
    assert stats["hard_negatives_outside_groups"] == 1  # a query with no judgments has no group


def test_groups_to_columns_padding_convention():
    groups, _ = build_groups(make_dataset(ROWS), GroupConfig(max_per_grade=1))
    texts = {p: f"text {p}" for p in {p for _, p, _ in ROWS}}
    ds = groups_to_columns(groups, texts)
    assert ds.column_names == ["query", "doc_1", "doc_2", "doc_3", "doc_4", "label"]
    small = ds[int(groups.index[groups["query_id"] == "small"][0])]
    assert small["doc_3"] == "" and small["doc_4"] == ""
    assert small["label"] == [3, 0, PADDING_LABEL, PADDING_LABEL]
    assert groups_to_columns(groups, texts, size=6).column_names[-2] == "doc_6"
    with pytest.raises(ValueError, match="exceed size"):
        groups_to_columns(groups, texts, size=2)
    with pytest.raises(KeyError, match="no rendered text"):
        groups_to_columns(groups, {})


def test_pairs_to_columns():
    pairs = pd.DataFrame({"query": ["drill"], "product_id": ["a"], "negative_1": ["b"], "negative_2": [None]})
    texts = {"a": "A", "b": "B"}
    ds = pairs_to_columns(pairs, texts, n_negatives=1)
    assert ds.column_names == ["anchor", "positive", "negative_1"] and ds[0] == {
        "anchor": "drill",
        "positive": "A",
        "negative_1": "B",
    }
    assert pairs_to_columns(pairs, texts).column_names == ["anchor", "positive"]
    with pytest.raises(ValueError, match="lack negative_2"):
        pairs_to_columns(pairs, texts, n_negatives=2)
