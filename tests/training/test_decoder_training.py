"""A decoder backbone with LoRA and last-token pooling trains through `shopsearch train` (issue 3, item 7):
a tiny randomly initialised Qwen3-shaped decoder on CPU, both stages, the model saved merged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shopsearch.cli.main import cli
from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.data.store import save_dataset
from shopsearch.models.tiny import tiny_decoder_config_dir

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("decoder")
    shop = root / "shop"
    save_dataset(generate_demo_shop(DemoShopConfig(n_products=160, n_queries=48, seed=7)), shop)
    base = tiny_decoder_config_dir(root / "tiny-qwen3")
    config = root / "train.yaml"
    config.write_text(
        "train:\n"
        f"  encoder: {{base_model: {base}, pooling: lasttoken, lora: true, gradient_checkpointing: true,\n"
        "            query_prefix: 'Query: ', device: cpu}\n"
        "  stage1: {batch_size: 8, hard_negatives: 1, mining_top_k: 10, pseudo_query_ratio: 0}\n"
        "  stage2: {batch_size: 4, max_group_size: 4, hard_negatives: 1, mining_top_k: 10, learning_rate: 1.0e-3}\n"
        "  dev: {pool_size: null}\n"
        "  save_steps: 2\n"
        "  logging_steps: 1\n"
        "  mixed_precision: 'no'\n"
    )
    out = root / "run"
    result = CliRunner().invoke(
        cli,
        ["train", "--catalog", str(shop), "--config", str(config), "--dev-fraction", "0.25",
         "--max-steps", "3", "--seed", "1", "--output", str(out)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, base


def test_both_stages_train_lora_adapters_with_last_token_pooling(run):
    out, _ = run
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"1", "2"} and manifest["chosen_stage"] == "2"
    assert all(manifest["stages"][s]["steps"] == 3 for s in ("1", "2"))
    info = json.loads((out / "model" / "shopsearch_model.json").read_text())
    assert info["pooling"] == "lasttoken" and info["padding_side"] == "left" and info["decoder"] is True
    assert info["lora"]["enabled"] is True and info["lora"]["r"] == 32 and info["lora"]["alpha"] == 64
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses and all(np.isfinite(losses))


def test_the_saved_model_opens_in_plain_sentence_transformers_and_moved_from_the_base(run):
    from sentence_transformers import SentenceTransformer

    out, base = run
    model = SentenceTransformer(str(out / "model"), device="cpu")  # LoRA merged: no peft needed to load
    assert not any("lora" in name for name in model.state_dict())
    assert model.tokenizer.padding_side == "left"
    texts = ["cordless drill", "garden hose 50 ft"]
    trained = model.encode(texts, prompt_name="query", normalize_embeddings=True)
    assert np.isfinite(trained).all()
    from shopsearch.models import EncoderConfig, build_siamese_encoder

    untrained = build_siamese_encoder(EncoderConfig(base_model=str(base), pooling="lasttoken", device="cpu"))
    before = untrained.encode(texts, prompt="Query: ", normalize_embeddings=True)
    assert np.abs(trained - before).max() > 1e-4  # the adapters learnt something and were merged in
