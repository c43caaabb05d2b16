"""The cross-encoder teacher of stage-2 distillation: pair scores back in group order, the Parquet
store and its key, and a stage-2 run that distils a cross-encoder on a tiny demo shop."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd
import pytest

from shopsearch.training.teacher import (
    CACHE_FILE,
    DISTILL_ONLY_LABEL,
    add_teacher_candidates,
    cross_encoder_teacher_scores,
    group_teacher_scores,
    read_teacher_scores,
    teacher_key,
    write_teacher_scores,
)


class LengthReranker:
    """Logit = len(text) - len(query), and a record of each call's batch."""

    text_fields = ("title",)

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score(self, queries, texts):
        self.calls.append(len(queries))
        return np.array([len(t) - len(q) for q, t in zip(queries, texts, strict=True)], dtype=np.float32)


def test_cross_encoder_scores_come_back_in_group_order_as_sigmoids():
    texts = {"a": "x", "b": "a much longer product title", "c": "mid title"}
    queries = ["q", "longer query"]
    groups = [["b", "a", "c"], ["c", "b"]]
    reranker = LengthReranker()
    scores = cross_encoder_teacher_scores(queries, groups, texts, reranker, chunk=2, show_progress=False)
    expected = [[1 / (1 + np.exp(-(len(texts[p]) - len(q)))) for p in ps] for q, ps in zip(queries, groups, strict=True)]
    assert [s.tolist() for s in scores] == [pytest.approx(e) for e in expected]
    assert reranker.calls == [2, 2, 1]  # five pairs in chunks of two
    with pytest.raises(ValueError, match="no text for the cross-encoder"):
        cross_encoder_teacher_scores(["q"], [["zz"]], texts, reranker)


def test_teacher_candidates_extend_each_group_with_new_products_only():
    from shopsearch.retrieval.base import SearchResult

    class Fixed:
        def search(self, queries, k):
            ids = np.array([["a", "x", "y", "z"], ["y", "c", "x", "w"]], dtype=object)[:, :k]
            return SearchResult(ids, np.ones(ids.shape, dtype=np.float32))

    groups = pd.DataFrame({"query": ["drill", "shoe"], "product_ids": [["a", "b"], ["c"]], "grades": [[3, 0], [2]]})
    out, stats = add_teacher_candidates(groups, Fixed(), n=2, top_k=4)
    assert out["product_ids"].tolist() == [["a", "b", "x", "y"], ["c", "y", "x"]]
    assert out["grades"].tolist() == [[3, 0, DISTILL_ONLY_LABEL, DISTILL_ONLY_LABEL], [2, DISTILL_ONLY_LABEL, DISTILL_ONLY_LABEL]]
    assert stats == {"per_group": 2, "top_k": 4, "added": 4}
    assert add_teacher_candidates(groups, Fixed(), n=0, top_k=4)[0] is groups


def test_stored_scores_are_read_back_only_under_their_key(tmp_path):
    queries, groups = ["drill", "shoe"], [["a", "b"], ["c"]]
    scores = [np.array([0.25, 0.75]), np.array([0.5])]
    key = teacher_key("hybrid", None, queries, groups)
    path = tmp_path / "s2" / CACHE_FILE
    write_teacher_scores(path, key, queries, groups, scores, {"hybrid": scores})
    back = read_teacher_scores(path, key)
    assert back is not None and [b.tolist() for b in back] == [s.tolist() for s in scores]
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["group", "query", "product_id", "score", "hybrid"]
    assert frame["product_id"].tolist() == ["a", "b", "c"]
    assert read_teacher_scores(path, teacher_key("hybrid", None, queries, [["a", "b"], ["d"]])) is None
    assert read_teacher_scores(path, {**key, "kind": "both"}) is None
    assert read_teacher_scores(tmp_path / "absent.parquet", key) is None
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_the_cross_encoder_teacher_is_computed_once_then_read(tmp_path, tiny_cross_encoder):
    from shopsearch.data.demo import DemoShopConfig, generate_demo_shop

    shop = generate_demo_shop(DemoShopConfig(n_products=140, n_queries=10, seed=2))
    ids = [str(p) for p in shop.catalog.ids]
    queries, groups = ["cordless drill", "running shoes"], [ids[:4], ids[4:7]]
    cache = tmp_path / CACHE_FILE
    first, stats = group_teacher_scores("cross_encoder", queries, groups, model=tiny_cross_encoder,
                                        catalog=shop.catalog, cache=cache)
    assert [len(s) for s in first] == [4, 3] and all(((s > 0) & (s < 1)).all() for s in first)
    assert stats["stored"] == str(cache) and "cached" not in stats and 0 < stats["mean_cross_encoder"] < 1
    again, stats = group_teacher_scores("cross_encoder", queries, groups, model=tiny_cross_encoder,
                                        catalog=shop.catalog, cache=cache)
    assert stats["cached"] == str(cache) and [a.tolist() for a in again] == [f.tolist() for f in first]
    with pytest.raises(ValueError, match="needs a cross-encoder"):
        group_teacher_scores("both", queries, groups, catalog=shop.catalog)


def test_stage2_distils_a_cross_encoder_with_the_bm25_prior_on_a_tiny_shop(tmp_path, tiny_cross_encoder):
    from shopsearch.cli.train_cmd import split_by_query
    from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.trainer import train

    shop = generate_demo_shop(DemoShopConfig(n_products=200, n_queries=40, seed=5))
    train_set, dev_set = split_by_query(shop, 0.25, seed=0)
    config = TrainConfig.model_validate({
        "seed": 1, "stage": "2",
        "stage2": {"batch_size": 4, "max_group_size": 4, "hard_negatives": 1, "mining_top_k": 10,
                   "distill_weight": 1.0, "teacher": "both", "teacher_model": str(tiny_cross_encoder),
                   "teacher_candidates": 2},
        "dev": {"pool_size": None}, "save_steps": 10, "logging_steps": 1, "max_steps": 2,
    })
    train(train_set, config, tmp_path / "run", dev_set=dev_set, show_progress=False)
    data = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["2"]["data"]
    assert data["teacher"]["kind"] == "both" and "lexical_prior" in data
    assert 0 < data["teacher"]["mean_hybrid"] < 1 and 0 < data["teacher"]["mean_cross_encoder"] < 1
    stored = pd.read_parquet(tmp_path / "run" / "stage2" / CACHE_FILE)
    assert stored["group"].nunique() == data["rows"] and data["teacher_candidates"]["added"] > 0
    assert (stored.groupby("group").size() <= 4 + 2).all() and not stored.duplicated(["group", "product_id"]).any()
    assert np.allclose(stored["score"], (stored["hybrid"] + stored["cross_encoder"]) / 2)
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(np.isfinite(r.get("loss", np.nan)) for r in log)
