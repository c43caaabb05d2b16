"""WANDS loader on a fixture in the real WANDS format (tab-separated product/query/label.csv)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shopsearch.data import WANDS, DataError, load_dataset, load_wands

WANDS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "wands"


def test_directory_loads_with_verticals_categories_and_features():
    ds = load_wands(WANDS_DIR)
    assert (len(ds.catalog), len(ds.queries), len(ds.judgments)) == (6, 5, 11)
    assert ds.scheme == WANDS and len(ds.report) == 0
    products = ds.catalog.df.set_index("product_id")
    assert products.loc["0", "title"] == "solid wood platform bed"
    assert products.loc["0", "category"] == "Furniture > Bedroom Furniture > Beds & Headboards > Beds"
    assert products.loc["2", "vertical"] == "Outdoor Fireplaces"  # the first of several classes
    assert products.loc["5", "vertical"] == "Kids Beds"
    attrs = products.loc["0", "attributes"]
    assert attrs["framematerial"] == "Solid Wood" and attrs["color"] == "Walnut" and attrs["rating_count"] == "15.0"
    assert products.loc["3", "attributes"]["assembly"] == ""  # a feature without a value is kept
    assert products.loc["5", "attributes"] == {"rating_count": "3.0", "average_rating": "5.0", "review_count": "3.0"}
    assert products.loc["2", "description"] is None
    queries = ds.queries.df.set_index("query_id")
    assert queries.loc["2", "text"] == "fire pit" and queries.loc["2", "vertical"] == "Fire Pits"
    qrels = ds.judgments.qrels()
    assert qrels["0"] == {"0": 2, "5": 1, "3": 0}
    assert ds.meta["format"] == "wands" and ds.meta["traffic"] == "absent"


def test_product_csv_path_finds_its_siblings_and_load_dataset_detects_wands():
    assert len(load_wands(WANDS_DIR / "product.csv").judgments) == 11
    ds = load_dataset(catalog=WANDS_DIR / "product.csv", judgments=WANDS_DIR / "label.csv", queries=WANDS_DIR / "query.csv")
    assert ds.meta["format"] == "wands" and len(ds.judgments) == 11


def test_unknown_label_and_unknown_query_are_reported(tmp_path):
    for f in WANDS_DIR.glob("*.csv"):
        shutil.copy(f, tmp_path / f.name)
    label = tmp_path / "label.csv"
    label.write_text(label.read_text() + "11\t4\t2\tExactish\n12\t99\t2\tExact\n13\t4\t77\tPartial\n")
    ds = load_wands(tmp_path)
    assert len(ds.judgments) == 11
    got = [(Path(r.file).name, r.row, r.field, r.value) for r in ds.report.rows]
    assert got == [("label.csv", 13, "label", "Exactish"), ("label.csv", 15, "product_id", "77"),
                   ("label.csv", 14, "query_id", "99")]
    assert "not in the catalogue" in ds.report.rows[1].reason
    assert "not in the queries file" in ds.report.rows[2].reason
    with pytest.raises(DataError, match="unknown label 'Exactish'"):
        load_wands(tmp_path, on_error="raise")


def test_missing_file_is_named(tmp_path):
    shutil.copy(WANDS_DIR / "product.csv", tmp_path / "product.csv")
    with pytest.raises(DataError, match=r"query\.csv not found"):
        load_wands(tmp_path)
