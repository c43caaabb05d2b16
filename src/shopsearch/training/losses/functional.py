"""Pure tensor losses for dual-encoder training (no model, no sentence-transformers import).

Every function works on cosine similarities, i.e. on L2-normalised embeddings: the ``*_scores``
variants take a precomputed score matrix ``S = Q @ C.T`` of shape ``(B, M)`` (B queries, M candidate
products), so that a composite loss computes the one matmul once and reuses it for every term; the
embedding-level wrappers (``masked_infonce``, ``roar_alignment``, ``infonce``) compute ``S`` first.

Conventions shared by all functions:

* ``positive_index`` (B,) long: the column of each query's positive in ``S``; ``-1`` means "this
  query has no positive" and the row is left out of the mean.
* Graded groups: ``group_index`` (B, G) long indexes columns of ``S`` (``-1`` = padding) and
  ``grades`` (B, G) holds each group member's grade (higher is better; any negative value =
  padding). ``scores_groups`` (B, G) is ``S`` gathered at ``group_index`` (padding entries ignored).
* Scores in float16/bfloat16 (autocast) are upcast to float32 before any exp/log.
* Each loss is a mean over the terms that exist; with no term at all it returns ``0`` that is still
  connected to the graph (so ``backward()`` works and gives zero gradients).
* No Python loop over queries: everything is batched tensor ops, meant for B up to ~8k.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "bradley_terry",
    "consecutive_grade_pairs",
    "infonce",
    "infonce_scores",
    "listmle",
    "log1mexp",
    "margin_mask",
    "masked_infonce",
    "masked_infonce_scores",
    "roar_alignment",
    "roar_alignment_scores",
]

_LN2 = math.log(2.0)


def _upcast(x: Tensor) -> Tensor:
    # exp/log at temperature 0.01 on half precision would lose the ranking signal; the (B, M) upcast
    # is cheap next to the encoder.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``values`` where ``valid``; 0 (attached to the graph) when nothing is valid.

    ``torch.where`` rather than multiplication so that a non-finite value in an invalid slot can
    never leak into the result or its gradient.
    """
    total = torch.where(valid, values, torch.zeros_like(values)).sum()
    return total / valid.sum().clamp(min=1).to(total.dtype)


def log1mexp(x: Tensor, eps: float | None = None) -> Tensor:
    """Numerically stable ``log(1 - exp(x))`` for ``x <= 0`` (Mächler 2012, "Accurately computing
    log(1 - exp(-|a|))", CRAN Rmpfr vignette).

    Near 0, ``1 - exp(x)`` cancels catastrophically, so ``log(-expm1(x))`` is used for
    ``x > -ln 2``; far from 0, ``expm1`` loses nothing but ``log1p(-exp(x))`` is the accurate form.
    Both branches are evaluated on safe inputs so the branch *not* taken never produces an
    inf/NaN that ``torch.where``'s backward would turn into a NaN gradient.

    Clamp: ``x`` is clamped to ``<= -eps`` (default ``torch.finfo(x.dtype).eps``: 1.2e-7 in
    float32, 2.2e-16 in float64). ``x == 0`` happens in practice: a log-softmax at tau 0.01 rounds
    the log-probability of a dominant item to exactly 0 in float32, and ``log(1 - 1) = -inf`` with an
    infinite gradient would poison the step. With the clamp, log(1 - P) >= log(eps) (the log odds of
    one item are capped at about 15.9 in float32, 36 in float64) and the gradient is zero inside the
    clamped sliver, where the value carries no information anyway.
    """
    if eps is None:
        eps = torch.finfo(x.dtype).eps if x.is_floating_point() else 1e-7
    x = x.clamp(max=-eps)
    near_zero = x > -_LN2
    safe_near = torch.where(near_zero, x, torch.full_like(x, -1.0))  # for the expm1 branch
    safe_far = torch.where(near_zero, torch.full_like(x, -1.0), x)  # for the log1p branch
    return torch.where(near_zero, torch.log(-torch.expm1(safe_near)), torch.log1p(-torch.exp(safe_far)))


def margin_mask(
    scores: Tensor, pos_scores: Tensor, delta: float | None, keep: Tensor | None = None
) -> Tensor:
    """False-negative margin mask ``m_ij = 1[s_ij <= s_ii + delta]`` (Flipkart 2026, arXiv 2606.01504;
    positive-aware masking after NV-Retriever, Moreira et al. 2024).

    A candidate scoring more than ``delta`` above the labelled positive is taken for a near-duplicate
    or an acceptable substitute and dropped. ``keep`` (B,) long: a column per row that is kept
    whatever its score (the positive; ``-1`` = none). ``delta=None`` keeps everything. Returns a
    (B, M) bool tensor; no gradient flows through a mask.
    """
    with torch.no_grad():
        if delta is None:
            mask = torch.ones_like(scores, dtype=torch.bool)
        else:
            mask = scores <= pos_scores.unsqueeze(1) + delta
        if keep is not None:
            rows = torch.arange(scores.size(0), device=scores.device)
            has = keep >= 0
            mask[rows[has], keep[has]] = True
    return mask


def _drop_columns(keep: Tensor, exclude: Tensor) -> Tensor:
    """Clear ``exclude`` from ``keep`` (B, M); ``exclude`` is a (B, M) bool mask or (B, K) long column
    indices with -1 padding (the sparse form avoids a second dense (B, M) mask at large batch)."""
    if exclude.dtype == torch.bool:
        return keep & ~exclude
    rows, cols = keep.shape
    # Padding (-1) is routed to a dummy column M that is cut off afterwards, so every write is a
    # True and duplicate indices cannot race.
    idx = torch.where(exclude >= 0, exclude, torch.full_like(exclude, cols))
    drop = torch.zeros(rows, cols + 1, dtype=torch.bool, device=keep.device)
    drop.scatter_(1, idx, True)
    return keep & ~drop[:, :cols]


def masked_infonce_scores(
    scores: Tensor,
    positive_index: Tensor,
    tau: float = 0.02,
    delta: float | None = 0.1,
    exclude: Tensor | None = None,
) -> Tensor:
    """Masked InfoNCE on a score matrix (Flipkart 2026, arXiv 2606.01504, stage 1)::

        L = -1/N sum_i log( exp(s_ii/tau) / (exp(s_ii/tau) + sum_{j != i} m_ij exp(s_ij/tau)) )
        m_ij = 1[s_ij <= s_ii + delta],  the positive always kept

    ``s_ii`` is ``scores[i, positive_index[i]]``. ``exclude`` drops further columns from a row's
    denominator (e.g. the other positives of the same query) as a (B, M) bool mask or (B, K) long
    indices (-1 padded); it never drops the positive. Computed as ``logsumexp`` over the masked logits
    (masked -> -inf), never ``exp`` of raw logits: at tau 0.02 a logit reaches 50 and a sum of
    exponentials would overflow float16 and lose precision in float32. A row whose candidates are all
    masked keeps the positive alone and contributes exactly 0. Rows with ``positive_index == -1`` are
    left out of the mean N.
    """
    scores = _upcast(scores)
    rows = torch.arange(scores.size(0), device=scores.device)
    valid = positive_index >= 0
    # Invalid rows borrow column 0 so that every row stays finite; they are excluded from the mean.
    pidx = positive_index.clamp(min=0)
    pos = scores[rows, pidx]
    keep = margin_mask(scores, pos.detach(), delta)
    if exclude is not None:
        keep = _drop_columns(keep, exclude)
    keep[rows, pidx] = True
    # Multiplying by 1/tau (as MultipleNegativesRankingLoss does with its scale) is cheaper than a
    # (B, M) division. In place on the fresh product (a scalar factor saves nothing for backward): at
    # B = 8k the score matrix is GBs, so the mask costs no extra (B, M) float buffer.
    logits = (scores * (1.0 / tau)).masked_fill_(keep.logical_not_(), float("-inf"))
    return _masked_mean(torch.logsumexp(logits, dim=1) - pos * (1.0 / tau), valid)


def masked_infonce(
    q: Tensor,
    candidates: Tensor,
    positive_index: Tensor,
    tau: float = 0.02,
    delta: float | None = 0.1,
    exclude: Tensor | None = None,
) -> Tensor:
    """:func:`masked_infonce_scores` on L2-normalised embeddings: ``q`` (B, d), ``candidates`` (M, d)
    = every in-batch product (positives first, then the flattened hard negatives)."""
    return masked_infonce_scores(q @ candidates.T, positive_index, tau, delta, exclude)


def infonce_scores(scores: Tensor, positive_index: Tensor, tau: float = 0.05) -> Tensor:
    """Plain InfoNCE (van den Oord et al. 2018, arXiv 1807.03748) on a score matrix:
    ``mean_i -log softmax_j(s_ij / tau)[positive_index[i]]`` — the cross-entropy that
    sentence-transformers' MultipleNegativesRankingLoss computes with ``scale = 1/tau``."""
    return F.cross_entropy(_upcast(scores) * (1.0 / tau), positive_index)


def infonce(q: Tensor, candidates: Tensor, positive_index: Tensor, tau: float = 0.05) -> Tensor:
    """:func:`infonce_scores` on L2-normalised embeddings."""
    return infonce_scores(q @ candidates.T, positive_index, tau)


def consecutive_grade_pairs(grades: Tensor, present: Tensor | None = None) -> Tensor:
    """(B, G, G) bool: ``pairs[b, a, c]`` iff items a and c of query b are both present and grade[c] is
    the next lower PRESENT grade below grade[a].

    Every product of a grade is paired with every product of the next lower present grade (groups of
    any size; a missing grade is skipped, e.g. Exact is compared with Complement when no Substitute
    is present). Tied items are never compared with each other, and a query with one grade only has
    no pair. ``present`` defaults to ``grades >= 0``.
    """
    if present is None:
        present = grades >= 0
    g = grades.to(torch.float64 if grades.dtype == torch.float64 else torch.float32)
    hi = g.unsqueeze(2)  # item a
    lo = g.unsqueeze(1)  # item c
    lower = present.unsqueeze(1) & (lo < hi)  # c is present and strictly below a
    next_lower = torch.where(lower, lo.expand_as(lower), torch.full_like(lo, float("-inf")).expand_as(lower))
    next_lower = next_lower.amax(dim=2, keepdim=True)  # -inf where a has nothing below it
    return present.unsqueeze(2) & lower & (lo == next_lower)


def _pairwise_mean_nll(margins: Tensor, pairs: Tensor) -> Tensor:
    """``-1/C sum_{pairs} log sigmoid(margin)`` with ``C = pairs.sum()``; 0 (with grad) when C == 0."""
    return _masked_mean(-F.logsigmoid(margins), pairs)


def roar_alignment_scores(scores: Tensor, group_index: Tensor, grades: Tensor, tau_a: float = 0.01) -> Tensor:
    """ROAR alignment term (Relative Odds Alignment for Retrieval; Flipkart 2026, arXiv 2606.01504)::

        P(p_j | q_i)   = softmax_j(S_i / tau_a)                 over ALL M candidates of the batch
        logodds(p|q_i) = log P - log(1 - P)
        Delta          = logodds(higher-grade product) - logodds(product of the next lower present grade)
        L_align        = -1/C sum log sigmoid(Delta)             C = comparisons in the batch

    The odds ratio rather than a probability ratio is the ORPO idea (Hong et al. 2024, arXiv
    2403.07691): once the higher item holds most of the softmax mass its probability saturates but
    its odds keep growing, so the margin keeps widening. Everything stays in log space — ``log P``
    from ``log_softmax`` and ``log(1 - P)`` from :func:`log1mexp` — because at tau_a = 0.01 the
    logits span 200 nats and ``P/(1-P)`` would be 0/0 or inf in float32. Only the (B, G) group
    entries go through ``log1mexp``, not the whole (B, M) matrix.
    """
    scores = _upcast(scores)
    log_p = F.log_softmax(scores * (1.0 / tau_a), dim=1)
    present = (grades >= 0) & (group_index >= 0)
    log_p = log_p.gather(1, group_index.clamp(min=0))
    log_odds = log_p - log1mexp(log_p)
    log_odds = torch.where(present, log_odds, torch.zeros_like(log_odds))
    pairs = consecutive_grade_pairs(grades, present)
    return _pairwise_mean_nll(log_odds.unsqueeze(2) - log_odds.unsqueeze(1), pairs)


def roar_alignment(
    q: Tensor, candidates: Tensor, group_index: Tensor, grades: Tensor, tau_a: float = 0.01
) -> Tensor:
    """:func:`roar_alignment_scores` on L2-normalised embeddings."""
    return roar_alignment_scores(q @ candidates.T, group_index, grades, tau_a)


def bradley_terry(scores_groups: Tensor, grades: Tensor, tau: float = 0.05) -> Tensor:
    """Pairwise Bradley-Terry / RankNet loss (Burges et al. 2005, ICML) on cosine gaps::

        L_BT = -1/C sum log sigmoid((s_a - s_b) / tau)

    over the same pairs as ROAR (:func:`consecutive_grade_pairs`): a = any product of a grade,
    b = any product of the next lower present grade. The ablation baseline for ROAR: the same
    pairing on raw similarity gaps instead of softmax log odds.
    """
    present = grades >= 0
    s = torch.where(present, _upcast(scores_groups) / tau, torch.zeros_like(_upcast(scores_groups)))
    pairs = consecutive_grade_pairs(grades, present)
    return _pairwise_mean_nll(s.unsqueeze(2) - s.unsqueeze(1), pairs)


def listmle(scores_groups: Tensor, grades: Tensor, tau: float = 0.05) -> Tensor:
    """ListMLE: Plackett-Luce negative log-likelihood of the grade order (Xia et al. 2008, ICML)::

        L_i = sum_k [ logsumexp_{l >= k} (s_pi(l) / tau) - s_pi(k) / tau ]

    where pi sorts query i's present items by descending grade. Ties are broken by a fixed rule:
    stable by position (the item in the earlier column ranks first). Padding is excluded. The loss is
    the mean of L_i over queries with at least two DISTINCT present grades: a query with one grade
    only has no order to learn (the same queries ROAR and Bradley-Terry skip), and its tie order
    would be arbitrary. 0 (with grad) when no query qualifies.
    """
    present = grades >= 0
    s = _upcast(scores_groups) / tau
    s = torch.where(present, s, torch.zeros_like(s))
    g = grades.to(s.dtype)
    key = torch.where(present, -g, torch.full_like(g, float("inf")))  # padding sorts last
    order = torch.sort(key, dim=1, stable=True).indices
    s_sorted = s.gather(1, order)
    present_sorted = present.gather(1, order)
    # (B, G, G) "l at or after k" mask instead of logcumsumexp: G is small, and this keeps every
    # logsumexp row non-empty (item k itself) so no -inf reaches a backward pass.
    n = s.size(1)
    idx = torch.arange(n, device=s.device)
    tail = (idx.unsqueeze(0) >= idx.unsqueeze(1)).unsqueeze(0) & present_sorted.unsqueeze(1)
    tail = tail | torch.eye(n, dtype=torch.bool, device=s.device).unsqueeze(0)
    expanded = s_sorted.unsqueeze(1).expand(-1, n, -1)
    log_z = torch.logsumexp(expanded.masked_fill(~tail, float("-inf")), dim=2)
    per_item = torch.where(present_sorted, log_z - s_sorted, torch.zeros_like(s_sorted))
    multi_grade = consecutive_grade_pairs(grades, present).flatten(1).any(dim=1)
    return _masked_mean(per_item.sum(dim=1), multi_grade)
