"""Listwise distillation of a teacher's scores into the stage-2 groups (RocketQAv2, Ren et al. 2021).

Written here because sentence-transformers' distillation losses (``MarginMSELoss``, ``DistillKLDivLoss``)
take the teacher scores as the whole label, while the stage-2 losses need the grades too: this
wrapper splits the labels, hands the grades to the stage-2 loss, and adds the distillation term.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shopsearch.training.losses.base import GradedContrastiveLoss, embed

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# the label of a group product that only the teacher scored (groups.DISTILL_ONLY_LABEL)
DISTILL_ONLY = -2

ROCKETQA_V2_CITATION = """
@inproceedings{ren2021rocketqav2,
      title={RocketQAv2: A Joint Training Method for Dense Passage Retrieval and Passage Re-ranking},
      author={Ruiyang Ren and Yingqi Qu and Jing Liu and Wayne Xin Zhao and Qiaoqiao She and Hua Wu and Haifeng Wang and Ji-Rong Wen},
      booktitle={Proceedings of EMNLP},
      year={2021},
}
"""


def listwise_kl(student: Tensor, teacher: Tensor, present: Tensor) -> Tensor:
    """Mean over queries of ``KL(softmax(teacher) || softmax(student))`` within each row, over the
    ``present`` entries only; rows with fewer than two present entries add nothing (and the mean
    is 0 when no row has two)."""
    masked = torch.finfo(student.dtype).min
    log_p_student = F.log_softmax(student.masked_fill(~present, masked), dim=-1)
    log_p_teacher = F.log_softmax(teacher.masked_fill(~present, masked), dim=-1)
    per_entry = torch.where(present, log_p_teacher.exp() * (log_p_teacher - log_p_student), 0.0)
    rows = present.sum(dim=-1) >= 2
    if not bool(rows.any()):
        return student.sum() * 0.0
    return per_entry.sum(dim=-1)[rows].mean()


class ListwiseDistillationLoss(nn.Module):
    """A stage-2 loss plus listwise distillation of a teacher over each query's own group::

        L = L_stage2(grades) + gamma * mean_i KL( P_t(. | q_i) || P_s(. | q_i) )
        P_s(d_j | q_i) = softmax_j( cos(q_i, d_j) / tau_s )     the group's present products only
        P_t(d_j | q_i) = softmax_j( t_ij / tau_t )              t: the teacher's scores

    Inputs: columns (query, doc_1, ..., doc_G) and ``labels`` (B, 2G): the G grades (-1 = padding)
    followed by the G teacher scores (ignored where the grade is padding). ``base`` is any
    :class:`GradedContrastiveLoss` (ROAR, Bradley-Terry, ListMLE); it gets the grades only, or, when
    it carries a logit prior, the grades and the prior's G + 1 indices that follow the teacher scores
    (labels (B, 3G + 1)). A grade of ``DISTILL_ONLY`` (-2) marks a product the teacher scored but
    no judgment graded (``stage2.teacher_candidates``): it takes part in the distillation term only,
    the base loss sees padding. The prior shapes the base loss only: the student of the distillation term
    is the encoder alone, the model that is served.
    ``last_components`` holds the base loss's parts and ``distill``.
    """

    def __init__(
        self,
        model: SentenceTransformer | None,
        base: GradedContrastiveLoss,
        gamma: float = 1.0,
        tau_student: float = 0.05,
        tau_teacher: float = 0.1,
    ) -> None:
        super().__init__()
        if gamma < 0 or tau_student <= 0 or tau_teacher <= 0:
            raise ValueError("gamma must be >= 0 and both temperatures positive")
        self.model = model
        self.base = base
        self.gamma = gamma
        self.tau_student = tau_student
        self.tau_teacher = tau_teacher
        self.last_components: dict[str, Tensor] = {}

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        return self.compute_loss_from_embeddings(embed(self.model, sentence_features, self.base.bucket_rows), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        g = len(embeddings) - 1
        width = 3 * g + 1 if getattr(self.base, "prior", None) is not None else 2 * g
        if labels is None or labels.dim() != 2 or labels.size(1) != width:
            shape = None if labels is None else tuple(labels.shape)
            what = f"{g} grades, then {g} teacher scores" + (f", then the prior's {g + 1} indices" if width > 2 * g else "")
            raise ValueError(f"labels must be (batch, {width}): {what}; got {shape}")
        grades = labels[:, :g].round().long()
        present = (grades >= 0) | (grades == DISTILL_ONLY)
        grades = grades.masked_fill(grades == DISTILL_ONLY, -1)  # the base loss never sees them
        teacher = labels[:, g : 2 * g].float()
        base_labels = torch.cat([grades, labels[:, 2 * g :].round().long()], dim=1) if width > 2 * g else grades
        base = self.base.compute_loss_from_embeddings(embeddings, base_labels)
        if isinstance(base, dict):
            raise ValueError("the base loss must return a tensor (return_components=False)")
        q = F.normalize(embeddings[0], p=2, dim=-1)
        docs = F.normalize(torch.stack(embeddings[1:], dim=1), p=2, dim=-1)
        student = torch.einsum("bd,bgd->bg", q, docs).float() / self.tau_student
        distill = listwise_kl(student, teacher.to(student.device) / self.tau_teacher, present.to(student.device))
        self.last_components = {**self.base.last_components, "distill": distill.detach()}
        return base + self.gamma * distill

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "base": type(self.base).__name__,
            **self.base.get_config_dict(),
            "gamma": self.gamma,
            "tau_student": self.tau_student,
            "tau_teacher": self.tau_teacher,
        }

    @property
    def citation(self) -> str:
        return self.base.citation + ROCKETQA_V2_CITATION
