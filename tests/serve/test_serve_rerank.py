"""Re-ranking in the service: rerank=true re-orders the filtered head by the cross-encoder, fused as the
model says; the torch model and its ONNX export serve alike; a service without one refuses."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_support import make_settings

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.rerank import FUSION_FILE, CrossEncoderReranker, fuse_head
from shopsearch.serve.app import create_app
from shopsearch.serve.holder import IndexHolder

QUERIES = ["wireless headphones", "red dress", "kettle", "kids puzzle"]
DEPTH = 8


@pytest.fixture(scope="module")
def fused_ce(tiny_cross_encoder, tmp_path_factory):
    """The tiny cross-encoder with a stored fusion weight (as train-reranker writes it)."""
    model = shutil.copytree(tiny_cross_encoder, tmp_path_factory.mktemp("fused") / "run" / "model")
    (model / FUSION_FILE).write_text(json.dumps({"text_fields": ["title"], "fusion_weight": 0.5}))
    return model


@pytest.fixture(scope="module")
def rerank_client(index_a, fused_ce):
    app = create_app(make_settings(index_a, reranker=fused_ce, rerank_depth=DEPTH, cache_size=0))
    with TestClient(app) as c:
        yield c


def search(client, q, **params):
    response = client.get("/search", params={"q": q, "k": 5, "mode": "hybrid", **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_rerank_reorders_the_head_by_the_fused_cross_encoder_score(rerank_client, fused_ce, shop):
    titles = dict(zip(shop.catalog.df["product_id"], shop.catalog.df["title"], strict=True))
    ce = CrossEncoderReranker(fused_ce)
    info = rerank_client.get("/info").json()
    assert info["index"]["reranker"] == "run" and info["rerank_depth"] == DEPTH and not info["rerank_default"]
    for q in QUERIES:
        plain = search(rerank_client, q, k=DEPTH)
        again = search(rerank_client, q, k=DEPTH, rerank="false")
        assert not plain["reranked"] and again["results"] == plain["results"]
        reranked = search(rerank_client, q, rerank="true")
        assert reranked["reranked"] and len(reranked["results"]) == 5
        head = [h["product_id"] for h in plain["results"]]
        logits = ce.score([q] * len(head), [titles[p] for p in head])
        fused = fuse_head(logits, np.array([h["score"] for h in plain["results"]]), 0.5)
        want = [head[i] for i in np.argsort(-fused, kind="stable")[:5]]
        assert [h["product_id"] for h in reranked["results"]] == want
        assert np.allclose([h["score"] for h in reranked["results"]], np.sort(fused)[::-1][:5], atol=1e-4)


def test_filters_apply_before_re_ranking(rerank_client, shop):
    vertical = shop.catalog.df["vertical"].value_counts().index[0]
    body = search(rerank_client, "gift", rerank="true", vertical=vertical, k=10)
    assert body["reranked"] and body["results"]
    assert {h["vertical"] for h in body["results"]} == {vertical}
    plain = search(rerank_client, "gift", vertical=vertical, k=10)
    # the head is the filtered first stage's top DEPTH, re-ordered; below it, its next hits
    assert {h["product_id"] for h in body["results"]} == {h["product_id"] for h in plain["results"]}


def test_k_above_the_depth_keeps_the_first_stages_tail(rerank_client):
    plain = search(rerank_client, "kettle", k=20)
    reranked = search(rerank_client, "kettle", k=20, rerank="true")
    ids = [h["product_id"] for h in plain["results"]]
    got = [h["product_id"] for h in reranked["results"]]
    assert sorted(got[:DEPTH]) == sorted(ids[:DEPTH]) and got[DEPTH:] == ids[DEPTH:]
    scores = [h["score"] for h in reranked["results"]]
    assert scores == sorted(scores, reverse=True)


def test_rerank_is_cached_apart_from_the_plain_search(index_a, fused_ce):
    settings = make_settings(index_a, reranker=fused_ce, rerank_depth=DEPTH, rerank_default=True)
    with TestClient(create_app(settings)) as c:
        first = search(c, "kettle")
        assert first["reranked"] and not first["cached"]  # rerank_default: re-ranked without asking
        plain = search(c, "kettle", rerank="false")
        assert not plain["reranked"] and not plain["cached"]
        assert search(c, "kettle")["cached"] and search(c, "kettle", rerank="false")["cached"]
        metrics = c.get("/metrics").text
        assert 'mode="hybrid+rerank"' in metrics


def test_a_service_without_a_reranker_refuses_rerank(client):
    response = client.get("/search", params={"q": "kettle", "rerank": "true"})
    assert response.status_code == 422 and "no re-ranker" in response.text
    assert client.get("/info").json()["rerank_depth"] is None


def test_the_onnx_export_serves_like_the_torch_model(index_a, fused_ce, tmp_path):
    from shopsearch.models import export_cross_encoder_onnx

    export = tmp_path / "ce-onnx"
    export_cross_encoder_onnx(fused_ce, export)
    torch_settings = make_settings(index_a, reranker=fused_ce, rerank_depth=DEPTH, cache_size=0)
    onnx_settings = make_settings(index_a, reranker=export, rerank_depth=DEPTH, cache_size=0, reranker_threads=1)
    with TestClient(create_app(torch_settings)) as a, TestClient(create_app(onnx_settings)) as b:
        assert b.app.state.shopsearch.holder.current.reranker.precision == "int8"
        overlap = []
        for q in QUERIES:
            want = [h["product_id"] for h in search(a, q, rerank="true")["results"]]
            got = [h["product_id"] for h in search(b, q, rerank="true")["results"]]
            overlap.append(len(set(want) & set(got)) / len(want))
        assert np.mean(overlap) >= 0.8  # int8 logits, a few near-ties may swap


def test_a_reranker_reading_fields_the_index_lacks_is_refused(index_a, tiny_cross_encoder, tmp_path):
    model = shutil.copytree(tiny_cross_encoder, tmp_path / "m")
    (model / FUSION_FILE).write_text(json.dumps({"text_fields": ["title", "description"]}))
    with pytest.raises(ShopsearchError, match=r"\['description'\].*does not keep"):
        IndexHolder(make_settings(index_a, reranker=model)).reload(index_a)
    with pytest.raises(ValueError, match="rerank_default: true needs a reranker"):
        make_settings(index_a, rerank_default=True)


def test_the_reranker_is_loaded_once_across_reloads(index_a, index_b, fused_ce):
    holder = IndexHolder(make_settings(index_a, reranker=fused_ce))
    first, _ = holder.reload(index_a)
    second, _ = holder.reload(index_b)
    assert second.reranker is first.reranker
    assert len(second.rerank_texts) == second.n_products


def test_re_ranked_systems_are_side_by_side_systems_and_variants(index_a, fused_ce, tmp_path):
    from serve_support import write_experiment

    from shopsearch.serve.sbs_tokens import PairTokens

    exp = write_experiment(tmp_path / "ab.yaml", name="rr", variants=[
        {"name": "control", "mode": "hybrid"}, {"name": "reranked", "mode": "hybrid", "rerank": True}])
    settings = make_settings(index_a, reranker=fused_ce, rerank_depth=DEPTH, sbs_db=tmp_path / "sbs.db",
                             experiment=exp)
    with TestClient(create_app(settings, pair_tokens=PairTokens(b"0123456789abcdef-test"))) as c:
        systems = c.get("/sbs/systems").json()
        assert systems["systems"][:6] == ["dense", "bm25", "hybrid", "dense+rerank", "bm25+rerank", "hybrid+rerank"]
        assert (systems["default_a"], systems["default_b"]) == ("control", "reranked")
        pair = c.get("/sbs/pair", params={"q": "kettle", "a": "hybrid", "b": "hybrid+rerank", "k": 5}).json()
        plain = [h["product_id"] for h in search(c, "kettle", rerank="false")["results"]]
        reranked = [h["product_id"] for h in search(c, "kettle", rerank="true")["results"]]
        assert plain != reranked  # else the pair below proves nothing
        sides = ([h["product_id"] for h in pair["left"]], [h["product_id"] for h in pair["right"]])
        assert sides in ((plain, reranked), (reranked, plain))
        described = {v["name"]: v["rerank"] for v in c.get("/info").json()["experiment"]["variants"]}
        assert described == {"control": False, "reranked": True}
        by_variant = {}
        for user in (f"u{i}" for i in range(40)):
            body = search(c, "kettle", user_id=user)
            by_variant[body["variant"]] = body["reranked"]
        assert by_variant == {"control": False, "reranked": True}
    without = make_settings(index_a, experiment=exp)
    with pytest.raises(ShopsearchError, match="has no re-ranker"), TestClient(create_app(without)):
        pass
