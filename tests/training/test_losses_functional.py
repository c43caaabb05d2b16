"""The pure tensor losses against direct float64 loop references (values and gradients) and on the
edge cases: one grade only, fully masked rows, ties, padding, extreme similarities."""

from __future__ import annotations

import itertools
import math

import mpmath
import pytest
import torch
import torch.nn.functional as F

from shopsearch.training.losses import functional as LF

D64 = torch.float64


def _unit(*shape: int, dtype: torch.dtype = D64) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, dtype=dtype), dim=-1)


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


# ---------------------------------------------------------------- references (loops, float64)


def ref_masked_infonce(q, c, pos_idx, tau, delta, exclude_sets=None):
    """Direct formula: -log(exp(s_ii/tau) / (exp(s_ii/tau) + sum_{j!=i} m_ij exp(s_ij/tau)))."""
    terms = []
    for i in range(q.shape[0]):
        p = int(pos_idx[i])
        if p < 0:
            continue
        s = [torch.dot(q[i], c[j]) for j in range(c.shape[0])]
        denom = torch.exp(s[p] / tau)
        for j in range(c.shape[0]):
            if j == p or (exclude_sets and j in exclude_sets[i]):
                continue
            if delta is None or s[j] <= s[p] + delta:
                denom = denom + torch.exp(s[j] / tau)
        terms.append(-torch.log(torch.exp(s[p] / tau) / denom))
    return torch.stack(terms).mean()


def _groups(group_index, grades):
    """Per query: {grade: [slot, ...]} over present slots."""
    out = []
    for i in range(grades.shape[0]):
        by_grade: dict[float, list[int]] = {}
        for g in range(grades.shape[1]):
            if grades[i, g] >= 0 and int(group_index[i, g]) >= 0:
                by_grade.setdefault(float(grades[i, g]), []).append(g)
        out.append(by_grade)
    return out


def _consecutive(by_grade):
    levels = sorted(by_grade, reverse=True)
    for hi, lo in itertools.pairwise(levels):
        for a in by_grade[hi]:
            for b in by_grade[lo]:
                yield a, b


def ref_roar(scores, group_index, grades, tau_a):
    """log odds_j = x_j - log sum_{k != j} exp(x_k): exact, no 1 - P cancellation."""
    terms = []
    for i, by_grade in enumerate(_groups(group_index, grades)):
        x = scores[i] / tau_a

        def log_odds(col, x=x):
            others = torch.cat([x[:col], x[col + 1 :]])
            return x[col] - torch.logsumexp(others, 0)

        for a, b in _consecutive(by_grade):
            delta = log_odds(int(group_index[i, a])) - log_odds(int(group_index[i, b]))
            terms.append(torch.log1p(torch.exp(-delta)))
    return torch.stack(terms).mean() if terms else scores.sum() * 0


def ref_bradley_terry(s, grades, tau):
    terms = []
    gi = torch.zeros_like(grades, dtype=torch.long)
    for i, by_grade in enumerate(_groups(gi, grades)):
        for a, b in _consecutive(by_grade):
            terms.append(torch.log1p(torch.exp(-(s[i, a] - s[i, b]) / tau)))
    return torch.stack(terms).mean() if terms else s.sum() * 0


def ref_listmle(s, grades, tau):
    terms = []
    for i in range(s.shape[0]):
        items = [(g, int(grades[i, g])) for g in range(s.shape[1]) if grades[i, g] >= 0]
        if len({gr for _, gr in items}) < 2:
            continue
        order = [g for g, _ in sorted(items, key=lambda t: (-t[1], t[0]))]
        nll = s.new_zeros(())
        for k in range(len(order)):
            rest = torch.stack([s[i, order[m]] / tau for m in range(k, len(order))])
            nll = nll + torch.logsumexp(rest, 0) - s[i, order[k]] / tau
        terms.append(nll)
    return torch.stack(terms).mean()


def _random_groups(b=6, g=5, seed=0):
    """Variable group sizes with padding, repeated and missing grades; group members are distinct
    candidate columns shuffled over [0, M)."""
    gen = torch.Generator().manual_seed(seed)
    grades = torch.randint(0, 4, (b, g), generator=gen)
    sizes = torch.randint(1, g + 1, (b,), generator=gen)
    grades[torch.arange(g).unsqueeze(0) >= sizes.unsqueeze(1)] = -1
    grades[0] = torch.tensor([2, 2, 2, -1, -1])[:g]  # one grade only
    grades[1] = torch.tensor([3, 0, 3, 1, 0])[:g]  # ties at two levels, grade 2 missing
    present = grades >= 0
    m = int(present.sum()) + 3  # three extra candidates that belong to no group
    cols = torch.randperm(m, generator=gen)[: int(present.sum())]
    group_index = torch.full((b, g), -1, dtype=torch.long)
    group_index[present] = cols
    return group_index, grades, m


# ---------------------------------------------------------------- log1mexp


def test_log1mexp_matches_double_precision_reference():
    xs = [-80.0, -30.0, -5.0, -1.0, -math.log(2) - 1e-9, -math.log(2) + 1e-9, -0.3, -1e-3, -1e-8, -1e-12]
    x = torch.tensor(xs, dtype=D64)
    mpmath.mp.dps = 50
    expected = torch.tensor([float(mpmath.log(1 - mpmath.exp(v))) for v in xs], dtype=D64)
    torch.testing.assert_close(LF.log1mexp(x), expected, rtol=1e-12, atol=0)
    got32 = LF.log1mexp(x.float()[:-2])  # float32 eps clamp (1.2e-7) is above the last two
    torch.testing.assert_close(got32, expected[:-2].float(), rtol=1e-5, atol=0)


def test_log1mexp_clamps_zero_to_finite_value_and_gradient():
    for dtype in (torch.float32, D64):
        x = torch.tensor([0.0, -0.0, -1e-30, -2.0], dtype=dtype, requires_grad=True)
        y = LF.log1mexp(x)
        y.sum().backward()
        assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
        assert y[0].item() == pytest.approx(math.log(torch.finfo(dtype).eps), rel=1e-6)


def test_log1mexp_gradcheck():
    x = torch.tensor([-5.0, -1.0, -0.7, -0.69, -0.2, -1e-3], dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(LF.log1mexp, (x,))


# ---------------------------------------------------------------- margin mask and masked InfoNCE


def test_margin_mask_semantics():
    scores = torch.tensor([[0.5, 0.61, 0.6, 0.59, -1.0], [0.9, 0.2, 0.3, 0.1, 0.0]], dtype=D64)
    pos = torch.tensor([0.5, 0.2], dtype=D64)
    mask = LF.margin_mask(scores, pos, 0.1, keep=torch.tensor([0, 1]))
    assert mask[0].tolist() == [True, False, True, True, True]  # 0.61 > 0.5 + 0.1 dropped, 0.6 kept
    assert mask[1].tolist() == [False, True, True, True, True]
    # the positive survives even a negative margin that would drop it; -1 = no forced column
    mask = LF.margin_mask(scores, pos, -0.5, keep=torch.tensor([0, -1]))
    assert mask[0, 0] and not mask[1].any()
    assert LF.margin_mask(scores, pos, None).all()


@pytest.mark.parametrize("tau", [0.02, 0.1])
def test_masked_infonce_matches_reference(tau):
    torch.manual_seed(1)
    b, n_neg, d = 7, 2, 16
    q, c = _unit(b, d), _unit(b * (1 + n_neg), d)
    c[b + 1] = F.normalize(q[1] + 0.05 * torch.randn(d, dtype=D64), dim=0)  # a near-duplicate -> masked
    pos_idx = torch.arange(b)
    pos_idx[3] = -1  # a query without a positive is left out
    exclude_sets = [set() for _ in range(b)]
    exclude_sets[2] = {9, 15}
    exclude_dense = torch.zeros(b, c.shape[0], dtype=torch.bool)
    exclude_dense[2, [9, 15]] = True
    exclude_idx = torch.full((b, 2), -1)
    exclude_idx[2] = torch.tensor([9, 15])
    sq = q @ c.T
    assert (sq[1] > sq[1, 1] + 0.1).any()  # the mask is exercised
    qr, cr = _leaf(q), _leaf(c)
    expected = ref_masked_infonce(qr, cr, pos_idx, tau, 0.1, exclude_sets)
    expected.backward()
    for exclude in (exclude_dense, exclude_idx):
        qa, ca = _leaf(q), _leaf(c)
        got = LF.masked_infonce(qa, ca, pos_idx, tau, 0.1, exclude=exclude)
        got.backward()
        torch.testing.assert_close(got, expected.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(qa.grad, qr.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(ca.grad, cr.grad, rtol=1e-9, atol=1e-12)


def test_masked_infonce_gradcheck():
    torch.manual_seed(2)
    q, c = _leaf(_unit(3, 4)), _leaf(_unit(6, 4))
    pos_idx = torch.tensor([0, 1, 2])
    assert torch.autograd.gradcheck(lambda a, b: LF.masked_infonce(a, b, pos_idx, 0.1, 0.1), (q, c))


def test_fully_masked_row_is_zero_and_finite():
    # every other candidate beats the positive by more than delta: the positive is alone
    scores = torch.tensor([[0.1, 0.9, 0.8, 0.95]], dtype=torch.float32, requires_grad=True)
    loss = LF.masked_infonce_scores(scores, torch.tensor([0]), tau=0.02, delta=0.1)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(scores.grad).all() and (scores.grad == 0).all()


def test_no_positive_at_all_gives_attached_zero():
    scores = torch.randn(3, 4, requires_grad=True)
    loss = LF.masked_infonce_scores(scores, torch.full((3,), -1), tau=0.02, delta=0.1)
    loss.backward()
    assert loss.item() == 0.0 and (scores.grad == 0).all()


def test_masked_infonce_without_mask_is_plain_infonce():
    torch.manual_seed(3)
    scores = torch.rand(5, 12, dtype=D64) * 2 - 1
    pos_idx = torch.arange(5)
    plain = LF.infonce_scores(scores, pos_idx, tau=0.05)
    torch.testing.assert_close(LF.masked_infonce_scores(scores, pos_idx, 0.05, delta=None), plain)
    torch.testing.assert_close(LF.masked_infonce_scores(scores, pos_idx, 0.05, delta=10.0), plain)
    expected = torch.stack([-torch.log_softmax(scores[i] / 0.05, 0)[i] for i in range(5)]).mean()
    torch.testing.assert_close(plain, expected)


# ---------------------------------------------------------------- ROAR


def test_consecutive_grade_pairs_ties_missing_grades_padding():
    grades = torch.tensor([[3, 3, 1, 0, -1, 1], [2, 2, 2, -1, -1, -1]])
    pairs = LF.consecutive_grade_pairs(grades)
    got = {tuple(p) for p in pairs[0].nonzero().tolist()}
    assert got == {(0, 2), (0, 5), (1, 2), (1, 5), (2, 3), (5, 3)}  # 3 -> 1 (2 missing) -> 0
    assert not pairs[1].any()  # one grade only: no comparison


@pytest.mark.parametrize(("tau_a", "scale"), [(0.05, 1.0), (0.01, 0.1)])
def test_roar_matches_reference(tau_a, scale):
    torch.manual_seed(4)
    group_index, grades, m = _random_groups()
    scores = (torch.rand(grades.shape[0], m, dtype=D64) * 2 - 1) * scale
    a, r = _leaf(scores), _leaf(scores)
    got = LF.roar_alignment_scores(a, group_index, grades, tau_a)
    expected = ref_roar(r, group_index, grades, tau_a)
    got.backward()
    expected.backward()
    torch.testing.assert_close(got, expected.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a.grad, r.grad, rtol=1e-8, atol=1e-12)


def test_roar_embedding_level_and_gradcheck():
    torch.manual_seed(5)
    group_index, grades, m = _random_groups(b=3, g=4, seed=5)
    q, c = _leaf(_unit(3, 4)), _leaf(_unit(m, 4))
    expected = ref_roar(q.detach() @ c.detach().T, group_index, grades, 0.05)
    torch.testing.assert_close(LF.roar_alignment(q, c, group_index, grades, 0.05), expected)
    assert torch.autograd.gradcheck(lambda a, b: LF.roar_alignment(a, b, group_index, grades, 0.1), (q, c))


def test_roar_one_grade_query_adds_no_comparison():
    torch.manual_seed(6)
    group_index, grades, m = _random_groups()
    scores = torch.rand(grades.shape[0], m, dtype=D64) * 0.4
    one_grade = (LF.consecutive_grade_pairs(grades).flatten(1).any(1) == 0).nonzero().flatten()
    assert 0 in one_grade.tolist()
    keep = torch.tensor([i for i in range(grades.shape[0]) if i not in one_grade.tolist()])
    full = LF.roar_alignment_scores(scores, group_index, grades, 0.01)
    rest = LF.roar_alignment_scores(scores[keep], group_index[keep], grades[keep], 0.01)
    torch.testing.assert_close(full, rest)


def test_roar_zero_comparisons_is_attached_zero():
    scores = torch.randn(2, 5, requires_grad=True)
    group_index = torch.tensor([[0, 1, -1], [2, -1, -1]])
    grades = torch.tensor([[1, 1, -1], [3, -1, -1]])
    loss = LF.roar_alignment_scores(scores, group_index, grades, 0.01)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert (scores.grad == 0).all()


def test_roar_pushes_the_higher_grade_up():
    torch.manual_seed(7)
    scores = (torch.rand(1, 6, dtype=D64) * 0.2).requires_grad_(True)
    group_index = torch.tensor([[0, 1, 2]])
    grades = torch.tensor([[3, 2, 0]])
    loss = LF.roar_alignment_scores(scores, group_index, grades, 0.01)
    loss.backward()
    assert scores.grad[0, 0] < 0 and scores.grad[0, 2] > 0  # descent raises Exact, lowers Irrelevant
    with torch.no_grad():
        stepped = scores - 0.01 * scores.grad
    assert LF.roar_alignment_scores(stepped, group_index, grades, 0.01) < loss


@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_extreme_similarities_are_finite(dtype):
    # cosines of exactly +-1, identical candidates, tau_a = 0.01 (logits span 200)
    scores = torch.tensor(
        [[1.0, -1.0, 1.0, -1.0, 0.999999], [-1.0, 1.0, -1.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0]],
        dtype=dtype,
    ).requires_grad_(True)
    group_index = torch.tensor([[0, 1, 4], [0, 1, 3], [2, 3, -1]])
    grades = torch.tensor([[3, 0, 2], [1, 3, 1], [2, 0, -1]])
    pos_idx = torch.tensor([0, 1, 2])
    s_groups = scores.gather(1, group_index.clamp(min=0))
    losses = [
        LF.roar_alignment_scores(scores, group_index, grades, 0.01),
        LF.masked_infonce_scores(scores, pos_idx, 0.02, 0.1),
        LF.masked_infonce_scores(scores, pos_idx, 0.02, None),
        LF.bradley_terry(s_groups, grades, 0.01),
        LF.listmle(s_groups, grades, 0.01),
    ]
    for loss in losses:
        (grad,) = torch.autograd.grad(loss, scores, retain_graph=True)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_half_precision_scores_are_upcast():
    scores = (torch.rand(3, 6) * 2 - 1).to(torch.bfloat16)
    group_index = torch.tensor([[0, 1, 2], [3, 4, -1], [5, 0, 1]])
    grades = torch.tensor([[2, 1, 0], [1, 0, -1], [3, 3, 0]])
    loss = LF.roar_alignment_scores(scores, group_index, grades, 0.01)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    expected = LF.roar_alignment_scores(scores.float(), group_index, grades, 0.01)
    torch.testing.assert_close(loss, expected)


# ---------------------------------------------------------------- Bradley-Terry and ListMLE


def _group_scores_with_nan_padding(seed):
    torch.manual_seed(seed)
    _, grades, _ = _random_groups(seed=seed)
    s = torch.rand(grades.shape, dtype=D64) * 2 - 1
    s[grades < 0] = float("nan")  # padding must never leak, not even as NaN
    return s, grades


def test_bradley_terry_matches_reference():
    s, grades = _group_scores_with_nan_padding(8)
    a, r = _leaf(s), _leaf(torch.nan_to_num(s))
    got, expected = LF.bradley_terry(a, grades, 0.05), ref_bradley_terry(r, grades, 0.05)
    got.backward()
    expected.backward()
    torch.testing.assert_close(got, expected.detach())
    torch.testing.assert_close(torch.nan_to_num(a.grad, nan=-1.0), r.grad.masked_fill(grades < 0, 0.0))


def test_listmle_matches_reference_with_ties_and_padding():
    s, grades = _group_scores_with_nan_padding(9)
    a, r = _leaf(s), _leaf(torch.nan_to_num(s))
    got, expected = LF.listmle(a, grades, 0.05), ref_listmle(r, grades, 0.05)
    got.backward()
    expected.backward()
    torch.testing.assert_close(got, expected.detach())
    torch.testing.assert_close(torch.nan_to_num(a.grad, nan=-1.0), r.grad.masked_fill(grades < 0, 0.0))


def test_listmle_and_bt_skip_single_grade_queries():
    s = torch.tensor([[0.3, 0.1, 0.2], [0.5, 0.4, 0.0]], dtype=D64, requires_grad=True)
    grades = torch.tensor([[2, 2, -1], [1, -1, -1]])
    for fn in (LF.listmle, LF.bradley_terry):
        loss = fn(s, grades, 0.05)
        assert loss.item() == 0.0
        (grad,) = torch.autograd.grad(loss, s)
        assert (grad == 0).all()


def test_listmle_gradcheck():
    grades = torch.tensor([[3, 1, 1, -1], [0, 2, 1, 2]])
    s = _leaf(torch.rand(2, 4, dtype=D64))
    assert torch.autograd.gradcheck(lambda x: LF.listmle(x, grades, 0.1), (s,))
