"""The re-ranker's training on a tiny demo shop: mined hard negatives, dev selection, resume, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shopsearch.cli.main import cli
from shopsearch.cli.train_cmd import split_by_query
from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.data.render import ProductTextRenderer
from shopsearch.data.store import save_dataset
from shopsearch.retrieval.rerank import CrossEncoderReranker
from shopsearch.retrieval.systems import build_systems
from shopsearch.training.reranker import FUSION_GRID, RerankerConfig, mine_pairs, train_reranker

SMALL = {"batch_size": 16, "max_seq_length": 48, "negatives_per_query": 3, "mining_depth": 10,
         "rerank_depth": 10, "dev_queries": 12, "logging_steps": 5, "max_pairs": 192}


@pytest.fixture(scope="module")
def shop():
    dataset = generate_demo_shop(DemoShopConfig(n_products=300, n_queries=60, seed=5))
    train, dev = split_by_query(dataset, 0.25, 0)
    texts = ProductTextRenderer().render(dataset.catalog)
    bm25 = build_systems(["bm25"], dataset.catalog.ids, texts, show_progress=False)["bm25"]
    return dataset, train, dev, bm25, dict(zip(dataset.catalog.ids, texts, strict=True))


def test_mined_pairs_hold_every_judgment_and_unjudged_top_products_as_zeros(shop):
    _, train, _, bm25, texts = shop
    pairs = mine_pairs(train, bm25, texts, RerankerConfig(**SMALL))
    judged = train.judgments.df
    assert int(pairs["judged"].sum()) == len(judged)
    assert np.allclose(pairs.loc[pairs["judged"], "label"].to_numpy(),
                       pairs.loc[pairs["judged"], "grade"].to_numpy() / train.scheme.max_grade)
    mined = pairs[~pairs["judged"]]
    assert len(mined) > 0 and (mined["label"] == 0).all() and (mined["grade"] == -1).all()
    assert mined.groupby("query_id").size().max() <= 3
    seen = set(zip(judged["query_id"].astype(str), judged["product_id"].astype(str), strict=True))
    assert not any((q, p) in seen for q, p in zip(mined["query_id"], mined["product_id"], strict=True))
    # each mined product is in its query's BM25 top 10
    table = train.queries.df.set_index("query_id")["text"]
    q = mined["query_id"].iloc[0]
    top = set(bm25.search([table[q]], 10).ids[0])
    assert set(mined.loc[mined["query_id"] == q, "product_id"]) <= top


def test_training_keeps_the_best_dev_checkpoint_and_resumes_from_its_pairs(shop, tmp_path):
    _, train, dev, bm25, _ = shop
    config = RerankerConfig(**SMALL, eval_steps=4)
    figures = train_reranker(train, bm25, tmp_path / "run", config, dev=dev, show_progress=False)
    run = tmp_path / "run"
    history = json.loads((run / "dev_history.json").read_text())
    assert [h["step"] for h in history][:2] == [4, 8] and history[-1]["step"] == figures["steps"]
    best = max(history, key=lambda h: h["ndcg@10"])
    assert figures["dev"]["kept_step"] == best["step"] and figures["dev"]["reranked_ndcg@10"] == best["ndcg@10"]
    assert 0 < figures["dev"]["first_stage_ndcg@10"] <= 1
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["kind"] == "reranker" and manifest["first_stage"] == "bm25"

    from sentence_transformers.cross_encoder import CrossEncoder

    model = CrossEncoder(str(run / "model"), local_files_only=True)  # a plain CrossEncoder directory
    assert model.num_labels == 1
    # the fusion weight is chosen on dev over the grid, stored with the model, and read back by the reranker
    fusion = figures["dev"]["fusion"]
    assert fusion["fusion_weight"] in FUSION_GRID and set(fusion["curve"]) == {str(w) for w in FUSION_GRID}
    assert fusion["dev_ndcg@10"] == max(fusion["curve"].values())
    assert fusion["curve"]["1.0"] == pytest.approx(figures["dev"]["reranked_ndcg@10"], abs=1e-5)
    assert fusion["curve"]["0.0"] == pytest.approx(figures["dev"]["first_stage_ndcg@10"], abs=1e-5)
    assert CrossEncoderReranker(run / "model").fusion_weight == fusion["fusion_weight"]
    pairs = pd.read_parquet(run / "pairs.parquet")
    assert len(pairs) == figures["pairs"] and figures["pairs_trained"] == 192
    again = train_reranker(train, bm25, run, config.model_copy(update={"epochs": 2.0}), dev=dev, resume=True,
                           show_progress=False)
    assert again["pairs"] == figures["pairs"] and again["steps"] > figures["steps"]  # continued, same pairs


def test_the_cli_trains_a_reranker_that_eval_then_uses(shop, tmp_path):
    dataset = shop[0]
    data = save_dataset(dataset, tmp_path / "data")
    runner = CliRunner()
    result = runner.invoke(cli, ["train-reranker", "--catalog", str(data), "--format", "shopsearch",
                                 "--dev-fraction", "0.25", "--first-stage", "bm25", "--negatives", "2",
                                 "--mining-depth", "10", "--rerank-depth", "10", "--batch-size", "16", "--epochs", "0.2",
                                 "--output", str(tmp_path / "ce")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "re-ranked top 10" in result.output
    report = tmp_path / "report.json"
    result = runner.invoke(cli, ["eval", "--catalog", str(data), "--format", "shopsearch", "--system", "bm25",
                                 "--system", f"bm25>rerank:{tmp_path / 'ce' / 'model'}@10", "--n-resamples", "200",
                                 "--json", str(report)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    systems = json.loads(report.read_text())["systems"]
    assert list(systems) == ["bm25", "bm25>rerank:ce@10"]


def test_the_cli_calibrates_the_reranker_as_the_synthesis_judge(shop, tmp_path):
    """One cross-encoder: train-reranker's model (and its ONNX export) is a business judge too."""
    from shopsearch.models import export_cross_encoder_onnx
    from shopsearch.retrieval.rerank import JUDGE_FILE
    from shopsearch.synthesis.judges import CrossEncoderJudge, JudgeError

    data = save_dataset(shop[0], tmp_path / "data")
    result = CliRunner().invoke(cli, ["train-reranker", "--catalog", str(data), "--format", "shopsearch",
                                      "--dev-fraction", "0.25", "--first-stage", "bm25", "--negatives", "2",
                                      "--mining-depth", "10", "--rerank-depth", "10", "--batch-size", "16",
                                      "--epochs", "0.2", "--output", str(tmp_path / "ce")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    model = tmp_path / "ce" / "model"
    saved = json.loads((model / JUDGE_FILE).read_text())
    assert saved["calibrated"] and saved["source"] == "train-reranker" and 0.0 <= saved["threshold"] <= 1.0
    assert "as a synthesis judge" in result.output
    judge = CrossEncoderJudge.load(model)
    assert judge.threshold == saved["threshold"] and judge.describe()["reranker"] == "cross-encoder"
    queries, texts = ["cordless drill", "red dress"], ["Bosch cordless drill 18V", "Red summer dress"]
    logits = CrossEncoderReranker(model).score(queries, texts)
    assert np.allclose(judge.score(queries, texts), 1 / (1 + np.exp(-logits)), atol=1e-5)
    export = tmp_path / "onnx"
    export_cross_encoder_onnx(model, export)
    onnx_judge = CrossEncoderJudge.load(export)
    assert onnx_judge.threshold == judge.threshold and onnx_judge.describe()["reranker"] == "onnx-cross-encoder"
    (model / JUDGE_FILE).unlink()
    with pytest.raises(JudgeError, match="calibrates its threshold"):
        CrossEncoderJudge.load(model)
    assert CrossEncoderJudge.load(model, threshold=0.7).threshold == 0.7


@pytest.mark.parametrize("loss", ["lambdaloss", "listnet"])
def test_listwise_losses_train_on_whole_queries(shop, tmp_path, loss):
    _, train, dev, bm25, _ = shop
    config = RerankerConfig(**SMALL, loss=loss)
    figures = train_reranker(train, bm25, tmp_path / "run", config, dev=dev, show_progress=False)
    pairs = pd.read_parquet(tmp_path / "run" / "pairs.parquet").head(figures["pairs_trained"])
    queries = pairs["query_id"].nunique()
    rows = max(1, round(SMALL["batch_size"] / (len(pairs) / queries)))
    assert figures["loss"] == loss and figures["batch_rows"] == rows
    assert figures["steps"] == -(-queries // rows)  # one epoch: every query once, whole
    assert np.isfinite(figures["train_loss"]) and CrossEncoderReranker(tmp_path / "run" / "model").text_fields == ("title",)


def test_a_listwise_loss_needs_query_ids():
    from shopsearch.data.errors import ShopsearchError
    from shopsearch.training.cross_encoder import CrossEncoderFitConfig, _training_data

    pairs = pd.DataFrame({"query": ["a"], "product_text": ["b"], "label": [1.0]})
    with pytest.raises(ShopsearchError, match="query_id"):
        _training_data(None, pairs, CrossEncoderFitConfig(loss="lambdaloss"))


def test_a_reranker_can_keep_only_its_bottom_layers(shop, tmp_path):
    from sentence_transformers.cross_encoder import CrossEncoder

    from shopsearch.data.errors import ShopsearchError
    from shopsearch.training.cross_encoder import new_cross_encoder

    _, train, dev, bm25, _ = shop
    figures = train_reranker(train, bm25, tmp_path / "run", RerankerConfig(**SMALL, num_layers=2), dev=dev,
                             show_progress=False)
    assert figures["steps"] > 0
    model = CrossEncoder(str(tmp_path / "run" / "model"), local_files_only=True)
    assert model.model.config.num_hidden_layers == 2 and len(model.model.bert.encoder.layer) == 2
    with pytest.raises(ShopsearchError, match=r"1\.\.6"):
        new_cross_encoder(num_layers=7)
