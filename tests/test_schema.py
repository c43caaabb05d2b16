import numpy as np
import pandas as pd
import pytest

from shopsearch.data.render import ProductTextRenderer
from shopsearch.data.schema import ESCI, HOME_DEPOT, WANDS, Catalog, Judgments, Queries, custom_scheme


def test_esci_letters_and_words_map_to_the_same_grades():
    assert [ESCI.to_grade(x) for x in "ESCI"] == [3, 2, 1, 0]
    assert [ESCI.to_grade(x) for x in ("exact", "Substitute", "COMPLEMENT", " Irrelevant ")] == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="unknown label"):
        ESCI.to_grade("X")


def test_wands_grades():
    assert [WANDS.to_grade(x) for x in ("Exact", "Partial", "Irrelevant")] == [2, 1, 0]


@pytest.mark.parametrize(
    ("rating", "grade"),
    [(1.0, 0), (1.33, 1), (1.67, 2), (2.0, 3), (2.33, 4), (2.5, 4), (2.67, 5), (2.75, 5), (3.0, 6)],
)
def test_mean_rating_rounds_half_to_even_consistent_with_the_protocol(rating, grade):
    assert HOME_DEPOT.to_grade(rating) == grade
    # binary relevance of the protocol: r >= 2.67 <=> grade >= relevant_min
    assert (HOME_DEPOT.to_grade(rating) >= HOME_DEPOT.relevant_min) == (rating >= 2.67)


@pytest.mark.parametrize("bad", [float("nan"), "abc", 0.5, 3.5, None])
def test_mean_rating_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        HOME_DEPOT.to_grade(bad)


def test_gain_and_overrides_are_stated():
    assert list(ESCI.gain_of(np.array([0, 1, 3]))) == [0, 1, 3]
    exp = ESCI.with_gain("exponential")
    assert list(exp.gain_of(np.array([0, 1, 3]))) == [0, 1, 7]
    assert exp.describe()["gain"] == "exponential"
    assert ESCI.with_relevant_min(2).describe()["relevant_min"] == 2


def test_custom_scheme():
    s = custom_scheme({"good": 2, "ok": 1, "bad": 0})
    assert s.to_grade("GOOD") == 2 and s.relevant_min == 2 and s.max_grade == 2
    with pytest.raises(ValueError):
        custom_scheme({})


def test_frames_get_canonical_columns_and_refuse_duplicates():
    cat = Catalog(pd.DataFrame({"product_id": [1, 2], "title": ["a", None]}))
    assert list(cat.df.columns)[:2] == ["product_id", "title"]
    assert cat.ids.tolist() == ["1", "2"] and cat.df["title"].tolist() == ["a", ""]
    assert cat.df["attributes"].tolist() == [{}, {}]
    with pytest.raises(ValueError, match="unique"):
        Catalog(pd.DataFrame({"product_id": ["x", "x"], "title": ["a", "b"]}))
    q = Queries(pd.DataFrame({"query_id": ["q1"], "text": ["tv"]}))
    assert not q.has_traffic and np.isnan(q.df["traffic"].iloc[0])
    j = Judgments(pd.DataFrame({"query_id": ["q1", "q1"], "product_id": ["1", "2"], "grade": [3, 0]}), ESCI)
    assert j.qrels() == {"q1": {"1": 3, "2": 0}}
    with pytest.raises(ValueError, match="one row per"):
        Judgments(pd.DataFrame({"query_id": ["q1", "q1"], "product_id": ["1", "1"], "grade": [3, 0]}), ESCI)


def test_renderer_fields_order_and_cut():
    cat = Catalog(
        pd.DataFrame(
            {
                "product_id": ["1"],
                "title": ["Drill"],
                "brand": ["Bosch"],
                "color": [None],
                "bullets": ["18V\ncordless"],
                "attributes": [{"voltage": "18V"}],
            }
        )
    )
    text = ProductTextRenderer(fields=("title", "brand", "color", "bullets", "attributes")).render(cat)[0]
    assert text == "Drill | brand: Bosch | bullets: 18V; cordless | attributes: voltage: 18V"
    assert ProductTextRenderer(fields=("brand", "title"), labelled=False).render(cat) == ["Bosch | Drill"]
    assert ProductTextRenderer(fields=("title", "brand"), max_chars=8).render(cat) == ["Drill | "]
    with pytest.raises(ValueError, match="unknown product text field"):
        ProductTextRenderer(fields=("price",))
