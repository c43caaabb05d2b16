"""Ablation baseline for ROAR: ListMLE / Plackett-Luce likelihood of the grade order (Xia et al. 2008)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from shopsearch.training.losses import functional as LF
from shopsearch.training.losses.base import FLIPKART_CITATION, GradedContrastiveLoss, group_scores

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

XIA_CITATION = """
@inproceedings{xia2008listwise,
      title={Listwise Approach to Learning to Rank: Theory and Algorithm},
      author={Fen Xia and Tie-Yan Liu and Jue Wang and Wensheng Zhang and Hang Li},
      booktitle={Proceedings of the 25th International Conference on Machine Learning (ICML)},
      year={2008},
}
"""


class ListMLELoss(GradedContrastiveLoss):
    """The "ROAR replaced by ListMLE" ablation: ``L = L_contrast + beta * L_ListMLE``::

        L_ListMLE = mean_i sum_k [ logsumexp_{l >= k}(s_pi(l) / tau_r) - s_pi(k) / tau_r ]

    pi orders query i's own group by descending grade, ties stable by column position, padding
    excluded; queries with fewer than two distinct grades are skipped (see
    :func:`functional.listmle`). Everything else is shared with :class:`RoarLoss`.
    """

    ranking_name = "listmle"

    def __init__(
        self,
        model: SentenceTransformer | None,
        tau: float = 0.02,
        delta: float | None = 0.1,
        tau_r: float = 0.05,
        beta: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, tau=tau, delta=delta, beta=beta, **kwargs)
        if tau_r <= 0:
            raise ValueError("tau_r must be positive")
        self.tau_r = tau_r

    def ranking_loss(self, scores: Tensor, group_index: Tensor, grades: Tensor) -> Tensor:
        return LF.listmle(group_scores(scores, group_index), grades, self.tau_r)

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "tau_r": self.tau_r}

    @property
    def citation(self) -> str:
        return FLIPKART_CITATION + XIA_CITATION
