"""Paired significance tests over queries: sign-flip randomisation, bootstrap CIs, Holm correction.

All resampling is vectorised in chunks (at most ~4M cells at a time), seeded, and deterministic.
Per-query metrics are paired by query: NaN in either system drops that query from the pair (binary
metrics are NaN on the same queries for every system, so nothing real is lost).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import norm

_CELLS = 4_000_000


def _paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired tests need two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep] - b[keep]


def _chunks(n_resamples: int, n: int):
    step = max(1, _CELLS // max(n, 1))
    for start in range(0, n_resamples, step):
        yield min(step, n_resamples - start)


def paired_randomization_test(a: np.ndarray, b: np.ndarray, n_resamples: int = 10000, seed: int = 0) -> float:
    """Two-sided paired randomisation (sign-flip) test of mean(a - b) = 0.

    Under the null the two systems' labels are exchangeable within each query, so each per-query
    difference keeps or flips its sign with probability 1/2. p = (1 + #{|mean(flipped)| >= |mean(d)|})
    / (1 + n_resamples), never 0. Returns NaN when no query has both values; 1.0 when every difference is 0.
    """
    d = _paired(a, b)
    n = d.size
    if n == 0:
        return float("nan")
    observed = abs(d.mean())
    if observed == 0.0:
        return 1.0
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    rng = np.random.default_rng(seed)
    hits = 0
    for size in _chunks(n_resamples, n):
        signs = rng.integers(0, 2, size=(size, n), dtype=np.int8) * 2 - 1
        stats = np.abs(signs @ d) / n
        hits += int(np.count_nonzero(stats >= observed - tol))
    return (hits + 1) / (n_resamples + 1)


def bootstrap_indices(n: int, n_resamples: int, seed: int):
    """Yield (size, n) arrays of query indices resampled with replacement, in chunks."""
    rng = np.random.default_rng(seed)
    for size in _chunks(n_resamples, n):
        yield rng.integers(0, n, size=(size, n), dtype=np.int32)


def paired_bootstrap_ci(
    a: np.ndarray, b: np.ndarray, n_resamples: int = 10000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a - b over queries and its percentile bootstrap CI (queries resampled with replacement)."""
    d = _paired(a, b)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = bootstrap_mean_ci(d, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return float(d.mean()), lo, hi


def bootstrap_mean_ci(
    values: np.ndarray, n_resamples: int = 10000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (NaN dropped); (nan, nan) when empty."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    means = np.concatenate([v[idx].mean(axis=1) for idx in bootstrap_indices(v.size, n_resamples, seed)])
    return percentile_ci(means, confidence)


def bootstrap_statistic(
    stat: Callable[[np.ndarray], np.ndarray], n: int, n_resamples: int, seed: int
) -> np.ndarray:
    """Bootstrap replicates of a query-level statistic given as ``stat(weights) -> (B,)``.

    ``weights`` has shape (B, n): how many times each query is drawn in each replicate. Used for the
    pooled AUC, which is not a mean over queries.
    """
    out = []
    for idx in bootstrap_indices(n, n_resamples, seed):
        rows = idx.shape[0]
        flat = (idx + (np.arange(rows) * n)[:, None]).ravel()
        w = np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)
        out.append(np.asarray(stat(w), dtype=np.float64))
    return np.concatenate(out) if out else np.zeros(0)


def percentile_ci(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    r = replicates[~np.isnan(replicates)]
    if r.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(r, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_normal_p_value(observed: float, replicates: np.ndarray) -> float:
    """Two-sided p for 'difference = 0' from the bootstrap standard error: 2 * (1 - Phi(|obs| / se)).

    Used where sign flips are not defined (the pooled AUC mixes candidates across queries, and two
    systems' score scales cannot be swapped). No resolution floor, unlike a count over replicates.
    """
    r = replicates[~np.isnan(replicates)]
    if r.size < 2 or np.isnan(observed):
        return float("nan")
    se = float(r.std(ddof=1))
    if se == 0.0:
        return 1.0 if observed == 0.0 else 0.0
    return float(2.0 * norm.sf(abs(observed) / se))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, made monotone, capped at 1); NaN stays NaN and
    does not count towards the number of tests."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion, ``k`` successes in ``n`` trials (None when n = 0)."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)
