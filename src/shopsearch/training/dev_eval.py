"""Dev evaluation during training, with the foundation's metrics, as a sentence-transformers evaluator.

The trainer calls :class:`DevRetrievalEvaluator` at each evaluation step; it encodes a pool of
products with the model being trained, searches the dev queries against it exactly (flat inner
product), and scores the runs with :func:`shopsearch.eval.metrics.per_query_metrics` — the same
code the ``eval`` command uses. The best checkpoint is kept by its NDCG@10.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from sentence_transformers.base.evaluation import BaseEvaluator

from shopsearch.data.schema import Dataset
from shopsearch.eval.metrics import per_query_metrics
from shopsearch.retrieval.dense import DenseRetriever

DEV_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@10")


class ModelEncoder:
    """The ``SentenceEncoder`` interface over an in-memory sentence-transformers model (the one
    being trained), so a ``DenseRetriever`` can search with it without saving it first.

    Encodes in float32 unless ``bf16``: dev figures pick the checkpoint and must be what the saved
    (float32) model reproduces, while hard-negative mining only needs each query's top candidates,
    which bf16 finds at ~1.8x the speed where the hardware computes it natively.
    """

    normalize = True

    def __init__(
        self, model: Any, model_id: str = "in-training", batch_size: int = 128, *, bf16: bool = False
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.batch_size = batch_size
        self.bf16 = bf16
        self.dimension = int(model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], *, is_query: bool = False, show_progress: bool = False) -> np.ndarray:
        prompts = getattr(self.model, "prompts", None) or {}
        prompt_name = "query" if is_query and prompts.get("query") else None
        was_training = self.model.training
        self.model.eval()
        device_type = "cuda" if next(self.model.parameters()).is_cuda else "cpu"
        try:
            # float32 even inside the trainer's bf16 autocast, unless asked (see the class docstring)
            with (
                torch.inference_mode(),
                torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16),
                _unwrapped_forward(self.model, enabled=not self.bf16),
            ):
                vecs = self.model.encode(
                    list(texts),
                    batch_size=self.batch_size,
                    prompt_name=prompt_name,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=show_progress,
                )
        finally:
            self.model.train(was_training)
        return np.ascontiguousarray(vecs, dtype=np.float32)


@contextmanager
def _unwrapped_forward(model: Any, *, enabled: bool) -> Iterator[None]:
    """Run ``model`` with its own ``forward`` for the duration, not accelerate's mixed-precision one.

    Under bf16, ``Accelerator.prepare`` replaces the model's ``forward`` with one that enters
    ``torch.autocast`` itself, so an outer ``autocast(enabled=False)`` does not reach it: without
    this, the trainer's dev figures were bf16 figures that the saved float32 model did not
    reproduce (up to 1.2e-3 on the trainer test's embeddings). Accelerate keeps the original as
    ``_original_forward``.
    """
    original = model.__dict__.get("_original_forward") if enabled else None
    if original is None:
        yield
        return
    wrapped = model.__dict__["forward"]
    model.forward = original
    try:
        yield
    finally:
        model.forward = wrapped


def dev_pool(dataset: Dataset, pool_size: int | None, seed: int = 0) -> np.ndarray:
    """Row numbers of the catalogue in the dev pool: every judged dev product, then seeded random
    others up to ``pool_size`` (all products when None or larger than the catalogue)."""
    n = len(dataset.catalog)
    if pool_size is None or pool_size >= n:
        return np.arange(n)
    pos = dataset.catalog.position()
    judged = np.unique([pos[p] for p in dataset.judgments.df["product_id"] if p in pos])
    rest = np.setdiff1d(np.arange(n), judged)
    extra = max(0, pool_size - len(judged))
    pick = np.random.default_rng(seed).choice(rest, size=min(extra, len(rest)), replace=False)
    return np.sort(np.concatenate([judged, pick]))


class DevRetrievalEvaluator(BaseEvaluator):
    """A sentence-transformers evaluator: NDCG/Recall/MRR/MAP of the model on dev queries.

    Args:
        dataset: the dev dataset (its catalogue, queries and judgments).
        product_texts: rendered product texts aligned with ``dataset.catalog`` (same renderer as the index).
        pool_size: see :func:`dev_pool`; the size is part of every logged figure's meaning.
        depth: retrieval depth per query.
    """

    def __init__(
        self,
        dataset: Dataset,
        product_texts: Sequence[str],
        *,
        pool_size: int | None = 10000,
        depth: int = 100,
        seed: int = 0,
        batch_size: int = 128,
    ) -> None:
        super().__init__()
        self.greater_is_better = True
        self.primary_metric = "dev_ndcg@10"
        rows = dev_pool(dataset, pool_size, seed)
        self.product_ids = dataset.catalog.ids[rows]
        self.texts = [product_texts[i] for i in rows]
        qrels = dataset.judgments.qrels()
        q = dataset.queries.df[dataset.queries.df["query_id"].isin(qrels)]
        self.query_ids = q["query_id"].tolist()
        self.query_texts = q["text"].tolist()
        self.qrels = qrels
        self.scheme = dataset.scheme
        self.depth = depth
        self.batch_size = batch_size
        self.history: list[dict[str, Any]] = []

    @property
    def pool(self) -> int:
        return len(self.product_ids)

    def evaluate_model(self, model: Any) -> dict[str, float]:
        encoder = ModelEncoder(model, batch_size=self.batch_size)
        vectors = encoder.encode(self.texts)
        retriever = DenseRetriever(encoder, self.product_ids, vectors, query_cache_size=0)  # type: ignore[arg-type]
        run = retriever.search(self.query_texts, self.depth).to_run(self.query_ids)
        frame = per_query_metrics(run, self.qrels, self.scheme, list(DEV_METRICS), self.query_ids)
        return {f"dev_{m}": float(frame[m].mean(skipna=True)) for m in DEV_METRICS}

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        metrics = self.evaluate_model(model)
        self.history.append({"epoch": epoch, "steps": steps, "pool": self.pool, **metrics})
        return metrics

    def store_metrics_in_model_card_data(self, *args: Any, **kwargs: Any) -> None:
        return None

    @property
    def description(self) -> str:
        return f"dev retrieval (pool of {self.pool} products)"

    def get_config_dict(self) -> dict[str, Any]:
        return {"pool": self.pool, "depth": self.depth, "queries": len(self.query_ids)}
