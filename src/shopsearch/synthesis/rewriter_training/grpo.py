"""RL of the multi-candidate rewriter by GRPO with TRL's ``GRPOTrainer`` (METHOD.md part B, step 2).

Each prompt is the rewriter prompt for one seed query; the policy samples ``num_generations``
answers (one GRPO group), each answer a numbered list of ``n`` rewrites. An answer is parsed by
:func:`shopsearch.synthesis.parsing.parse_candidates` (graded format penalty) and its rewrites
are scored by :func:`shopsearch.synthesis.rewards.score_candidates`, with the answer's own
rewrites as the candidate group (so diversity and novelty are measured inside one answer, as the
paper's multi-candidate rewriter intends). The answer's reward is the mean of its candidates'
rewards: METHOD.md's reconstruction R = w1 mean Rel + w2 mean goodrate + w3 (1 - mean pairwise
cos) (+ product language + novelty) - w_format * penalty.

Each component is its own TRL reward function (``relevance``, ``goodrate``, ``product_language``,
``diversity``, ``novelty``, ``format`` = minus the penalty), weighted by ``RewardWeights`` through
``GRPOConfig.reward_weights``, so TRL logs ``rewards/<component>/mean`` separately and its weighted
sum is exactly the group reward above (an empty candidate contributes only -w_format). The batch is
scored once: the first function called computes every component and the others read the cache.
TRL then normalises the summed reward within each group, clips the ratio (epsilon) and adds
beta x KL to the reference policy (the SFT model: see :mod:`.policy`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.parsing import parse_candidates
from shopsearch.synthesis.rewards import RewardModels, RewardWeights, score_candidates
from shopsearch.synthesis.rewriter_training.config import RewriterTrainConfig
from shopsearch.synthesis.rewriter_training.policy import (
    ADAPTER_DIR,
    MODEL_DIR,
    common_trainer_args,
    load_policy,
    lora_config,
    save_stage,
)
from shopsearch.synthesis.rewriter_training.sft import StageResult
from shopsearch.synthesis.rewriter_training.sft_data import prompt_messages

KIND = "synthesis-rewriter-grpo-model"
# component -> the RewardWeights field that weighs it
COMPONENTS: dict[str, str] = {
    "relevance": "relevance", "goodrate": "goodrate", "product_language": "product_language",
    "diversity": "diversity", "novelty": "novelty", "format": "format",
}


def completion_text(completion: Any) -> str:
    """The answer text of a TRL completion: a string (standard format) or a list of messages
    (conversational format: the last message's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            return str(last.get("content") or "")
    return ""


class RewriterRewards:
    """The rewriter rewards of whole answers, as TRL reward functions (one per component).

    Args:
        models: encoder, retriever, judge and product texts (:class:`RewardModels`).
        weights: component weights (the negation penalty acts inside relevance).
        n: rewrites each answer was asked for; style ``single``: 1.
        k: products retrieved per rewrite.
    """

    def __init__(self, models: RewardModels, weights: RewardWeights | None = None, *, n: int = 5,
                 k: int = 10, max_words: int = 16) -> None:
        self.models = models
        self.weights = weights or RewardWeights()
        self.n, self.k, self.max_words = n, k, max_words
        self._key: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._table: pd.DataFrame | None = None

    def score(self, seed_queries: Sequence[str], answers: Sequence[str]) -> pd.DataFrame:
        """One row per answer: each component (mean over its rewrites), ``reward`` (their weighted
        sum), ``n_candidates`` and ``format_ok``. Cached for the last batch."""
        key = (tuple(map(str, seed_queries)), tuple(map(str, answers)))
        if key == self._key and self._table is not None:
            return self._table
        if len(key[0]) != len(key[1]):
            raise SynthesisError(f"{len(key[0])} seed queries for {len(key[1])} answers")
        parsed = [parse_candidates(a, q, self.n, max_words=self.max_words) for q, a in zip(*key, strict=True)]
        rows = score_candidates(
            list(key[0]), [p.candidates for p in parsed], self.models,
            format_ok=[p.format_ok for p in parsed], format_penalty=[p.penalty for p in parsed],
            weights=self.weights, k=self.k,
        )
        empty = rows["rewrite"].str.len().to_numpy() == 0
        parts = {c: np.where(empty, 0.0, rows[c].to_numpy(dtype=np.float64))
                 for c in ("relevance", "goodrate", "product_language", "diversity", "novelty")}
        parts["format"] = -rows["format_penalty"].to_numpy(dtype=np.float64)
        per_row = pd.DataFrame({"answer": rows["seed_id"].to_numpy(), **parts, "reward": rows["reward"].to_numpy()})
        table = per_row.groupby("answer", sort=True).mean()
        table["n_candidates"] = [len(p.candidates) for p in parsed]
        table["format_ok"] = [p.format_ok for p in parsed]
        self._key, self._table = key, table.reset_index(drop=True)
        return self._table

    def reward_weights(self) -> list[float]:
        """``GRPOConfig.reward_weights``, aligned with :meth:`reward_functions`."""
        return [float(getattr(self.weights, field)) for field in COMPONENTS.values()]

    def reward_functions(self) -> list[Callable[..., list[float]]]:
        """One TRL reward callable per component, named after it (TRL logs ``rewards/<name>/mean``)."""
        return [self._component(name) for name in COMPONENTS]

    def _component(self, name: str) -> Callable[..., list[float]]:
        def reward(prompts: list[Any], completions: list[Any], seed_query: list[str] | None = None,
                   **kwargs: Any) -> list[float]:
            if seed_query is None:
                raise SynthesisError("the GRPO dataset needs a seed_query column (build it with grpo_dataset())")
            fresh = self._key is None or self._key[1] != tuple(completion_text(c) for c in completions)
            table = self.score(seed_query, [completion_text(c) for c in completions])
            log_metric = kwargs.get("log_metric")
            if fresh and callable(log_metric):  # once per batch: how many rewrites an answer holds
                log_metric("rewriter/candidates", float(table["n_candidates"].mean()))
                log_metric("rewriter/format_ok", float(table["format_ok"].mean()))
            return [float(v) for v in table[name]]

        reward.__name__ = name
        reward.__qualname__ = name
        return reward


def grpo_dataset(seeds: pd.DataFrame, config: RewriterTrainConfig) -> Any:
    """A ``datasets.Dataset`` of rewriter prompts from seeds (``text``), a rewrites table or an SFT
    set (``seed_query``): columns ``prompt`` (messages asking for ``prompt.n_candidates``
    rewrites), ``seed_query``, ``query_type``, ``seed_query_id``; one row per distinct query."""
    from datasets import Dataset

    column = "seed_query" if "seed_query" in seeds.columns else "text" if "text" in seeds.columns else None
    if column is None:
        raise SynthesisError(f"GRPO prompts need a seed_query or text column; got {list(seeds.columns)}")
    frame = seeds.drop_duplicates(column)
    types = frame["query_type"] if "query_type" in frame else pd.Series("plain", index=frame.index)
    ids = frame["seed_query_id"] if "seed_query_id" in frame else pd.Series(range(len(frame)), index=frame.index)
    n = 1 if config.prompt.style == "single" else config.prompt.n_candidates
    rows = [
        {"prompt": prompt_messages(str(q), str(t or "plain"), n, config.prompt), "seed_query": str(q),
         "query_type": str(t or "plain"), "seed_query_id": str(i)}
        for q, t, i in zip(frame[column], types.fillna("plain"), ids, strict=True)
    ]
    if not rows:
        raise SynthesisError("no seed queries to build GRPO prompts from")
    return Dataset.from_list(rows)


def default_policy(config: RewriterTrainConfig) -> Path:
    """Where GRPO starts: ``grpo_from``, else the SFT model of ``output_dir``."""
    if config.grpo_from is not None:
        return config.grpo_from
    sft_model = config.output_dir / "sft" / MODEL_DIR
    if not sft_model.is_dir():
        raise SynthesisError(
            f"no SFT model at {sft_model}: run SFT first (train_sft), or set grpo_from to the policy to start from "
            "(e.g. the base model, to skip SFT)"
        )
    return sft_model


def train_grpo(
    config: RewriterTrainConfig,
    seeds: pd.DataFrame,
    reward_models: RewardModels,
    *,
    policy: str | Path | None = None,
    output_dir: str | Path | None = None,
    callbacks: list[Any] | None = None,
) -> StageResult:
    """GRPO of ``policy`` (default :func:`default_policy`) on prompts for ``seeds``; writes
    ``output_dir`` (default ``config.output_dir/grpo``) as described in :mod:`.policy`."""
    from trl import GRPOConfig, GRPOTrainer

    start_from = Path(policy) if policy is not None else default_policy(config)
    stage_dir = Path(output_dir) if output_dir is not None else config.output_dir / "grpo"
    dataset = grpo_dataset(seeds, config)
    n = 1 if config.prompt.style == "single" else config.prompt.n_candidates
    rewards = RewriterRewards(reward_models, config.reward.weights, n=n, k=config.reward.k,
                              max_words=config.prompt.max_words)
    model, tokenizer = load_policy(start_from, config)
    g = config.grpo
    args = GRPOConfig(
        **common_trainer_args(config, stage_dir.with_name(stage_dir.name + "_checkpoints"), g.save_steps),
        learning_rate=config.grpo_learning_rate(),
        max_steps=g.max_steps,
        per_device_train_batch_size=g.batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        beta=g.beta,
        epsilon=g.epsilon,
        num_iterations=g.num_iterations,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        reward_weights=rewards.reward_weights(),
        log_completions=False,
    )
    funcs: list[Any] = list(rewards.reward_functions())  # TRL's list type is invariant in the callable's return
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=lora_config(config), callbacks=callbacks)
    begin = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - begin
    history = list(trainer.state.log_history)
    loss = float(output.training_loss) if output.training_loss is not None else None
    save_stage(
        stage_dir, trainer.model, tokenizer, kind=KIND, base_model=start_from, log_history=history,
        config=config.model_dump(mode="json"), prompts=len(dataset), steps=int(trainer.state.global_step),
        train_loss=loss, seconds=round(seconds, 2), learning_rate=config.grpo_learning_rate(),
        reward_functions=list(COMPONENTS), reward_weights=rewards.reward_weights(),
    )
    return StageResult(stage_dir, stage_dir / MODEL_DIR, stage_dir / ADAPTER_DIR if config.use_lora() else None,
                       int(trainer.state.global_step), loss, seconds, history)


def reward_curves(log_history: Sequence[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` of every logged reward, KL and loss figure (for plots and
    the benchmark's JSON)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for record in log_history:
        step = int(record.get("step", 0))
        for key, value in record.items():
            if (key.startswith(("rewards/", "reward", "rewriter/")) or key in ("kl", "loss", "entropy")) and \
                    isinstance(value, int | float):
                curves.setdefault(key, []).append((step, float(value)))
    return curves
