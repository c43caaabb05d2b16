"""detect_format: by file names and header columns, a clear DataError when unsure."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopsearch.data import DataError, detect_format, load_wands, save_dataset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ESCI_DIR = FIXTURES / "esci"
WANDS_DIR = FIXTURES / "wands"


def test_esci_by_name_or_columns():
    assert detect_format(ESCI_DIR / "shopping_queries_dataset_products.parquet",
                         ESCI_DIR / "shopping_queries_dataset_examples.parquet") == "esci"
    assert detect_format(None, ESCI_DIR / "esci_examples_with_products.csv") == "esci"
    assert detect_format(ESCI_DIR / "sample-products.jsonl.zstd", ESCI_DIR / "shopping_queries_dataset_examples.parquet") == "esci"


def test_wands_by_directory_names_or_columns(tmp_path):
    assert detect_format(WANDS_DIR, None) == "wands"
    assert detect_format(WANDS_DIR / "product.csv", WANDS_DIR / "label.csv") == "wands"
    renamed = tmp_path / "items.tsv"
    renamed.write_bytes((WANDS_DIR / "product.csv").read_bytes())
    assert detect_format(renamed, None) == "wands"


def test_homedepot_split_and_kaggle(tmp_path):
    products = tmp_path / "products.csv"
    products.write_text("product_id,title\n1,drill\n")
    judgments = tmp_path / "judgments_dev.csv"
    judgments.write_text("query_id,query,product_id,relevance\nq1,drill,1,3\n")
    assert detect_format(products, judgments) == "homedepot"
    assert detect_format(tmp_path, None) == "homedepot"
    assert detect_format(None, FIXTURES / "homedepot" / "kaggle_train.csv") == "homedepot"


def test_saved_dataset_directory(tmp_path):
    out = save_dataset(load_wands(WANDS_DIR), tmp_path / "saved")
    assert detect_format(out, None) == "shopsearch"


def test_unsure_is_a_clear_error(tmp_path):
    f = tmp_path / "stuff.csv"
    f.write_text("sku,name\n1,drill\n")
    with pytest.raises(DataError, match=r"cannot detect.*stuff.csv: \['name', 'sku'\].*--format"):
        detect_format(f, None)
    with pytest.raises(DataError, match="cannot tell the dataset format of this directory"):
        detect_format(tmp_path, None)
    with pytest.raises(DataError, match="file not found"):
        detect_format(tmp_path / "nope.csv", None)
    with pytest.raises(DataError, match="nothing to detect"):
        detect_format(None, None)
