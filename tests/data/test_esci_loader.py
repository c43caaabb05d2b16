"""ESCI loader on real rows (Amazon Shopping Queries Dataset, Apache-2.0) in all three layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from shopsearch.data import DataError, load_dataset, load_esci

ESCI_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "esci"
EXAMPLES = ESCI_DIR / "shopping_queries_dataset_examples.parquet"
PRODUCTS = ESCI_DIR / "shopping_queries_dataset_products.parquet"
JSONL = ESCI_DIR / "sample-products.jsonl.zstd"
JOINED = ESCI_DIR / "esci_examples_with_products.csv"


def test_parquet_letters_with_products_parquet():
    ds = load_esci(EXAMPLES, PRODUCTS)  # locale "us" by default: the two "es" rows are filtered out
    assert (len(ds.catalog), len(ds.queries), len(ds.judgments)) == (26, 11, 26)
    assert ds.meta["filtered_out"]["locale"] == 2
    assert ds.meta["format"] == "esci" and ds.meta["locale"] == "us" and ds.meta["synthetic"] is False
    qrels = ds.judgments.qrels()
    assert qrels["535"]["B08PB9TTKT"] == 3  # E
    assert qrels["535"]["B08VSJGP1N"] == 2  # S
    assert qrels["535"]["B08SHMLP5S"] == 0  # I
    assert qrels["54625"]["B08478BZCP"] == 1  # C
    assert len(ds.report) == 0
    assert ds.queries.df["vertical"].isna().all() and not ds.queries.has_traffic


def test_zstd_jsonl_products_keep_brand_colour_bullets():
    ds = load_esci(EXAMPLES, JSONL, split="test")
    assert (len(ds.catalog), len(ds.queries), len(ds.judgments)) == (16, 1, 16)
    row = ds.catalog.df.set_index("product_id").loc["B08VSJGP1N"]
    assert row["brand"] == "Rimoody" and row["color"] == "black"
    assert row["title"].startswith("Apple Carplay Double Din Car Stereo")
    assert row["bullets"] and row["description"]
    assert ds.queries.df.loc[0, "text"] == "06 bmw 325i radio oem not navigation system"
    assert ds.meta["sources"]["products"].endswith("sample-products.jsonl.zstd")


def test_joined_csv_with_words_and_multiline_fields():
    ds = load_esci(JOINED)
    assert (len(ds.catalog), len(ds.queries), len(ds.judgments)) == (12, 12, 12)
    grades = ds.judgments.df.set_index("product_id")["grade"]
    assert grades["B08478BZCP"] == 1  # Complement
    assert grades["B01LVWQY6K"] == 3  # Exact
    koala = ds.catalog.df.set_index("product_id").loc["B01LVWQY6K"]
    assert koala["brand"] == "Mama Koala" and koala["color"] == "Jagger"
    assert koala["bullets"].startswith("NO LEAKS")
    assert ds.judgments.df["label"].isin(["Exact", "Substitute", "Complement", "Irrelevant"]).all()


def test_filters_locale_small_version_split():
    assert len(load_esci(EXAMPLES, PRODUCTS, locale=None).judgments) == 28
    es = load_esci(EXAMPLES, PRODUCTS, locale="es")
    assert len(es.judgments) == 2 and set(es.catalog.ids) == {"B071NGCBSN", "B08FX8TTC4"}
    small = load_esci(EXAMPLES, PRODUCTS, small_version=True)
    examples = pd.read_parquet(EXAMPLES)
    expected = ((examples.small_version == 1) & (examples.product_locale == "us")).sum()
    assert len(small.judgments) == expected and small.meta["filtered_out"]["small_version"] > 0
    assert len(load_esci(EXAMPLES, PRODUCTS, small_version=False).judgments) == 26  # the large version: all
    train = load_esci(EXAMPLES, PRODUCTS, split="train")
    assert len(train.judgments) == 10 and "535" not in set(train.queries.ids)


def test_unknown_locale_and_missing_split_column_are_clear_errors():
    with pytest.raises(DataError, match=r"no rows with product_locale 'jp'.*\['es', 'us'\]"):
        load_esci(EXAMPLES, PRODUCTS, locale="jp")
    with pytest.raises(DataError, match="missing column 'split'") as err:
        load_esci(JOINED, split="test")
    assert err.value.file == str(JOINED) and "esci_label" in str(err.value)


def test_examples_without_products_need_a_products_file():
    with pytest.raises(DataError, match="pass the products file"):
        load_esci(EXAMPLES)


def test_bad_label_in_csv_is_located_at_its_file_line(tmp_path):
    text = JOINED.read_text(encoding="utf-8")
    bad = text.replace("1080288,iphone xr usb,54625,B08478BZCP,us,Complement", "1080288,iphone xr usb,54625,B08478BZCP,us,Compliment")
    path = tmp_path / "joined.csv"
    path.write_text(bad, encoding="utf-8")
    line = next(i for i, s in enumerate(bad.splitlines(), start=1) if s.startswith("1080288,"))
    assert line > 20  # fields above span several lines: the line is not just the record number
    ds = load_esci(path)
    assert len(ds.judgments) == 11 and len(ds.report) == 1
    r = ds.report.rows[0]
    assert (r.file, r.row, r.field, r.value, r.action) == (str(path), line, "esci_label", "Compliment", "skipped")
    assert "unknown label" in r.reason
    with pytest.raises(DataError, match="unknown label 'Compliment'") as err:
        load_esci(path, on_error="raise")
    assert err.value.row == line and err.value.field == "esci_label"


def test_parquet_rows_are_zero_based_record_indexes(tmp_path):
    df = pd.read_parquet(EXAMPLES)
    df.loc[3, "esci_label"] = "Q"
    path = tmp_path / "examples.parquet"
    df.to_parquet(path)
    ds = load_esci(path, PRODUCTS)
    assert [(r.row, r.field, r.value) for r in ds.report.rows] == [(3, "esci_label", "Q")]


def test_load_dataset_routes_esci_directory(tmp_path):
    for f in (EXAMPLES, PRODUCTS):
        shutil.copy(f, tmp_path / f.name)
    ds = load_dataset(catalog=tmp_path, split="test")
    assert ds.meta["format"] == "esci" and len(ds.judgments) == 16
    ds = load_dataset(catalog=PRODUCTS, judgments=EXAMPLES, locale="es")
    assert len(ds.judgments) == 2
