"""Malformed inputs: each gives a clear DataError (on_error="raise") or a located bad-row entry
(on_error="report"), never a silent drop. Files are written in the Home Depot split layout
(invented rows) unless stated."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopsearch.data import DataError, load_dataset, load_generic, load_homedepot
from shopsearch.data.loaders import ColumnMapping

PRODUCTS = "product_id,title\n1,cordless drill\n2,hammer\n3,garden hose\n"
JUDGMENTS = "query_id,query,product_id,relevance\nq1,drill,1,3\nq1,drill,2,1.33\nq2,hose,3,2.67\n"


def _files(tmp_path: Path, products: str = PRODUCTS, judgments: str = JUDGMENTS) -> tuple[Path, Path]:
    p, j = tmp_path / "products.csv", tmp_path / "judgments_dev.csv"
    p.write_text(products, encoding="utf-8")
    j.write_text(judgments, encoding="utf-8")
    return p, j


def _load(p: Path, j: Path, on_error: str = "report"):
    return load_homedepot(products=p, judgments=j, on_error=on_error)  # type: ignore[arg-type]


def _entries(ds):
    return [(Path(r.file).name, r.row, r.field, r.action) for r in ds.report.rows]


def test_clean_files_have_an_empty_report(tmp_path):
    ds = _load(*_files(tmp_path))
    assert (len(ds.catalog), len(ds.queries), len(ds.judgments), len(ds.report)) == (3, 2, 3, 0)


def test_missing_column_names_file_column_and_columns_found(tmp_path):
    p, j = _files(tmp_path, judgments=JUDGMENTS.replace("relevance", "score"))
    for mode in ("report", "raise"):
        with pytest.raises(DataError) as err:
            _load(p, j, mode)
        msg = str(err.value)
        assert str(j) in msg and "missing required column 'relevance'" in msg
        assert "columns found: ['query_id', 'query', 'product_id', 'score']" in msg
        assert err.value.field == "relevance"


def test_unknown_label(tmp_path):
    p, j = _files(tmp_path, judgments=JUDGMENTS + "q2,hose,1,very\nq2,hose,2,4.5\n")
    ds = _load(p, j)
    assert _entries(ds) == [("judgments_dev.csv", 5, "relevance", "skipped"), ("judgments_dev.csv", 6, "relevance", "skipped")]
    assert "'very' is not a number" in ds.report.rows[0].reason and "outside 1.0..3.0" in ds.report.rows[1].reason
    assert len(ds.judgments) == 3 and ds.summary()["bad_rows"]["total"] == 2
    with pytest.raises(DataError, match=r"row 5, field 'relevance': 'very' is not a number"):
        _load(p, j, "raise")


def test_bad_encoding(tmp_path):
    p, j = _files(tmp_path)
    p.write_bytes(PRODUCTS.encode("utf-8") + "4,caf\xe9 chair\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 5|row 5") as err:
        _load(p, j)
    assert "cannot decode as utf-8 at byte offset" in str(err.value) and "--encoding" in str(err.value)
    assert err.value.file == str(p)
    ds = load_homedepot(products=p, judgments=j, encoding="latin-1")
    assert ds.catalog.df.set_index("product_id").loc["4", "title"] == "café chair"


def test_duplicate_ids(tmp_path):
    p, j = _files(tmp_path, products=PRODUCTS + "2,claw hammer\n", judgments=JUDGMENTS + "q1,drill,1,2\n")
    ds = _load(p, j)
    assert _entries(ds) == [("products.csv", 5, "product_id", "kept-first"), ("judgments_dev.csv", 5, "product_id", "kept-first")]
    assert "the first, at row 3, is kept" in ds.report.rows[0].reason
    assert ds.catalog.df.set_index("product_id").loc["2", "title"] == "hammer"
    assert ds.judgments.qrels()["q1"]["1"] == 6  # the first judgment (3.0) is kept
    assert ds.summary()["bad_rows"]["by_action"] == {"kept-first": 2}
    with pytest.raises(DataError, match=r"products.csv, row 5, field 'product_id': duplicate product id"):
        _load(p, j, "raise")


def test_conflicting_query_text_for_one_id(tmp_path):
    p, j = _files(tmp_path, judgments=JUDGMENTS + "q2,garden hose,1,1\n")
    ds = _load(p, j)
    assert _entries(ds) == [("judgments_dev.csv", 5, "query", "kept-first")]
    assert ds.queries.df.set_index("query_id").loc["q2", "text"] == "hose" and len(ds.judgments) == 4


def test_empty_query(tmp_path):
    p, j = _files(tmp_path, judgments=JUDGMENTS + "q3,,1,3\nq4,   ,2,3\n")
    ds = _load(p, j)
    assert _entries(ds) == [("judgments_dev.csv", 5, "query", "skipped"), ("judgments_dev.csv", 6, "query", "skipped")]
    assert ds.report.rows[0].reason == "empty query text" and set(ds.queries.ids) == {"q1", "q2"}
    with pytest.raises(DataError, match="row 5, field 'query': empty query text"):
        _load(p, j, "raise")


def test_nan_relevance(tmp_path):
    p, j = _files(tmp_path, judgments=JUDGMENTS + "q2,hose,1,\nq2,hose,2,NaN\n")
    ds = _load(p, j)
    assert _entries(ds) == [("judgments_dev.csv", 5, "relevance", "skipped"), ("judgments_dev.csv", 6, "relevance", "skipped")]
    assert all("missing relevance" in r.reason for r in ds.report.rows)
    with pytest.raises(DataError, match="row 5, field 'relevance': missing relevance"):
        _load(p, j, "raise")


def test_unknown_product_missing_id_and_malformed_line(tmp_path):
    p, j = _files(tmp_path, products=PRODUCTS + ",nameless\n4,\n", judgments=JUDGMENTS + "q2,hose,99,3\nq2,hose,3,3,extra\n")
    ds = _load(p, j)
    assert sorted(_entries(ds)) == sorted([
        ("products.csv", 5, "product_id", "skipped"),
        ("products.csv", 6, "title", "kept"),
        ("judgments_dev.csv", 6, None, "skipped"),
        ("judgments_dev.csv", 5, "product_id", "skipped"),
    ])
    reasons = {r.row: r.reason for r in ds.report.rows if r.file.endswith("judgments_dev.csv")}
    assert reasons[5] == "product id not in the catalogue" and "expected 4 fields, saw 5" in reasons[6]
    assert len(ds.catalog) == 4 and len(ds.judgments) == 3


def test_rows_after_blank_lines_keep_their_line_numbers(tmp_path):
    p, j = _files(tmp_path, judgments=JUDGMENTS + "\n\nq2,hose,2,\n")
    ds = _load(p, j)
    assert _entries(ds) == [("judgments_dev.csv", 7, "relevance", "skipped")]


def test_jsonl_invalid_line_is_reported(tmp_path):
    catalog = tmp_path / "c.jsonl"
    catalog.write_text('{"product_id": "1", "title": "drill"}\n{"product_id": "2", "title": \n["not", "an object"]\n')
    judgments = tmp_path / "j.csv"
    judgments.write_text("query,product_id,label\ndrill,1,1\n")
    ds = load_generic(catalog=catalog, judgments=judgments, mapping=ColumnMapping())
    assert [(r.row, r.reason.split(":")[0]) for r in ds.report.rows] == [(2, "invalid JSON"), (3, "a JSON Lines record must be an object")]
    with pytest.raises(DataError, match=r"c.jsonl, row 2: invalid JSON"):
        load_generic(catalog=catalog, judgments=judgments, mapping=ColumnMapping(), on_error="raise")


def test_empty_file_and_missing_file(tmp_path):
    p, j = _files(tmp_path)
    j.write_text("")
    with pytest.raises(DataError, match="empty"):
        _load(p, j)
    j.write_text("query_id,query,product_id,relevance\n")
    with pytest.raises(DataError, match="file not found"):
        load_dataset(catalog=tmp_path / "nope.csv", judgments=j, format="homedepot")
    with pytest.raises(DataError, match="no judgment rows left"):
        _load(p, j)
