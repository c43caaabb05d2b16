"""Rewriter training (METHOD.md part B, step 2): best-of-n SFT data, SFT and GRPO on TRL.

The trainers run for real on CPU: a tiny random Qwen3 causal LM (``rewriter_training.tiny_lm``, built
on ``models.tiny``) with a byte-level BPE chat tokenizer, and the real rewards: the bundled
all-MiniLM-L6-v2, BM25 and an embedding judge over a small SYNTHETIC demo shop. The model is random,
so the tests check the plumbing (data in TRL's format, losses finite, rewards logged per component
and summed as documented, outputs saved and reloadable), not rewriting quality.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from shopsearch.config import ConfigError
from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.judges.embedding import EmbeddingJudge
from shopsearch.synthesis.judges.pairs import product_text_map
from shopsearch.synthesis.llm import build_backend
from shopsearch.synthesis.parsing import parse_candidates
from shopsearch.synthesis.prompts import build_messages
from shopsearch.synthesis.rewards import RewardModels, RewardWeights, group_rewards, score_candidates
from shopsearch.synthesis.rewriter_training.config import RewriterTrainConfig
from shopsearch.synthesis.rewriter_training.evaluation import evaluate_rewriter, rewriter_for
from shopsearch.synthesis.rewriter_training.grpo import (
    COMPONENTS,
    RewriterRewards,
    default_policy,
    grpo_dataset,
    reward_curves,
    train_grpo,
)
from shopsearch.synthesis.rewriter_training.policy import load_policy
from shopsearch.synthesis.rewriter_training.sft import sft_dataset, train_sft
from shopsearch.synthesis.rewriter_training.sft_data import (
    build_sft_examples,
    read_sft_set,
    score_rewrites,
    write_sft_set,
)
from shopsearch.synthesis.rewriter_training.tiny_lm import tiny_chat_lm_dir

REPO = Path(__file__).resolve().parents[2]
# TRL runs the trainers; the selection, config and reward tests do not need it
needs_trl = pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="needs trl (pip install trl)")


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop():
    return generate_demo_shop(DemoShopConfig(n_products=200, n_queries=20, judged_per_query=5))


@pytest.fixture(scope="module")
def reward_models(shop) -> RewardModels:
    texts = product_text_map(shop.catalog)
    judge = EmbeddingJudge(SentenceEncoder(), threshold=0.5)
    models = RewardModels(encoder=judge.encoder, retriever=BM25Retriever(shop.catalog.ids, [texts[p] for p in shop.catalog.ids]),
                          judge=judge, product_texts=texts)
    models.cache = judge.cache  # one embedding cache for the judge and the rewards
    return models


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory, shop) -> Path:
    texts = list(product_text_map(shop.catalog).values())
    return tiny_chat_lm_dir(tmp_path_factory.mktemp("tiny") / "lm", corpus=texts + shop.queries.df["text"].tolist())


def cpu_config(tmp_path: Path, base: Path, **overrides) -> RewriterTrainConfig:
    values = {
        "base_model": base, "output_dir": tmp_path / "run", "device": "cpu", "finetune": "full", "logging_steps": 1,
        "prompt": {"n_candidates": 3, "shots": 0},
        "sft": {"max_steps": 3, "batch_size": 4, "learning_rate": 5e-3, "max_length": 512},
        "grpo": {"max_steps": 2, "num_generations": 4, "batch_size": 8, "gradient_accumulation_steps": 1,
                 "max_completion_length": 16, "learning_rate": 1e-4},
        "reward": {"k": 5},
    }
    for key, value in overrides.items():
        values[key] = {**values[key], **value} if isinstance(value, dict) and key in values else value
    return RewriterTrainConfig.model_validate(values)


def scored_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A rewrites table and score_candidates-shaped scores (seed_id = rewrites row) with known rewards."""
    rewrites = pd.DataFrame({
        "seed_query_id": ["q0", "q1", "q2"],
        "seed_query": ["sofa without wood legs", "cordless drill", "gift for a 5 year old"],
        "query_type": ["negative", "plain", "knowledge"],
    })
    long = "sofa " + " ".join(["very"] * 20) + " long"
    rows = [
        (0, "sofa metal legs", 1.4), (0, "sofa no wood legs", 1.6), (0, "wood leg sofa", 0.2),
        (0, "Sofa Metal Legs", 1.0), (0, "sofa without wood legs", 2.0), (0, long, 1.9), (0, "sofa chrome legs", 1.2),
        (1, "20v drill driver", 0.8), (1, "power drill", 0.5),
        (2, "", -1.0),
    ]
    scores = pd.DataFrame(rows, columns=["seed_id", "rewrite", "reward"])
    scores["seed_query"] = rewrites["seed_query"].to_numpy()[scores["seed_id"]]
    scores["candidate_id"] = scores.groupby("seed_id").cumcount()
    return rewrites, scores


# --- best-of-n SFT set --------------------------------------------------------------------------


def test_selection_picks_the_best_candidates_and_filters_by_threshold(tmp_path: Path) -> None:
    rewrites, scores = scored_frames()
    config = cpu_config(tmp_path, tmp_path, selection={"min_reward": 1.0})
    examples, counts = build_sft_examples(scores, config, rewrites)

    assert examples["seed_query_id"].tolist() == ["q0"]
    ex = examples.iloc[0]
    # best first; the echo, the over-long line and the lower-rewarded duplicate never enter a target
    assert ex["targets"] == ["sofa no wood legs", "sofa metal legs", "sofa chrome legs"]
    assert ex["target_rewards"] == [1.6, 1.4, 1.2] and ex["best_reward"] == 1.6 and ex["n"] == 3
    assert ex["prompt"] == build_messages("sofa without wood legs", "negative", 3, style="list", shots=0)
    answer = ex["completion"][0]["content"]
    assert answer == "1. sofa no wood legs\n2. sofa metal legs\n3. sofa chrome legs"
    parsed = parse_candidates(answer, "sofa without wood legs", 3)
    assert parsed.format_ok and parsed.candidates == ex["targets"]

    assert (counts.seeds, counts.kept, counts.below_threshold, counts.no_candidates) == (3, 1, 1, 1)
    assert counts.candidates_unusable == 3  # echo, too long, duplicate
    assert counts.by_type == {"negative": {"seeds": 1, "kept": 1}, "plain": {"seeds": 1, "kept": 0},
                              "knowledge": {"seeds": 1, "kept": 0}}

    # a lower threshold keeps the drill seed; the single style keeps only the best candidate
    looser, _ = build_sft_examples(scores, cpu_config(tmp_path, tmp_path, selection={"min_reward": 0.7}), rewrites)
    assert looser["seed_query_id"].tolist() == ["q0", "q1"]
    single = cpu_config(tmp_path, tmp_path, selection={"min_reward": 0.7}, prompt={"style": "single"})
    one, _ = build_sft_examples(scores, single, rewrites)
    assert one["targets"].tolist() == [["sofa no wood legs"], ["20v drill driver"]]
    assert one.iloc[1]["completion"][0]["content"] == "20v drill driver"


def test_selection_floors_and_minimum_counts(tmp_path: Path) -> None:
    rewrites, scores = scored_frames()
    config = cpu_config(tmp_path, tmp_path, selection={"min_reward": 0.0, "min_candidate_reward": 1.3,
                                                       "min_candidates": 2, "top_m": 5})
    examples, counts = build_sft_examples(scores, config, rewrites)
    assert examples["targets"].tolist() == [["sofa no wood legs", "sofa metal legs"]]
    assert examples.iloc[0]["prompt"][-1]["content"].endswith("Write 2 rewrites.")  # asks for what it teaches
    assert counts.too_few_candidates == 1 and counts.kept == 1


def test_sft_set_round_trips_with_manifest_and_mismatches_are_reported(tmp_path: Path) -> None:
    rewrites, scores = scored_frames()
    config = cpu_config(tmp_path, tmp_path, selection={"min_reward": 0.7})
    examples, counts = build_sft_examples(scores, config, rewrites)
    for fmt in ("jsonl", "parquet"):
        out = write_sft_set(examples, counts, tmp_path / f"sft-{fmt}", config, fmt=fmt)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["kind"] == "synthesis-rewriter-sft" and manifest["counts"]["kept"] == 2
        back = read_sft_set(out)
        assert back["targets"].tolist() == examples["targets"].tolist()
        assert back["prompt"].tolist() == examples["prompt"].tolist()
        assert sft_dataset(out)[0]["completion"] == examples.iloc[0]["completion"]

    with pytest.raises(SynthesisError, match="seed_query_id"):
        build_sft_examples(scores, config)
    with pytest.raises(SynthesisError, match="other seed query"):
        build_sft_examples(scores, config, rewrites.iloc[::-1])
    strict = cpu_config(tmp_path, tmp_path, selection={"min_reward": 9.0})
    nothing, none_counts = build_sft_examples(scores, strict, rewrites)
    with pytest.raises(SynthesisError, match="min_reward"):
        write_sft_set(nothing, none_counts, tmp_path / "empty", strict)


def test_selection_on_real_rewards_takes_the_argmax(tmp_path: Path, reward_models: RewardModels) -> None:
    rewrites = pd.DataFrame({
        "seed_query_id": ["a", "b", "c"],
        "seed_query": ["sofa without wood legs", "cordless drill", "gift for a dinosaur fan"],
        "query_type": ["negative", "plain", "knowledge"],
        "candidates": [["wood leg sofa", "sofa metal legs", "sofa with chrome legs"],
                       ["20v cordless drill driver", "garden hose", "drill"], []],
        "format_ok": [True, True, False], "format_penalty": [0.0, 0.0, 1.0],
    })
    scores = score_rewrites(rewrites, reward_models, k=5)
    examples, counts = build_sft_examples(scores, cpu_config(tmp_path, tmp_path, selection={"min_reward": -5.0}))
    assert examples["seed_query_id"].tolist() == ["a", "b"] and counts.no_candidates == 1
    for ex in examples.itertuples():
        group = scores[(scores["seed_query_id"] == ex.seed_query_id)]
        assert ex.targets[0] == group.loc[group["reward"].idxmax(), "rewrite"]
        assert ex.target_rewards == sorted(ex.target_rewards, reverse=True)
    assert "wood leg sofa" not in examples.iloc[0]["targets"][:1]  # loses the negation: not the best


# --- config -------------------------------------------------------------------------------------


def test_config_reads_the_synth_section_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "shopsearch.yaml"
    path.write_text(
        "data: {format: homedepot}\n"
        "synth:\n  rewriter_training:\n    base_model: models/smollm2\n    lora: {r: 16, alpha: 32}\n"
        "    grpo: {num_generations: 4, batch_size: 8}\n    reward: {weights: {goodrate: 2.0}}\n",
        encoding="utf-8",
    )
    config = RewriterTrainConfig.from_file(path, output_dir=tmp_path / "out")
    assert config.base_model == Path("models/smollm2") and config.lora.r == 16 and config.grpo.num_generations == 4
    assert config.reward.weights.goodrate == 2.0 and config.output_dir == tmp_path / "out"
    cpu = config.model_copy(update={"device": "cpu"})
    assert not cpu.use_lora() and not cpu.use_bf16() and not cpu.use_gradient_checkpointing()
    assert cpu.model_copy(update={"finetune": "lora"}).use_lora()
    assert RewriterTrainConfig.from_file(None).prompt.n_candidates == 5

    path.write_text("synth:\n  rewriter_training:\n    grpo: {num_generations: 3, batch_size: 8}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="multiple of num_generations"):
        RewriterTrainConfig.from_file(path)
    path.write_text("synth:\n  rewriter_training:\n    lora_rank: 8\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lora_rank"):
        RewriterTrainConfig.from_file(path)


# --- the reward functions -----------------------------------------------------------------------


def test_component_rewards_sum_to_the_group_reward(reward_models: RewardModels) -> None:
    weights = RewardWeights(goodrate=2.0, diversity=0.3)
    rewards = RewriterRewards(reward_models, weights, n=3, k=5)
    funcs = rewards.reward_functions()
    assert [f.__name__ for f in funcs] == list(COMPONENTS)
    assert rewards.reward_weights() == [1.0, 2.0, 0.25, 0.3, 0.5, 1.0]
    seeds = ["sofa without wood legs"] * 3 + ["cordless drill"]
    answers = ["1. sofa metal legs\n2. sofa no wood legs\n3. grey fabric sofa", "Sure! wood leg sofa", "",
               "1. 20v drill driver\n2. power drill"]
    completions = [[{"role": "assistant", "content": a}] for a in answers]
    columns = [f(prompts=[None] * 4, completions=completions, seed_query=seeds) for f in funcs]
    total = [sum(w * c[i] for w, c in zip(rewards.reward_weights(), columns, strict=True)) for i in range(4)]

    parsed = [parse_candidates(a, q, 3) for q, a in zip(seeds, answers, strict=True)]
    direct = score_candidates(seeds, [p.candidates for p in parsed], reward_models,
                              format_penalty=[p.penalty for p in parsed], weights=weights, k=5)
    expected = group_rewards(direct)["reward"].tolist()
    assert total == pytest.approx(expected, abs=1e-9)
    fmt = columns[list(COMPONENTS).index("format")]
    assert fmt[0] == 0.0 and fmt[2] == -1.0 and -1.0 < fmt[3] < 0.0  # the empty answer: only the penalty
    assert total[2] == pytest.approx(-weights.format)
    with pytest.raises(SynthesisError, match="seed_query"):
        funcs[0](prompts=[None], completions=completions[:1])


# --- tiny model, SFT, GRPO ----------------------------------------------------------------------


def test_tiny_chat_tokenizer_round_trips_chat_prompts(tiny_lm: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_lm))
    text = tok.apply_chat_template(build_messages("sofa w/o wood legs — 2m", "negative", 3), tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def sft_examples(config: RewriterTrainConfig) -> pd.DataFrame:
    rewrites, scores = scored_frames()
    examples, _ = build_sft_examples(scores, config.model_copy(update={"selection": config.selection.model_copy(
        update={"min_reward": 0.0})}), rewrites)
    return pd.concat([examples] * 4, ignore_index=True)  # 8 examples: 2 batches of 4


@needs_trl
def test_sft_full_finetune_on_cpu_saves_a_loadable_model(tmp_path: Path, tiny_lm: Path,
                                                         reward_models: RewardModels) -> None:
    config = cpu_config(tmp_path, tiny_lm)
    result = train_sft(config, sft_examples(config))
    assert result.steps == 3 and result.adapter_dir is None
    losses = [r["loss"] for r in result.log_history if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert result.stage_dir == tmp_path / "run" / "sft"
    manifest = json.loads((result.stage_dir / "manifest.json").read_text())
    assert manifest["kind"] == "synthesis-rewriter-sft-model" and manifest["steps"] == 3 and not manifest["lora"]
    assert len((result.stage_dir / "metrics.jsonl").read_text().splitlines()) == len(result.log_history)

    backend = build_backend("transformers", model=str(result.model_dir), device="cpu")
    assert backend.has_chat_template  # the tokenizer's template travels with the model
    answers = backend.chat(build_messages("rug not wool", "negative", 3, shots=0), n=2, max_tokens=8, seed=0)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    summary = evaluate_rewriter(rewriter_for(backend, config, max_tokens=8),
                                pd.DataFrame({"text": ["rug not wool", "cordless drill"]}), reward_models, config)
    assert summary["seeds"] == 2 and math.isfinite(summary["reward"]) and 0.0 <= summary["format_ok_rate"] <= 1.0


@needs_trl
def test_sft_lora_saves_an_adapter_that_matches_the_merged_model(tmp_path: Path, tiny_lm: Path) -> None:
    config = cpu_config(tmp_path, tiny_lm, finetune="lora", lora={"r": 8, "alpha": 16}, sft={"max_steps": 2})
    result = train_sft(config, sft_examples(config))
    assert result.adapter_dir is not None and (result.adapter_dir / "adapter_config.json").is_file()
    adapter_cfg = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == str(tiny_lm.resolve()) and adapter_cfg["r"] == 8
    prompt = build_messages("rug not wool", "negative", 3, shots=0)
    merged = build_backend("transformers", model=str(result.model_dir), device="cpu")
    adapter = build_backend("transformers", model=str(result.adapter_dir), device="cpu")
    assert adapter.chat(prompt, temperature=0, max_tokens=10) == merged.chat(prompt, temperature=0, max_tokens=10)


@needs_trl
def test_grpo_on_cpu_logs_every_reward_component(tmp_path: Path, tiny_lm: Path, shop,
                                                 reward_models: RewardModels) -> None:
    config = cpu_config(tmp_path, tiny_lm)
    with pytest.raises(SynthesisError, match="run SFT first"):
        default_policy(config)
    seeds = shop.queries.df.head(6)
    dataset = grpo_dataset(seeds, config)
    assert dataset[0]["prompt"] == build_messages(seeds["text"].iloc[0], "plain", 3, shots=0)
    result = train_grpo(config, seeds, reward_models, policy=tiny_lm)
    assert result.steps == 2
    logs = [r for r in result.log_history if "reward" in r]
    assert len(logs) == 2
    weights = dict(zip(COMPONENTS, RewriterRewards(reward_models, config.reward.weights).reward_weights(),
                       strict=True))
    for record in logs:
        assert math.isfinite(record["loss"]) and math.isfinite(record["kl"])
        parts = [record[f"rewards/{c}/mean"] for c in COMPONENTS]
        assert all(math.isfinite(p) for p in parts)
        assert record["reward"] == pytest.approx(sum(weights[c] * p for c, p in zip(COMPONENTS, parts,
                                                                                     strict=True)), abs=1e-4)
        assert 0.0 <= record["rewriter/format_ok"] <= 1.0
    curves = reward_curves(result.log_history)
    assert [s for s, _ in curves["rewards/goodrate/mean"]] == [1, 2]
    manifest = json.loads((result.stage_dir / "manifest.json").read_text())
    assert manifest["reward_functions"] == list(COMPONENTS) and manifest["prompts"] == 6
    assert build_backend("transformers", model=str(result.model_dir), device="cpu").chat(
        dataset[0]["prompt"], max_tokens=4, seed=0)


@needs_trl
def test_grpo_lora_from_the_sft_model(tmp_path: Path, tiny_lm: Path, shop, reward_models: RewardModels) -> None:
    config = cpu_config(tmp_path, tiny_lm, finetune="lora", lora={"r": 8, "alpha": 16}, sft={"max_steps": 2})
    train_sft(config, sft_examples(config))
    result = train_grpo(config, shop.queries.df.head(4), reward_models)  # starts from run/sft/model
    assert result.adapter_dir is not None and (result.adapter_dir / "adapter_model.safetensors").is_file()
    manifest = json.loads((result.stage_dir / "manifest.json").read_text())
    assert manifest["base_model"] == str((tmp_path / "run" / "sft" / "model").resolve()) and manifest["lora"]
    assert all(math.isfinite(r["loss"]) for r in result.log_history if "loss" in r)


def test_policy_loading_errors_say_what_to_do(tmp_path: Path, tiny_lm: Path) -> None:
    config = cpu_config(tmp_path, tiny_lm)
    with pytest.raises(SynthesisError, match="not a local directory"):
        load_policy(tmp_path / "missing", config)
    bare = tmp_path / "bare"
    shutil.copytree(tiny_lm, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    tok_cfg = json.loads((bare / "tokenizer_config.json").read_text())
    tok_cfg.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    with pytest.raises(SynthesisError, match="no chat template"):
        load_policy(bare, config)
    with pytest.raises(SynthesisError, match="no base model"):
        train_sft(config.model_copy(update={"base_model": None}), sft_examples(config))


def test_gpu_benchmark_script_parses_help_and_refuses_a_missing_model(tmp_path: Path) -> None:
    script = REPO / "benchmarks" / "rewriter_gpu.py"
    shown = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--model" in shown.stdout and "--grpo-steps" in shown.stdout
    missing = subprocess.run([sys.executable, str(script), "--model", str(tmp_path / "nope")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
