"""Ablation baseline for ROAR: ListMLE / Plackett-Luce likelihood of the grade order (Xia et al. 2008)."""

from __future__ import annotations

from torch import Tensor

from shopsearch.training.losses import functional as LF
from shopsearch.training.losses.base import FLIPKART_CITATION, ScoreRankingLoss, group_scores

XIA_CITATION = """
@inproceedings{xia2008listwise,
      title={Listwise Approach to Learning to Rank: Theory and Algorithm},
      author={Fen Xia and Tie-Yan Liu and Jue Wang and Wensheng Zhang and Hang Li},
      booktitle={Proceedings of the 25th International Conference on Machine Learning (ICML)},
      year={2008},
}
"""


class ListMLELoss(ScoreRankingLoss):
    """The "ROAR replaced by ListMLE" ablation: ``L = L_contrast + beta * L_ListMLE``::

        L_ListMLE = mean_i sum_k [ logsumexp_{l >= k}(s_pi(l) / tau_r) - s_pi(k) / tau_r ]

    pi orders query i's own group by descending grade, ties stable by column position, padding
    excluded; queries with fewer than two distinct grades are skipped (see
    :func:`functional.listmle`). Everything else is shared with :class:`RoarLoss`.
    """

    ranking_name = "listmle"

    def ranking_loss(self, scores: Tensor, group_index: Tensor, grades: Tensor) -> Tensor:
        return LF.listmle(group_scores(scores, group_index), grades, self.tau_r)

    @property
    def citation(self) -> str:
        return FLIPKART_CITATION + XIA_CITATION
