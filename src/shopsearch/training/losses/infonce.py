"""Plain in-batch InfoNCE: the baseline of the ablations and of the production system it replaced."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from sentence_transformers.util import all_gather
from torch import Tensor, nn

from shopsearch.training.config import Direction
from shopsearch.training.losses import functional as LF
from shopsearch.training.losses.base import DEFAULT_BUCKET_ROWS, embed, pair_batch

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PartitionMode = Literal["joint", "per_direction"]

OORD_CITATION = """
@misc{oord2019representationlearningcontrastivepredictive,
      title={Representation Learning with Contrastive Predictive Coding},
      author={Aaron van den Oord and Yazhe Li and Oriol Vinyals},
      year={2019},
      eprint={1807.03748},
      archivePrefix={arXiv},
      primaryClass={cs.LG},
      url={https://arxiv.org/abs/1807.03748},
}
"""


class InfoNCELoss(nn.Module):
    """InfoNCE with in-batch negatives (van den Oord et al. 2018, arXiv 1807.03748)::

        L = -1/B sum_i log( exp(s_ii/tau) / sum_j exp(s_ij/tau) )

    over every candidate j of the batch (all positives, then all hard negatives), cosine
    similarity. Numerically the same loss as sentence-transformers' ``MultipleNegativesRankingLoss``
    with ``scale = 1/tau`` (default directions), kept here so ablations share one input contract
    and one gathering code path with :class:`MaskedInfoNCELoss`.

    ``directions`` other than the default add sentence-transformers' other interaction terms:
    ``doc_to_query`` is the symmetric (CLIP-style) term, each positive product against every query
    of the batch, ``-1/B sum_i log( exp(s_ii/tau) / sum_j exp(s_ji/tau) )``; ``query_to_query`` and
    ``doc_to_doc`` add the other queries / products as negatives (GTE's "improved contrastive loss",
    Li et al. 2023, arXiv 2308.03281). ``partition_mode`` "per_direction" averages one softmax per
    direction, "joint" takes one softmax over them all. Those cases are computed by
    ``MultipleNegativesRankingLoss.compute_loss_from_embeddings`` on this module's (length-bucketed,
    float32) embeddings, so the library's definition is the one trained.

    ``prior`` (``training.lexical_prior.LexicalPrior``) adds a constant to every logit before the
    softmax, ``s_ij + prior(q_i, d_j)``: the hybrid's lexical score, so the encoder learns the residual
    of BM25 (CLEAR, Gao et al. 2021). It needs ``labels`` (B, 1 + n_docs): each row's query index, then
    the catalogue row of its positive and of each negative. ``prior_share`` m < 1 trains the cosine alone
    too, ``(1 - m) * L(s) + m * L(s + prior)``, for an encoder that also serves without BM25.

    Inputs: columns (anchor, positive[, negative_1, ..., negative_n]); labels only with a prior.
    ``bucket_rows``: rows per length-sorted forward chunk (``length_buckets``; None: one padded
    forward per column).
    """

    def __init__(
        self,
        model: SentenceTransformer | None,
        tau: float = 0.05,
        gather_across_devices: bool = False,
        bucket_rows: int | None = DEFAULT_BUCKET_ROWS,
        directions: Sequence[Direction] = ("query_to_doc",),
        partition_mode: PartitionMode = "joint",
        prior: Callable[[Tensor, Tensor], Tensor] | None = None,
        prior_share: float = 1.0,
    ) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError("tau must be positive")
        if prior is not None and tuple(directions) != ("query_to_doc",):
            raise ValueError("a logit prior works on query-to-product scores only: directions must be query_to_doc")
        if not 0 < prior_share <= 1:
            raise ValueError(f"prior_share must lie in (0, 1], got {prior_share}")
        self.prior = prior
        self.prior_share = prior_share
        self.model = model
        self.tau = tau
        self.gather_across_devices = gather_across_devices
        self.bucket_rows = bucket_rows
        self.directions = tuple(directions)
        self.partition_mode = partition_mode
        self._library_loss: nn.Module | None = None
        if self.directions != ("query_to_doc",):
            from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

            # The library validates directions and partition mode (e.g. per_direction with query_to_query).
            self._library_loss = MultipleNegativesRankingLoss(
                model,  # type: ignore[arg-type]
                scale=1.0 / tau,
                gather_across_devices=gather_across_devices,
                directions=self.directions,
                partition_mode=partition_mode,
            )

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        return self.compute_loss_from_embeddings(embed(self.model, sentence_features, self.bucket_rows), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        if self._library_loss is not None:
            # The score matrices in float32, outside autocast: at tau 0.05 a bf16 logit near 16 is only
            # resolved to 0.06, and the (B, M) matmuls cost nothing next to the encoder.
            with torch.autocast(device_type=embeddings[0].device.type, enabled=False):
                return self._library_loss.compute_loss_from_embeddings(  # type: ignore[operator]
                    [e.float() for e in embeddings], labels
                )
        embeddings = [F.normalize(e, p=2, dim=-1) for e in embeddings]
        q, candidates, positive_index = pair_batch(embeddings, self.gather_across_devices)
        if self.prior is None:
            return LF.infonce(q, candidates, positive_index, self.tau)
        scores = (q @ candidates.T).float()
        hybrid = LF.infonce_scores(scores + self._prior(labels, len(embeddings) - 1, q.size(0)), positive_index, self.tau)
        if self.prior_share == 1:
            return hybrid
        alone = LF.infonce_scores(scores, positive_index, self.tau)
        return (1 - self.prior_share) * alone + self.prior_share * hybrid

    def _prior(self, labels: Tensor | None, n_docs: int, batch: int) -> Tensor:
        """(B, M) prior in ``pair_batch``'s candidate order: all positives, then all first negatives, ..."""
        assert self.prior is not None
        if labels is None or labels.dim() != 2 or labels.shape != (batch, 1 + n_docs):
            got = None if labels is None else tuple(labels.shape)
            raise ValueError(
                f"a logit prior needs labels of shape ({batch}, {1 + n_docs}): the query index, then the catalogue "
                f"row of each of the {n_docs} product column(s); got {got}"
            )
        labels = labels.long()
        rows = all_gather(labels.contiguous()) if self.gather_across_devices else labels
        return self.prior(labels[:, 0], rows[:, 1:].T.reshape(-1))

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "tau": self.tau,
            "gather_across_devices": self.gather_across_devices,
            "bucket_rows": self.bucket_rows,
            "directions": list(self.directions),
            "partition_mode": self.partition_mode,
            "prior": None if self.prior is None else getattr(self.prior, "weight", type(self.prior).__name__),
            "prior_share": self.prior_share,
        }

    @property
    def citation(self) -> str:
        return OORD_CITATION
