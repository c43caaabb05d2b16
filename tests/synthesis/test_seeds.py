"""Seed selection: long-tail tiers from traffic or a stated proxy, types, caps, no labels, the output dir."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shopsearch.artifacts import ArtifactError, read_manifest
from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.data.schema import ESCI, Catalog, Dataset, Judgments, Queries
from shopsearch.eval.pipeline import term_idf
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.seeds import SEED_COLUMNS, SeedConfig, read_seeds, seeds_from_dataset, select_seeds


@pytest.fixture(scope="module")
def demo() -> Dataset:
    return generate_demo_shop(DemoShopConfig(n_products=300, n_queries=400, seed=2))


def test_traffic_tiers_pick_the_long_tail(demo: Dataset) -> None:
    seeds = select_seeds(demo.queries)
    df = seeds.df
    assert list(df.columns) == list(SEED_COLUMNS)
    assert set(df["frequency"]) <= {"TAIL", "ONCE ONLY"} and len(df) > 0
    assert seeds.method["frequency"]["method"] == "traffic"
    traffic = demo.queries.df.set_index("query_id")["traffic"]
    picked = traffic.loc[df["seed_query_id"]]
    others = traffic.drop(df["seed_query_id"])
    assert picked.max() <= others.median()  # the tail is the rare end
    assert seeds.method["counts"]["seeds"] == len(df)


def test_seeds_carry_no_labels(demo: Dataset) -> None:
    df = select_seeds(demo.queries).df
    for column in ("grade", "label", "product_id", "judgments"):
        assert column not in df.columns


def test_types_filter_and_balanced_cap(demo: Dataset) -> None:
    wanted = ("qa", "negative", "alternative", "knowledge")
    config = SeedConfig(tiers=("HEAD", "TORSO HIGH", "TORSO LOW", "TAIL", "ONCE ONLY"), types=wanted, max_seeds=12, seed=3)
    df = select_seeds(demo.queries, config).df
    assert len(df) == 12 and set(df["query_type"]) <= set(wanted)
    counts = df["query_type"].value_counts()
    assert counts.max() - counts.min() <= 1 or len(counts) < 4  # round-robin over types
    again = select_seeds(demo.queries, config).df
    assert df["seed_query_id"].tolist() == again["seed_query_id"].tolist()  # seeded: reproducible
    per_type = select_seeds(demo.queries, SeedConfig(tiers=config.tiers, per_type_max=2)).df
    assert per_type["query_type"].value_counts().max() <= 2


def test_proxy_idf_without_traffic() -> None:
    catalog = Catalog(pd.DataFrame({
        "product_id": [f"p{i}" for i in range(6)],
        "title": ["cordless drill", "cordless drill battery", "drill bits", "wall anchors", "drill press", "rug"],
    }))
    queries = Queries(pd.DataFrame({
        "query_id": ["a", "b", "c", "d", "e", "f", "g", "h"],
        "text": ["drill", "cordless drill", "drill bits", "drill press", "wall anchors",
                 "rug not wool", "gift for a 5 year old who loves dinosaurs", "drill"],
    }))
    dataset = Dataset(catalog, queries, Judgments(pd.DataFrame(columns=["query_id", "product_id", "grade"]), ESCI))
    seeds = seeds_from_dataset(dataset)
    assert seeds.method["frequency"]["method"] == "proxy:idf"
    assert "PROXY" in seeds.method["frequency"]["description"]
    assert seeds.method["counts"]["duplicate_text"] == 1  # "drill" twice
    # the rarest-term IDF is highest for queries with words the catalogue never uses
    idf = term_idf(catalog.df["title"].tolist())
    assert "g" in set(seeds.df["seed_query_id"])
    assert seeds.df.set_index("seed_query_id").loc["g", "query_type"] == "knowledge"
    assert max(idf.values()) > idf["drill"]
    assert seeds.df["traffic"].isna().all()


def test_proxy_length_without_catalogue() -> None:
    texts = ["drill", "rug", "tape", "cordless drill 20v brushless with two batteries", "sofa without wood legs please"]
    queries = Queries(pd.DataFrame({"query_id": list("abcde"), "text": texts}))
    seeds = select_seeds(queries)
    assert seeds.method["frequency"]["method"] == "proxy:length"
    assert set(seeds.df["seed_query_id"]) == {"d"}


def test_no_seed_is_an_actionable_error() -> None:
    one_head_query = Queries(pd.DataFrame({"query_id": ["a"], "text": ["drill"], "traffic": [100.0]}))
    with pytest.raises(SynthesisError, match=r"no seeds selected.*widen"):
        select_seeds(one_head_query, SeedConfig(tiers=("TAIL",)))
    with pytest.raises(SynthesisError, match="unknown tier"):
        SeedConfig(tiers=("LONG TAIL",))
    with pytest.raises(SynthesisError, match="unknown query type"):
        SeedConfig(types=("question",))


def test_write_and_read_round_trip(demo: Dataset, tmp_path) -> None:
    seeds = select_seeds(demo.queries, SeedConfig(max_seeds=20))
    out = seeds.write(tmp_path / "seeds", source="demo")
    manifest = read_manifest(out, kind="synthesis-seeds")
    assert manifest["labels"] == "none" and manifest["rows"] == len(seeds) and manifest["source"] == "demo"
    assert manifest["selection"]["frequency"]["method"] == "traffic"
    back = read_seeds(out)
    pd.testing.assert_frame_equal(back, seeds.df, check_dtype=False)
    (out / "seeds.parquet").write_bytes(b"corrupted")
    with pytest.raises(ArtifactError, match="checksum"):
        read_seeds(out)


def test_read_seeds_from_a_bare_parquet_types_untyped_rows(tmp_path) -> None:
    path = tmp_path / "mine.parquet"
    pd.DataFrame({"seed_query_id": [1, 2], "text": ["rug not wool", "cordless drill"]}).to_parquet(path)
    df = read_seeds(path)
    assert df["seed_query_id"].tolist() == ["1", "2"]
    assert df["query_type"].tolist() == ["negative", "plain"]
    pd.DataFrame({"query": ["x"]}).to_parquet(path)
    with pytest.raises(SynthesisError, match="seed_query_id and text"):
        read_seeds(path)


def test_empty_and_whitespace_queries_are_skipped() -> None:
    queries = Queries(pd.DataFrame({"query_id": ["a", "b", "c"], "text": ["  ", "rug not wool", ""],
                                    "traffic": [1.0, 1.0, 1.0]}))
    seeds = select_seeds(queries)
    assert seeds.df["seed_query_id"].tolist() == ["b"]
    assert seeds.method["counts"]["empty_text"] == 2
    assert not any(isinstance(v, float) and math.isnan(v) for v in seeds.df["text"])
    assert np.all(seeds.df["frequency"] == "ONCE ONLY")
