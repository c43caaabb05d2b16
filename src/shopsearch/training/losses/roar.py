"""Stage-2 loss: masked InfoNCE plus ROAR, Relative Odds Alignment for Retrieval
(Flipkart 2026, arXiv 2606.01504)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from shopsearch.training.losses import functional as LF
from shopsearch.training.losses.base import FLIPKART_CITATION, GradedContrastiveLoss

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

ORPO_CITATION = """
@misc{hong2024orpo,
      title={ORPO: Monolithic Preference Optimization without Reference Model},
      author={Jiwoo Hong and Noah Lee and James Thorne},
      year={2024},
      eprint={2403.07691},
      archivePrefix={arXiv},
      url={https://arxiv.org/abs/2403.07691},
}
"""


class RoarLoss(GradedContrastiveLoss):
    """Stage 2: ``L = L_contrast + beta * L_align`` (beta = 0.1)::

        L_contrast : masked InfoNCE (tau = 0.02, delta = 0.1), each group's top-grade product as the
                     positive; the group's other top-grade products are left out of that row's
                     denominator; its lower-grade products stay candidates, under the mask
        P(p_j|q_i) = softmax_j(S_i / tau_a)          tau_a = 0.01, over ALL products of the batch
        logodds    = log P - log(1 - P)              in log space (log_softmax + stable log1mexp)
        Delta      = logodds(product of a grade) - logodds(product of the next lower PRESENT grade)
        L_align    = -1/C sum log sigmoid(Delta)     C = comparisons in the batch

    Every product of a grade is compared with every product of the next lower present grade (groups
    of variable size; reduces to the paper's form with one product per grade). A query with one grade
    only adds no comparison; with C = 0 the term is 0. Odds ratios, not probability ratios: once the
    higher product holds most of the mass its probability saturates while its odds keep growing,
    which keeps widening the margin — the odds-ratio idea of ORPO (Hong et al. 2024).

    Inputs: columns (query, doc_1, ..., doc_G), ``labels`` (B, G) grades, higher = better, -1 =
    padding (padded docs are dropped before the softmax). ``last_components`` holds the last
    ``contrast`` and ``align`` values. See :class:`GradedContrastiveLoss` for the shared options.
    """

    ranking_name = "align"

    def __init__(
        self,
        model: SentenceTransformer | None,
        tau: float = 0.02,
        delta: float | None = 0.1,
        tau_a: float = 0.01,
        beta: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, tau=tau, delta=delta, beta=beta, **kwargs)
        if tau_a <= 0:
            raise ValueError("tau_a must be positive")
        self.tau_a = tau_a

    def ranking_loss(self, scores: Tensor, group_index: Tensor, grades: Tensor) -> Tensor:
        return LF.roar_alignment_scores(scores, group_index, grades, self.tau_a)

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "tau_a": self.tau_a}

    @property
    def citation(self) -> str:
        return FLIPKART_CITATION + ORPO_CITATION
