"""Index directories: build -> load round trip, manifest content, refusals, atomic rebuilds."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from shopsearch.artifacts import ArtifactError, sha256_file
from shopsearch.data.errors import ShopsearchError
from shopsearch.data.render import ProductTextRenderer
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import DEFAULT_MODEL
from shopsearch.retrieval.fusion import HybridRetriever
from shopsearch.retrieval.store import IndexIntegrityError, build_index, load_index

QUERIES = ["cordless drill", "couch for the living room", "white paint", "xyzzy", "stainless steel"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, catalog, encoder):
    out = tmp_path_factory.mktemp("store") / "index"
    build_index(catalog, out, encoder=encoder, show_progress=False)
    return out


@pytest.fixture
def index_copy(built, tmp_path):
    target = tmp_path / "index"
    shutil.copytree(built, target)
    return target


def rewrite_checksum(directory, name):
    """Make the manifest agree with an edited file, so only the structural checks can object."""
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"][name] = {
        "sha256": sha256_file(directory / name),
        "bytes": (directory / name).stat().st_size,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_round_trip_gives_identical_results(built, catalog, encoder):
    texts = ProductTextRenderer().render(catalog)
    bm25 = BM25Retriever(catalog.ids, texts)
    dense = DenseRetriever.build(encoder, catalog.ids, texts, show_progress=False)
    fresh = {"bm25": bm25, "dense": dense, "hybrid": HybridRetriever([bm25, dense])}
    bundle = load_index(built)
    assert bundle.product_ids.tolist() == catalog.ids.tolist()
    for mode, retriever in fresh.items():
        a, b = retriever.search(QUERIES, 8), bundle.retriever(mode).search(QUERIES, 8)
        np.testing.assert_array_equal(a.ids, b.ids, err_msg=mode)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5, err_msg=mode)
    weighted = bundle.retriever("hybrid", method="weighted", depth=20)
    assert isinstance(weighted, HybridRetriever) and weighted.method == "weighted"
    mapped = load_index(built, mmap=True, verify=False)
    for mode in ("bm25", "dense"):
        np.testing.assert_array_equal(
            mapped.retriever(mode).search(QUERIES, 8).ids, bundle.retriever(mode).search(QUERIES, 8).ids
        )


def test_manifest_records_what_made_the_index(built, catalog):
    m = load_index(built).manifest
    assert m["kind"] == "index" and m["n_products"] == len(catalog)
    assert m["systems"] == ["bm25", "dense"]
    assert len(m["product_ids_sha256"]) == 64
    d = m["dense"]
    assert d["model_id"] == DEFAULT_MODEL and d["dimension"] == 384 and d["normalize"] is True
    assert d["index_spec"]["kind"] == "flat" and d["faiss_class"] == "IndexFlatIP" and d["model_fingerprint"]
    assert m["bm25"]["stemmer"] == "english" and m["bm25"]["stopwords"] == "en"
    assert m["renderer"]["fields"] == ["title"]
    for key in ("bm25_products_per_s", "encode_products_per_s", "total_s"):
        assert m["timings"][key] > 0
    assert {"products.parquet", "dense/vectors.npy", "dense/index.faiss", "bm25/shopsearch_bm25.json"} <= set(
        m["files"]
    )
    products = load_index(built).products
    assert list(products.columns) == ["product_id", "title", "brand", "color", "category", "vertical"]


@pytest.mark.parametrize(
    "name", ["dense/vectors.npy", "dense/index.faiss", "bm25/data.csc.index.npy", "products.parquet"]
)
def test_corrupted_file_is_refused(index_copy, name):
    path = index_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexIntegrityError, match=f"{name}.*checksum"):
        load_index(index_copy)
    assert issubclass(IndexIntegrityError, ArtifactError)


def test_missing_file_is_refused(index_copy):
    (index_copy / "dense" / "index.faiss").unlink()
    with pytest.raises(IndexIntegrityError, match=r"index\.faiss.*missing"):
        load_index(index_copy)


def test_truncated_faiss_file_is_refused_even_without_checksums(index_copy):
    path = index_copy / "dense" / "index.faiss"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexIntegrityError, match="FAISS"):
        load_index(index_copy, verify=False)


def test_wrong_expected_model_is_refused(built, tmp_path):
    other = tmp_path / "my-finetuned-model"
    other.mkdir()
    (other / "config.json").write_text('{"hidden_size": 768}')
    with pytest.raises(IndexIntegrityError, match=r"built with model 'all-MiniLM-L6-v2'.*my-finetuned-model"):
        load_index(built, expect_model=other)
    assert load_index(built, expect_model="all-MiniLM-L6-v2").manifest["dense"]["model_id"] == DEFAULT_MODEL


def test_expected_dimension_mismatch_is_refused(built):
    with pytest.raises(IndexIntegrityError, match="384-d vectors, 768-d were expected"):
        load_index(built, expect_dimension=768)
    load_index(built, expect_dimension=384)


def test_vectors_of_another_dimension_are_refused(index_copy):
    np.save(index_copy / "dense" / "vectors.npy", np.zeros((42, 128), dtype=np.float32))
    rewrite_checksum(index_copy, "dense/vectors.npy")
    with pytest.raises(IndexIntegrityError, match=r"vectors.npy is float32\(42, 128\).*\(42, 384\)"):
        load_index(index_copy)


def test_manifest_dimension_disagreeing_with_files_is_refused(index_copy):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    manifest["dense"]["dimension"] = 256
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexIntegrityError, match="256"):
        load_index(index_copy)


def test_product_ids_not_matching_are_refused(index_copy):
    products = pd.read_parquet(index_copy / "products.parquet")
    products.loc[0, "product_id"] = "SOMEONE-ELSE"
    products.to_parquet(index_copy / "products.parquet", index=False)
    rewrite_checksum(index_copy, "products.parquet")
    with pytest.raises(IndexIntegrityError, match="product ids"):
        load_index(index_copy)


def test_changed_model_files_are_refused(index_copy):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    manifest["dense"]["model_fingerprint"] = "0" * 64
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexIntegrityError, match=r"model files .* differ"):
        load_index(index_copy)


def test_not_an_index_directory(tmp_path):
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        load_index(tmp_path)


def test_failed_rebuild_leaves_the_previous_index_intact(index_copy, catalog, encoder, monkeypatch):
    before = (index_copy / "manifest.json").read_text()
    calls = []

    def broken_encode(texts, **kwargs):
        calls.append(len(texts))
        raise RuntimeError("simulated crash mid-build")

    monkeypatch.setattr(encoder, "encode", broken_encode)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index(catalog, index_copy, encoder=encoder, show_progress=False)
    assert calls, "the build must have got as far as encoding"
    assert (index_copy / "manifest.json").read_text() == before
    assert [p.name for p in index_copy.parent.iterdir() if p.name.startswith(".")] == []  # no temp dirs left
    monkeypatch.undo()
    bundle = load_index(index_copy)
    assert bundle.retriever("bm25").search(["cordless drill"], 1).ids[0, 0] == "P000"


def test_overwrite_false_refuses_an_existing_index(index_copy, catalog):
    with pytest.raises(ArtifactError, match="exists"):
        build_index(catalog, index_copy, systems=("bm25",), overwrite=False, show_progress=False)


def test_bm25_only_index(tmp_path, catalog):
    out = build_index(
        catalog,
        tmp_path / "lexical",
        systems=("bm25",),
        bm25_params={"k1": 1.2, "b": 0.6},
        show_progress=False,
    )
    bundle = load_index(out)
    assert bundle.systems == ["bm25"] and bundle.manifest["bm25"]["k1"] == 1.2
    assert bundle.retriever("bm25").search(["kohler toilet"], 1).ids[0, 0] == "P018"
    with pytest.raises(ShopsearchError, match="no dense part"):
        bundle.retriever("dense")
    with pytest.raises(IndexIntegrityError, match="no dense part"):
        load_index(out, expect_model="minilm")
    with pytest.raises(ShopsearchError, match="unknown or no index systems"):
        build_index(catalog, tmp_path / "x", systems=("splade",), show_progress=False)
