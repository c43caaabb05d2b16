"""Generic CSV / JSONL / Parquet loading through a ColumnMapping."""

from __future__ import annotations

import json

import pandas as pd
import pydantic
import pytest

from shopsearch.data import HOME_DEPOT, ColumnMapping, DataError, load_dataset, load_generic


def _shop_csv(tmp_path):
    catalog = tmp_path / "items.csv"
    catalog.write_text(
        "sku;name;maker;colour;path;dept;material\n"
        "A1;Cordless drill 18V;Bosch;blue;Tools/Power Tools/Drills;tools;\n"
        "A2;Hammer 16 oz;Estwing;;Tools/Hand Tools;tools;steel\n"
        "A3;Garden hose 25 m;Gardena;green;Garden/Watering;garden;rubber\n",
        encoding="utf-8",
    )
    judgments = tmp_path / "labels.csv"
    judgments.write_text(
        "q;text;searches;sku;verdict\n"
        "1;drill;120;A1;perfect\n1;drill;120;A2;bad\n2;hose;7;A3;perfect\n2;hose;7;A1;ok\n",
        encoding="utf-8",
    )
    return catalog, judgments


MAPPING = ColumnMapping(
    product_id="sku", title="name", brand="maker", color="colour", category="path", category_separator="/",
    vertical="dept", attributes=["material"], query_id="q", query="text", traffic="searches",
    judgment_product_id="sku", label="verdict", scheme="custom", labels={"perfect": 2, "ok": 1, "bad": 0},
    delimiter=";",
)


def test_csv_with_mapping_custom_scheme_and_traffic(tmp_path):
    catalog, judgments = _shop_csv(tmp_path)
    ds = load_generic(catalog=catalog, judgments=judgments, mapping=MAPPING)
    assert (len(ds.catalog), len(ds.queries), len(ds.judgments)) == (3, 2, 4)
    p = ds.catalog.df.set_index("product_id")
    assert p.loc["A1", "brand"] == "Bosch" and p.loc["A1", "category"] == "Tools > Power Tools > Drills"
    assert p.loc["A2", "color"] is None and p.loc["A2", "attributes"] == {"material": "steel"}
    assert p.loc["A1", "attributes"] == {} and p.loc["A3", "vertical"] == "garden"
    assert ds.queries.has_traffic and ds.queries.df.set_index("query_id").loc["1", "traffic"] == 120.0
    assert ds.judgments.qrels() == {"1": {"A1": 2, "A2": 0}, "2": {"A3": 2, "A1": 1}}
    assert ds.scheme.name == "custom" and ds.scheme.max_grade == 2
    assert ds.meta["format"] == "generic" and ds.meta["mapping"]["product_id"] == "sku"


def test_jsonl_with_queries_file_and_integer_grades(tmp_path):
    catalog = tmp_path / "products.jsonl"
    catalog.write_text("\n".join(json.dumps(r) for r in [
        {"product_id": 1, "title": "red kettle", "bullets": ["1.7 l", "fast boil"]},
        {"product_id": 2, "title": "toaster"},
    ]) + "\n")
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"query_id": "k", "query": "kettle", "kind": "head"}\n')
    judgments = tmp_path / "qrels.jsonl"
    judgments.write_text('{"query_id": "k", "product_id": 1, "label": 3}\n{"query_id": "k", "product_id": 2, "label": 0}\n')
    ds = load_generic(catalog=catalog, judgments=judgments, queries=queries, mapping=ColumnMapping(query_type="kind"))
    assert ds.catalog.df.set_index("product_id").loc["1", "bullets"] == "1.7 l\nfast boil"
    assert ds.judgments.qrels() == {"k": {"1": 3, "2": 0}}
    assert ds.scheme.name == "integer" and ds.scheme.max_grade == 3  # the largest grade seen
    assert ds.queries.df.loc[0, "query_type"] == "head"


def test_parquet_long_format_mean_rating(tmp_path):
    catalog = tmp_path / "catalog.parquet"
    pd.DataFrame({"product_id": ["p1", "p2"], "title": ["lamp", "desk"]}).to_parquet(catalog)
    judgments = tmp_path / "judgments.parquet"
    pd.DataFrame({"query": ["desk lamp", "desk lamp"], "product_id": ["p1", "p2"], "rating": [3.0, 1.33]}).to_parquet(judgments)
    ds = load_generic(catalog=catalog, judgments=judgments, mapping=ColumnMapping(label="rating", scheme="mean-rating"))
    assert ds.scheme == HOME_DEPOT
    (qid,) = ds.queries.ids
    assert qid.startswith("q") and ds.judgments.qrels() == {qid: {"p1": 6, "p2": 1}}


def test_named_column_must_exist(tmp_path):
    catalog, judgments = _shop_csv(tmp_path)
    mapping = MAPPING.model_copy(update={"brand": "manufacturer"})
    with pytest.raises(DataError, match=r"missing required column 'manufacturer'.*columns found: \['sku', 'name'") as err:
        load_generic(catalog=catalog, judgments=judgments, mapping=mapping)
    assert err.value.file == str(catalog) and err.value.field == "manufacturer"


def test_mapping_validation():
    with pytest.raises(pydantic.ValidationError, match="needs labels"):
        ColumnMapping(scheme="custom")
    with pytest.raises(pydantic.ValidationError):
        ColumnMapping(product_idd="x")  # a typo is an error, not ignored
    exp = ColumnMapping(scheme="esci", gain="exponential", relevant_min=2).grade_scheme()
    assert (exp.name, exp.gain, exp.relevant_min) == ("esci", "exponential", 2)
    five = ColumnMapping(scheme="mean-rating", rating_min=1, rating_max=5, rating_multiplier=1).grade_scheme()
    assert five.max_grade == 4 and five.to_grade(4.6) == 4


def test_load_dataset_with_mapping_is_generic_and_takes_encoding(tmp_path):
    catalog = tmp_path / "c.tsv"
    catalog.write_bytes("product_id\ttitle\n1\tpièce\n".encode("cp1252"))
    judgments = tmp_path / "j.tsv"
    judgments.write_bytes("query\tproduct_id\tlabel\npièce\t1\t1\n".encode("cp1252"))
    ds = load_dataset(catalog=catalog, judgments=judgments, mapping=ColumnMapping(), encoding="cp1252")
    assert ds.meta["format"] == "generic" and ds.catalog.df.loc[0, "title"] == "pièce"
    with pytest.raises(DataError, match="a column mapping is only used with format 'generic'"):
        load_dataset(catalog=catalog, judgments=judgments, mapping=ColumnMapping(), format="wands")


def test_compressed_csv_and_row_numbers(tmp_path):
    import gzip

    catalog = tmp_path / "catalog.csv.gz"
    catalog.write_bytes(gzip.compress(b'product_id,title\n1,"multi\nline title"\n1,again\n'))
    judgments = tmp_path / "judgments.csv"
    judgments.write_text("query,product_id,label\nlamp,1,1\n")
    ds = load_generic(catalog=catalog, judgments=judgments, mapping=ColumnMapping())
    assert ds.catalog.df.loc[0, "title"] == "multi\nline title"
    assert [(r.row, r.field, r.action) for r in ds.report.rows] == [(4, "product_id", "kept-first")]
