"""Ablation baseline for ROAR: pairwise Bradley-Terry / RankNet on cosine gaps (Burges et al. 2005)."""

from __future__ import annotations

from torch import Tensor

from shopsearch.training.losses import functional as LF
from shopsearch.training.losses.base import FLIPKART_CITATION, ScoreRankingLoss, group_scores

BURGES_CITATION = """
@inproceedings{burges2005ranknet,
      title={Learning to Rank using Gradient Descent},
      author={Chris Burges and Tal Shaked and Erin Renshaw and Ari Lazier and Matt Deeds and Nicole Hamilton and Greg Hullender},
      booktitle={Proceedings of the 22nd International Conference on Machine Learning (ICML)},
      year={2005},
}
"""


class BradleyTerryLoss(ScoreRankingLoss):
    """The "ROAR replaced by pairwise Bradley-Terry" ablation: ``L = L_contrast + beta * L_BT``::

        L_BT = -1/C sum log sigmoid( (s_a - s_b) / tau_r )

    ``s`` = cosine of the query with its own group members; the pairs are ROAR's (every product of a
    grade vs every product of the next lower present grade). Only the ranking term differs from
    :class:`RoarLoss`: ``L_contrast`` (tau, delta, top-grade positive), ``beta`` and the inputs
    (query, doc_1..doc_G; labels (B, G) grades, -1 = padding) are the same.
    """

    ranking_name = "bradley_terry"

    def ranking_loss(self, scores: Tensor, group_index: Tensor, grades: Tensor) -> Tensor:
        return LF.bradley_terry(group_scores(scores, group_index), grades, self.tau_r)

    @property
    def citation(self) -> str:
        return FLIPKART_CITATION + BURGES_CITATION
