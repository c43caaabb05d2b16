"""How good a rewriter policy is on held-out seeds, by the same rewards it is trained on.

Before/after figures for SFT and GRPO (METHOD.md part B, step 2): the policy rewrites each seed
with the training prompt (greedy by default, so the figure is the policy's typical answer, not a
lucky sample), the answer is parsed and scored with :func:`score_candidates`, and the per-seed
group rewards (:func:`group_rewards`) are averaged overall and per query type. The same numbers a
GRPO run logs, but on seeds it never trained on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shopsearch.synthesis.llm.base import LLMBackend
from shopsearch.synthesis.rewards import RewardModels, group_rewards, score_candidates
from shopsearch.synthesis.rewriter import MultiCandidateRewriter, RewriterConfig
from shopsearch.synthesis.rewriter_training.config import RewriterTrainConfig

COMPONENT_COLUMNS = ("relevance", "goodrate", "product_language", "diversity", "novelty", "format_penalty", "reward")


def rewriter_for(backend: LLMBackend, config: RewriterTrainConfig, *, temperature: float = 0.0,
                 shots: int | None = None, max_tokens: int | None = None) -> MultiCandidateRewriter:
    """The inference rewriter matching the training prompt (n, style, shots unless overridden)."""
    p = config.prompt
    return MultiCandidateRewriter(backend, RewriterConfig(
        n=p.n_candidates, style=p.style, shots=p.shots if shots is None else shots, temperature=temperature,
        max_tokens=max_tokens or config.grpo.max_completion_length, max_words=p.max_words, seed=config.seed,
        # greedy single-style sampling would repeat one answer n times
        samples=1,
    ))


def evaluate_rewriter(
    rewriter: MultiCandidateRewriter, seeds: pd.DataFrame, models: RewardModels, config: RewriterTrainConfig
) -> dict[str, Any]:
    """Mean group reward and components over ``seeds`` (columns ``text`` or ``seed_query``, optional
    ``query_type`` / ``seed_query_id``), overall and per query type, plus format figures."""
    column = "seed_query" if "seed_query" in seeds.columns else "text"
    types = seeds["query_type"] if "query_type" in seeds else pd.Series("plain", index=seeds.index)
    ids = seeds["seed_query_id"] if "seed_query_id" in seeds else pd.Series(range(len(seeds)), index=seeds.index)
    rows = [(str(i), str(q), str(t or "plain")) for i, q, t in zip(ids, seeds[column], types.fillna("plain"),
                                                                    strict=True)]
    results = rewriter.rewrite_many(rows)
    scores = score_candidates(
        [r.seed_query for r in results], [r.candidates for r in results], models,
        format_ok=[r.format_ok for r in results], format_penalty=[r.format_penalty for r in results],
        weights=config.reward.weights, k=config.reward.k,
    )
    groups = group_rewards(scores)
    groups["query_type"] = [r.query_type for r in results]
    summary: dict[str, Any] = {c: float(groups[c].mean()) for c in COMPONENT_COLUMNS}
    summary.update({
        "seeds": len(results),
        "format_ok_rate": float(sum(r.format_ok for r in results) / max(1, len(results))),
        "mean_candidates": float(sum(len(r.candidates) for r in results) / max(1, len(results))),
        "by_type": {str(t): {"seeds": len(g), "reward": float(g["reward"].mean())}
                    for t, g in groups.groupby("query_type")},
        "examples": [{"query": r.seed_query, "candidates": r.candidates} for r in results[:5]],
    })
    return summary
