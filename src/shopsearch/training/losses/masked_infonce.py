"""Stage-1 loss: InfoNCE with a false-negative margin mask (Flipkart 2026, arXiv 2606.01504)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor, nn

from shopsearch.training.losses import functional as LF
from shopsearch.training.losses.base import DEFAULT_BUCKET_ROWS, FLIPKART_CITATION, embed, pair_batch

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class MaskedInfoNCELoss(nn.Module):
    """Masked InfoNCE, stage 1 of the two-stage dual-encoder recipe::

        m_ij = 1[ cos(q_i, d_j) <= cos(q_i, d_i) + delta ]      the positive d_i always kept
        L    = -1/N sum_i log( exp(s_ii/tau) / (exp(s_ii/tau) + sum_{j != i} m_ij exp(s_ij/tau)) )

    with tau = 0.02 and delta = 0.1 (Flipkart 2026, arXiv 2606.01504). A product scoring more than
    delta ABOVE the labelled positive is taken for a near-duplicate or acceptable substitute and is
    dropped from the denominator instead of being pushed away — positive-aware false-negative
    handling in the spirit of NV-Retriever (Moreira et al. 2024, arXiv 2407.15831). The mask applies
    alike to in-batch products and to mined hard negatives. ``delta=None`` gives plain InfoNCE
    (van den Oord et al. 2018) at temperature tau.

    Inputs: columns (anchor, positive) or (anchor, positive, negative_1, ..., negative_n); no labels.
    Candidates = all positives of the batch, then all hard negatives (column-major, as in
    sentence-transformers' MultipleNegativesRankingLoss). With ``gather_across_devices`` the
    candidates are all-gathered across processes (with gradients) so every device scores its
    queries against the global batch; each query's positive column is offset by ``rank * B``.
    Use a no-duplicates batch sampler: a product must not appear twice in one batch. ``bucket_rows``:
    rows per length-sorted forward chunk (``length_buckets``; None: one padded forward per column).
    """

    def __init__(
        self,
        model: SentenceTransformer | None,
        tau: float = 0.02,
        delta: float | None = 0.1,
        gather_across_devices: bool = False,
        bucket_rows: int | None = DEFAULT_BUCKET_ROWS,
    ) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError("tau must be positive")
        self.model = model
        self.tau = tau
        self.delta = delta
        self.gather_across_devices = gather_across_devices
        self.bucket_rows = bucket_rows

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        return self.compute_loss_from_embeddings(embed(self.model, sentence_features, self.bucket_rows), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        embeddings = [F.normalize(e, p=2, dim=-1) for e in embeddings]
        q, candidates, positive_index = pair_batch(embeddings, self.gather_across_devices)
        return LF.masked_infonce(q, candidates, positive_index, self.tau, self.delta)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "tau": self.tau,
            "delta": self.delta,
            "gather_across_devices": self.gather_across_devices,
            "bucket_rows": self.bucket_rows,
        }

    @property
    def citation(self) -> str:
        return FLIPKART_CITATION
