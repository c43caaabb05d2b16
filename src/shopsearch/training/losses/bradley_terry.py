"""Ablation baseline for ROAR: pairwise Bradley-Terry / RankNet on cosine gaps (Burges et al. 2005)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from shopsearch.training.losses import functional as LF
from shopsearch.training.losses.base import FLIPKART_CITATION, GradedContrastiveLoss, group_scores

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BURGES_CITATION = """
@inproceedings{burges2005ranknet,
      title={Learning to Rank using Gradient Descent},
      author={Chris Burges and Tal Shaked and Erin Renshaw and Ari Lazier and Matt Deeds and Nicole Hamilton and Greg Hullender},
      booktitle={Proceedings of the 22nd International Conference on Machine Learning (ICML)},
      year={2005},
}
"""


class BradleyTerryLoss(GradedContrastiveLoss):
    """The "ROAR replaced by pairwise Bradley-Terry" ablation: ``L = L_contrast + beta * L_BT``::

        L_BT = -1/C sum log sigmoid( (s_a - s_b) / tau_r )

    ``s`` = cosine of the query with its own group members; the pairs are ROAR's (every product of a
    grade vs every product of the next lower present grade). Only the ranking term differs from
    :class:`RoarLoss`: ``L_contrast`` (tau, delta, top-grade positive), ``beta`` and the inputs
    (query, doc_1..doc_G; labels (B, G) grades, -1 = padding) are the same.
    """

    ranking_name = "bradley_terry"

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
        return LF.bradley_terry(group_scores(scores, group_index), grades, self.tau_r)

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "tau_r": self.tau_r}

    @property
    def citation(self) -> str:
        return FLIPKART_CITATION + BURGES_CITATION
