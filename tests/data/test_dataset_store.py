"""Saving the normalised dataset as Parquet + manifest, and loading it back (checksums verified)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from shopsearch.artifacts import ArtifactError, write_manifest
from shopsearch.data import (
    DataError,
    Dataset,
    load_dataset,
    load_esci,
    load_saved_dataset,
    load_wands,
    save_dataset,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _same(a: Dataset, b: Dataset) -> None:
    pd.testing.assert_frame_equal(a.catalog.df, b.catalog.df, check_dtype=False)
    pd.testing.assert_frame_equal(a.queries.df, b.queries.df, check_dtype=False)
    pd.testing.assert_frame_equal(a.judgments.df, b.judgments.df, check_dtype=False)
    assert a.scheme == b.scheme
    assert a.report.rows == b.report.rows


@pytest.fixture
def wands_with_bad_rows(tmp_path):
    src = tmp_path / "wands"
    shutil.copytree(FIXTURES / "wands", src)
    with open(src / "label.csv", "a") as fh:
        fh.write("11\t4\t2\tnope\n")
    return load_wands(src)


def test_round_trip_keeps_everything(tmp_path, wands_with_bad_rows):
    ds = wands_with_bad_rows
    out = save_dataset(ds, tmp_path / "saved")
    assert sorted(p.name for p in out.iterdir()) == [
        "bad_rows.jsonl", "catalog.parquet", "judgments.parquet", "manifest.json", "queries.parquet"
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "dataset" and manifest["scheme"]["name"] == "wands"
    assert manifest["summary"]["judgments"] == 11 and manifest["summary"]["bad_rows"]["total"] == 1
    assert manifest["source"]["format"] == "wands"
    back = load_saved_dataset(out)
    _same(ds, back)
    assert back.catalog.df.set_index("product_id").loc["0", "attributes"]["color"] == "Walnut"
    assert back.meta["format"] == "wands" and back.meta["saved_dataset"] == str(out)


def test_round_trip_esci_and_mean_rating_scheme(tmp_path):
    ds = load_esci(FIXTURES / "esci" / "esci_examples_with_products.csv")
    _same(ds, load_saved_dataset(save_dataset(ds, tmp_path / "esci")))
    hd = load_dataset(judgments=FIXTURES / "homedepot" / "kaggle_train.csv")
    back = load_saved_dataset(save_dataset(hd, tmp_path / "hd"))
    _same(hd, back)
    assert back.scheme.to_grade(2.5) == 4  # MeanRatingScheme rebuilt, not a plain GradeScheme


def test_corrupted_parquet_is_refused(tmp_path, wands_with_bad_rows):
    out = save_dataset(wands_with_bad_rows, tmp_path / "saved")
    target = out / "judgments.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"judgments.parquet does not match its checksum"):
        load_saved_dataset(out)
    # even with a manifest that matches the damage, an unreadable table is a clear error
    target.write_bytes(b"PAR1 not really parquet PAR1")
    manifest = json.loads((out / "manifest.json").read_text())
    write_manifest(out, "dataset", **{k: v for k, v in manifest.items() if k not in {"kind", "files", "created", "shopsearch_version"}})
    with pytest.raises(DataError, match="cannot read a saved dataset table") as err:
        load_saved_dataset(out)
    assert err.value.file == str(target)


def test_not_a_dataset_directory(tmp_path):
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        load_saved_dataset(tmp_path)


def test_overwrite_rule_and_load_dataset_detects_saved(tmp_path, wands_with_bad_rows):
    out = save_dataset(wands_with_bad_rows, tmp_path / "saved")
    with pytest.raises(ArtifactError, match="exists"):
        save_dataset(wands_with_bad_rows, out, overwrite=False)
    ds = load_dataset(catalog=out)
    assert len(ds.judgments) == 11
    from shopsearch.data import ESCI, WANDS

    exp = load_dataset(catalog=out, scheme=WANDS.with_gain("exponential"))
    assert exp.scheme.gain == "exponential"
    with pytest.raises(DataError, match="cannot be re-graded"):
        load_dataset(catalog=out, scheme=ESCI)
