"""Gradient caching (GradCache, Gao et al. 2021, arXiv 2101.06983) around any shopsearch loss.

In-batch negatives grow with the batch (the paper trains at 8,192 across devices), but a batch's
activations must fit in memory all at once. GradCache embeds the batch in mini-batches without a
graph, computes the loss and its gradient with respect to the embeddings, then re-embeds each
mini-batch with a graph and back-propagates that cached gradient into it: the loss and its
gradient are those of the whole batch, the memory that of one mini-batch, at the cost of a second
forward pass.

sentence-transformers implements the three steps once (``CachedLossMixin``, used by its
``CachedMultipleNegativesRankingLoss``), RNG replay for dropout included; what it lacks is a way to
put shopsearch's own losses (the masked InfoNCE, the BM25 logit prior, ROAR) inside. This wrapper is
that adapter: it takes any loss with ``compute_loss_from_embeddings(embeddings, labels)`` and sorts
each column's rows by length before splitting it, so each mini-batch is trimmed to its own longest
row (the padding saving of :mod:`~shopsearch.training.losses.length_buckets`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers.base.losses.gradcache import CachedLossMixin
from torch import Tensor, nn

GRADCACHE_CITATION = """
@inproceedings{gao2021scaling,
    title={Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup},
    author={Luyu Gao and Yunyi Zhang and Jiawei Han and Jamie Callan},
    booktitle={Proceedings of the 6th Workshop on Representation Learning for NLP},
    year={2021},
}
"""


class CachedGradientLoss(CachedLossMixin, nn.Module):
    """``loss`` over the whole batch, computed with gradient caching in mini-batches of
    ``mini_batch_size`` rows per column::

        e = [embed(column) without graph, mini-batch by mini-batch]      step 1
        g = dL(e, labels) / de                                           step 2
        for each mini-batch m: backward( <embed_m with graph, g_m> )     step 3

    The result equals ``loss(features, labels)`` and its gradient (up to floating-point rounding
    and dropout draws, which are replayed per mini-batch). ``last_components`` and the config are
    the wrapped loss's.
    """

    def __init__(self, loss: nn.Module, mini_batch_size: int = 32) -> None:
        super().__init__()
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
        if not hasattr(loss, "compute_loss_from_embeddings"):
            raise TypeError(f"{type(loss).__name__} has no compute_loss_from_embeddings(embeddings, labels)")
        self.loss: Any = loss
        self.model = loss.model
        self.mini_batch_size = mini_batch_size
        self._orders: list[Tensor] = []

    @property
    def last_components(self) -> dict[str, Tensor]:
        return getattr(self.loss, "last_components", {})

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        columns, self._orders = [], []
        for features in sentence_features:
            order = _length_order(features)
            self._orders.append(order)
            columns.append(_take_rows(features, order))
        return self.forward_cached(columns, labels)

    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *,
                       with_backward: bool = False) -> Tensor:
        embeddings = []
        for pieces, order in zip(reps, self._orders, strict=True):
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(len(order), device=order.device)
            embeddings.append(torch.cat(pieces, dim=0)[inverse.to(pieces[0].device)])
        loss = self.loss.compute_loss_from_embeddings(embeddings, labels)
        if with_backward:
            loss.backward()
            loss = loss.detach()
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        inner = self.loss.get_config_dict() if hasattr(self.loss, "get_config_dict") else {}
        return {"loss": type(self.loss).__name__, **inner, "mini_batch_size": self.mini_batch_size}

    @property
    def citation(self) -> str:
        return getattr(self.loss, "citation", "") + GRADCACHE_CITATION


def _length_order(features: dict[str, Any]) -> Tensor:
    mask = features.get("attention_mask")
    n = _rows(features)
    if isinstance(mask, Tensor) and mask.ndim == 2:
        return torch.argsort(mask.sum(dim=1), stable=True)
    return torch.arange(n)


def _rows(features: dict[str, Any]) -> int:
    for value in features.values():
        if isinstance(value, Tensor) and value.ndim >= 1:
            return int(value.size(0))
    raise ValueError("sentence features hold no batch tensor")


def _take_rows(features: dict[str, Any], order: Tensor) -> dict[str, Any]:
    """The features with every per-row tensor re-ordered; anything else passed through."""
    n = len(order)
    return {k: v[order.to(v.device)] if isinstance(v, Tensor) and v.ndim >= 1 and v.size(0) == n else v
            for k, v in features.items()}
