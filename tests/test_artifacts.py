import json

import pytest

from shopsearch.artifacts import ArtifactError, atomic_dir, read_manifest, write_manifest
from shopsearch.data.errors import BadRowReport, DataError


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as d:
        (d / "a.txt").write_text("one")
        write_manifest(d, "test", note="first")
    assert (target / "a.txt").read_text() == "one"

    with pytest.raises(RuntimeError), atomic_dir(target) as d:
        (d / "a.txt").write_text("two")
        raise RuntimeError("job failed half way")
    assert (target / "a.txt").read_text() == "one"  # earlier output intact
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp litter
    with pytest.raises(ArtifactError, match="exists"), atomic_dir(target, overwrite=False):
        pass


def test_manifest_detects_corruption_and_wrong_kind(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"12345")
    manifest = write_manifest(tmp_path, "index", model="m")
    assert manifest["files"]["x.bin"]["bytes"] == 5
    assert read_manifest(tmp_path, "index")["model"] == "m"
    with pytest.raises(ArtifactError, match="expected a 'dataset'"):
        read_manifest(tmp_path, "dataset")
    (tmp_path / "x.bin").write_bytes(b"12346")
    with pytest.raises(ArtifactError, match="checksum"):
        read_manifest(tmp_path, "index")
    (tmp_path / "x.bin").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        read_manifest(tmp_path, "index")
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        read_manifest(tmp_path / "nowhere")


def test_bad_row_report_counts_and_roundtrips(tmp_path):
    report = BadRowReport()
    report.add("a.csv", 3, "relevance", "not a finite number", "nan")
    report.add("a.csv", 9, "product_id", "duplicate id", "P1", action="kept-first")
    assert len(report) == 2 and report.skipped == 1
    counts = report.counts()
    assert counts["by_action"] == {"skipped": 1, "kept-first": 1}
    assert "a.csv, row 3, field 'relevance'" in report.summary()
    report.to_jsonl(tmp_path / "bad.jsonl")
    again = BadRowReport.from_jsonl(tmp_path / "bad.jsonl")
    assert again.rows == report.rows
    assert json.loads((tmp_path / "bad.jsonl").read_text().splitlines()[0])["row"] == 3


def test_strict_report_raises_with_location():
    report = BadRowReport(on_error="raise")
    with pytest.raises(DataError) as info:
        report.add("a.csv", 4, "query", "empty query")
    assert info.value.file == "a.csv" and info.value.row == 4 and info.value.field == "query"
    assert str(info.value) == "a.csv, row 4, field 'query': empty query"


def test_outputs_get_ordinary_permissions(tmp_path):
    import os
    import stat

    from shopsearch.artifacts import atomic_write_text

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "r.json", "{}")
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_atomic_write_parquet_keeps_the_old_file_when_writing_fails(tmp_path):
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from shopsearch.artifacts import atomic_write_parquet

    path = tmp_path / "sub" / "t.parquet"
    atomic_write_parquet(path, pa.table({"a": [1, 2]}))
    assert pq.read_table(path).column("a").to_pylist() == [1, 2]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # the umask's mode, not mkstemp's 0600

    class Broken:  # not a table: pyarrow raises while writing
        schema = None

    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises for a non-table
        atomic_write_parquet(path, Broken())
    assert pq.read_table(path).column("a").to_pylist() == [1, 2]
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]  # no temporary left
