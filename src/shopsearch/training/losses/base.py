"""Shared plumbing of the loss modules: embedding the input columns, gathering across processes,
and the stage-2 composition ``L = contrast_weight * L_contrast + beta * L_ranking``.

The loss classes follow sentence-transformers conventions (``forward(sentence_features, labels)``,
``compute_loss_from_embeddings``, ``get_config_dict``, ``citation``) so they run inside
``SentenceTransformerTrainer`` and under ``MatryoshkaLoss``: embeddings are obtained by calling the
model (``length_buckets.embed_bucketed``, once per length-sorted chunk of rows), which is exactly
what ``MatryoshkaLoss``'s forward decorator intercepts to serve truncated, re-normalised embeddings
(it replays its cached outputs in call order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from sentence_transformers.util import all_gather, all_gather_with_grad, get_rank
from torch import Tensor, nn

from shopsearch.training.losses import functional as LF
from shopsearch.training.losses.length_buckets import embed_bucketed

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

FLIPKART_CITATION = """
@misc{flipkart2026semanticretrieval,
      title={Semantic retrieval for product search},
      author={{Flipkart}},
      note={two-stage Siamese dual encoder: masked InfoNCE, then ROAR},
      year={2026},
      eprint={2606.01504},
      archivePrefix={arXiv},
      url={https://arxiv.org/abs/2606.01504},
}
"""


DEFAULT_BUCKET_ROWS = 32
"""Rows per length-sorted forward chunk (``length_buckets``): a stage-1 Home Depot batch with one mined
negative fed 3,268 product tokens a step in 32-row chunks against 5,456 in one padded forward
(``benchmarks/results/length_buckets.json``); 16-row chunks trimmed more but were no faster."""


def embed(
    model: nn.Module | None, sentence_features: Iterable[dict[str, Tensor]], bucket_rows: int | None = None
) -> list[Tensor]:
    """One (B, d) embedding tensor per input column, the doc columns sharing one merged batch, run in
    length-sorted chunks of ``bucket_rows`` rows (None: one forward per batch).

    Normalisation happens in ``compute_loss_from_embeddings`` (cosine similarity throughout), so a
    caller passing its own embeddings gets the same loss. A loss built with ``model=None`` only
    serves ``compute_loss_from_embeddings``.
    """
    if model is None:
        raise ValueError("this loss was built without a model; call compute_loss_from_embeddings instead")
    return embed_bucketed(model, sentence_features, bucket_rows)


def pair_batch(embeddings: list[Tensor], gather: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(anchor, positive, negative_1..n) columns -> ``(q, candidates, positive_index)``.

    ``candidates`` = all positives of the (global) batch, then all first negatives, then all second
    negatives, ... (the MultipleNegativesRankingLoss order), so query i's positive is column
    ``offset + i``. With ``gather`` (and torch.distributed initialised) the candidates of every
    process are all-gathered with gradients and ``offset = rank * B``; without an initialised
    process group gathering is a no-op.
    """
    if len(embeddings) < 2:
        raise ValueError(
            f"expected (anchor, positive[, negatives...]) columns, got {len(embeddings)} column(s)"
        )
    q, docs = embeddings[0], embeddings[1:]
    offset = 0
    if gather:
        docs = [all_gather_with_grad(d) for d in docs]
        offset = get_rank() * q.size(0)
    positive_index = torch.arange(offset, offset + q.size(0), device=q.device)
    return q, torch.cat(docs, dim=0), positive_index


def graded_batch(q: Tensor, docs: Tensor, grades: Tensor, gather: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(query, doc_1..doc_G) with (B, G) grades -> ``(candidates, group_index, grades)``.

    Padded slots (grade < 0) are dropped from the candidates entirely: they enter neither the
    softmax nor the contrast. ``candidates`` (M, d) are the present docs of the (global) batch in
    row-major order; ``group_index`` (B, G) maps each local slot to its candidate column (-1 =
    padding). With ``gather``, docs (with grad) and grades (without) are all-gathered first.
    """
    b, g, d = docs.shape
    if grades.shape != (b, g):
        raise ValueError(
            f"labels must be (batch, {g}) grades for {g} document columns, got {tuple(grades.shape)}"
        )
    offset = 0
    if gather:
        docs = all_gather_with_grad(docs)
        grades = all_gather(grades.contiguous())
        offset = get_rank() * b
    present = grades >= 0
    flat_present = present.flatten()
    candidates = docs.reshape(-1, d)[flat_present]
    column = torch.cumsum(flat_present.long(), dim=0) - 1
    column = torch.where(flat_present, column, torch.full_like(column, -1)).view(present.shape)
    return candidates, column[offset : offset + b], grades[offset : offset + b]


def top_grade_positives(
    group_index: Tensor, grades: Tensor, min_positive_grade: float | None = None
) -> tuple[Tensor, Tensor]:
    """Each group's top-grade product as the contrastive positive.

    Returns ``(positive_index (B,), exclude (B, G))``: the candidate column of the first slot (by
    column position) holding the group's top present grade, -1 when the group is empty or its top
    grade is below ``min_positive_grade``; and the columns of the group's OTHER top-grade products
    (-1 elsewhere), which are dropped from that row's denominator — they are positives too, not
    negatives. Lower-grade products of the group stay candidates (under the margin mask).
    """
    present = (grades >= 0) & (group_index >= 0)
    g = grades.float()
    top = torch.where(present, g, torch.full_like(g, float("-inf"))).amax(dim=1)
    is_top = present & (g == top.unsqueeze(1))
    first = is_top.float().argmax(dim=1)  # first occurrence of the maximum
    has_positive = present.any(dim=1)
    if min_positive_grade is not None:
        has_positive &= top >= min_positive_grade
    none = torch.full_like(first, -1)
    positive_index = torch.where(has_positive, group_index.gather(1, first.unsqueeze(1)).squeeze(1), none)
    slot = torch.arange(grades.size(1), device=grades.device).unsqueeze(0)
    others = is_top & (slot != first.unsqueeze(1)) & has_positive.unsqueeze(1)
    exclude = torch.where(others, group_index, torch.full_like(group_index, -1))
    return positive_index, exclude


class GradedContrastiveLoss(nn.Module):
    """Stage-2 composition shared by :class:`RoarLoss`, :class:`BradleyTerryLoss` and
    :class:`ListMLELoss`::

        L = contrast_weight * L_contrast + beta * L_ranking

    ``L_contrast`` is the masked InfoNCE (tau, delta) with each group's top-grade product as the
    positive; ``L_ranking`` is the subclass's :meth:`ranking_loss` on the same (B, M) score matrix
    (one matmul per step, reused by both terms).

    Inputs: columns (query, doc_1, ..., doc_G), ``labels`` (B, G) grades, higher = better
    (e.g. ESCI E/S/C/I = 3/2/1/0), -1 = padding (padding docs may be empty strings; they are
    embedded with the others, then dropped before any score is used). ``bucket_rows``: rows per
    length-sorted forward chunk (``length_buckets``; None: one padded forward per column).

    ``prior`` (``training.lexical_prior.LexicalPrior``) adds a constant to every score before both terms,
    ``S_ij + prior(q_i, d_j)`` over all batch products: the stage-2 form of stage 1's BM25 prior, so the
    softmax and the graded comparisons see the hybrid's ranking. ``labels`` are then (B, 2G + 1): the G
    grades, the query index, the G catalogue rows (padding: any row, unused). ``prior_share`` m < 1
    trains ``(1 - m) * L(S) + m * L(S + prior)``.

    The last values of both parts are kept (detached) in ``last_components`` for logging; with
    ``return_components=True`` ``forward`` returns them as a dict, which ``SentenceTransformerTrainer``
    sums and logs separately (not usable inside ``MatryoshkaLoss``, which needs a tensor).
    """

    ranking_name = "ranking"

    def __init__(
        self,
        model: SentenceTransformer | None,
        tau: float = 0.02,
        delta: float | None = 0.1,
        beta: float = 0.1,
        contrast_weight: float = 1.0,
        min_positive_grade: float | None = None,
        gather_across_devices: bool = False,
        return_components: bool = False,
        bucket_rows: int | None = DEFAULT_BUCKET_ROWS,
        prior: Callable[[Tensor, Tensor], Tensor] | None = None,
        prior_share: float = 1.0,
    ) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError("tau must be positive")
        if not 0 < prior_share <= 1:
            raise ValueError(f"prior_share must lie in (0, 1], got {prior_share}")
        self.prior = prior
        self.prior_share = prior_share
        self.model = model
        self.tau = tau
        self.delta = delta
        self.beta = beta
        self.contrast_weight = contrast_weight
        self.min_positive_grade = min_positive_grade
        self.gather_across_devices = gather_across_devices
        self.return_components = return_components
        self.bucket_rows = bucket_rows
        self.last_components: dict[str, Tensor] = {}

    def ranking_loss(self, scores: Tensor, group_index: Tensor, grades: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None
    ) -> Tensor | dict[str, Tensor]:
        return self.compute_loss_from_embeddings(embed(self.model, sentence_features, self.bucket_rows), labels)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None
    ) -> Tensor | dict[str, Tensor]:
        if labels is None:
            raise ValueError(f"{type(self).__name__} needs labels: (batch, n_docs) grades, -1 = padding")
        if len(embeddings) < 2:
            raise ValueError("expected (query, doc_1, ..., doc_G) columns")
        q = F.normalize(embeddings[0], p=2, dim=-1)
        docs = F.normalize(torch.stack(embeddings[1:], dim=1), p=2, dim=-1)
        labels = labels.to(q.device)
        prior_labels = None
        if self.prior is not None:
            labels, prior_labels = self._split_prior_labels(labels, docs.size(1))
        candidates, group_index, grades = graded_batch(q, docs, labels, self.gather_across_devices)
        if candidates.size(0) == 0:  # a batch of padding only: nothing to learn, keep the graph
            zero = q.sum() * 0.0
            self.last_components = {"contrast": zero.detach(), self.ranking_name: zero.detach()}
            return {"contrast": zero, self.ranking_name: zero} if self.return_components else zero
        scores = q @ candidates.T  # (B, M): the only similarity matmul of the step
        positive_index, exclude = top_grade_positives(group_index, grades, self.min_positive_grade)
        if prior_labels is None:
            contrast, ranking = self._terms(scores, positive_index, exclude, group_index, grades)
        else:
            hybrid = scores.float() + self._prior(prior_labels, labels)
            contrast, ranking = self._terms(hybrid, positive_index, exclude, group_index, grades)
            m = self.prior_share
            if m < 1:  # the cosine-alone terms only when they are mixed in
                alone = self._terms(scores, positive_index, exclude, group_index, grades)
                contrast, ranking = (1 - m) * alone[0] + m * contrast, (1 - m) * alone[1] + m * ranking
        parts = {"contrast": self.contrast_weight * contrast, self.ranking_name: self.beta * ranking}
        self.last_components = {"contrast": contrast.detach(), self.ranking_name: ranking.detach()}
        if self.return_components:
            return parts
        return parts["contrast"] + parts[self.ranking_name]

    def _terms(
        self, scores: Tensor, positive_index: Tensor, exclude: Tensor, group_index: Tensor, grades: Tensor
    ) -> tuple[Tensor, Tensor]:
        contrast = LF.masked_infonce_scores(scores, positive_index, self.tau, self.delta, exclude=exclude)
        return contrast, self.ranking_loss(scores, group_index, grades)

    @staticmethod
    def _split_prior_labels(labels: Tensor, g: int) -> tuple[Tensor, Tensor]:
        """(B, 2G + 1) labels -> the (B, G) grades and the (B, G + 1) indices [query, row_1..row_G]."""
        if labels.dim() != 2 or labels.size(1) != 2 * g + 1:
            raise ValueError(
                f"a logit prior needs labels of shape (batch, {2 * g + 1}): {g} grades, the query index, then the "
                f"catalogue row of each of the {g} product column(s); got {tuple(labels.shape)}"
            )
        labels = labels.long()
        return labels[:, :g], labels[:, g:]

    def _prior(self, prior_labels: Tensor, grades: Tensor) -> Tensor:
        """(B, M) prior in ``graded_batch``'s candidate order: the present slots of the (global) batch, row-major."""
        assert self.prior is not None
        rows, all_grades = prior_labels[:, 1:], grades
        if self.gather_across_devices:
            rows, all_grades = all_gather(rows.contiguous()), all_gather(grades.contiguous())
        return self.prior(prior_labels[:, 0], rows[all_grades >= 0])

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "tau": self.tau,
            "delta": self.delta,
            "beta": self.beta,
            "contrast_weight": self.contrast_weight,
            "min_positive_grade": self.min_positive_grade,
            "gather_across_devices": self.gather_across_devices,
            "bucket_rows": self.bucket_rows,
            "prior": None if self.prior is None else getattr(self.prior, "weight", type(self.prior).__name__),
            "prior_share": self.prior_share,
        }

    @property
    def citation(self) -> str:
        return FLIPKART_CITATION


class ScoreRankingLoss(GradedContrastiveLoss):
    """A stage-2 loss whose ranking term works on the raw cosine gaps within each query's group at
    its own temperature ``tau_r`` (Bradley-Terry, ListMLE): the ablation baselines of ROAR."""

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

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "tau_r": self.tau_r}


def group_scores(scores: Tensor, group_index: Tensor) -> Tensor:
    """(B, G) cosine of each query with its own group members (padding slots read column 0 and must
    be ignored by the caller via the grades)."""
    return scores.gather(1, group_index.clamp(min=0))
