"""Paired tests hold their size on A/A pairs, find a planted difference, and Holm matches a hand example."""

from __future__ import annotations

import numpy as np
import pytest

from shopsearch.eval.significance import (
    bootstrap_mean_ci,
    bootstrap_normal_p_value,
    holm,
    paired_bootstrap_ci,
    paired_randomization_test,
)

N_PAIRS = 400
N_QUERIES = 120
ALPHA = 0.05


def _null_pair(rng: np.random.Generator, effect: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two systems' per-query scores in [0, 1] on the same queries: a shared query difficulty plus
    system noise (strongly paired, skewed, with ties at 0 and 1 like NDCG)."""
    difficulty = rng.beta(2, 3, size=N_QUERIES)
    a = np.clip(difficulty + rng.normal(0, 0.15, N_QUERIES), 0, 1)
    b = np.clip(difficulty + rng.normal(0, 0.15, N_QUERIES) + effect, 0, 1)
    return a, b


def test_randomisation_false_positive_rate_on_null_pairs():
    rng = np.random.default_rng(2024)
    p = np.array([paired_randomization_test(*_null_pair(rng), n_resamples=1000, seed=i) for i in range(N_PAIRS)])
    fpr = float((p < ALPHA).mean())
    assert 0.02 <= fpr <= 0.08, fpr
    assert p.min() >= 1 / 1001 and p.max() <= 1.0


def test_randomisation_finds_planted_difference():
    rng = np.random.default_rng(7)
    p = np.array([paired_randomization_test(*_null_pair(rng, effect=0.08), n_resamples=1000, seed=i)
                  for i in range(200)])
    power = float((p < ALPHA).mean())
    assert power > 0.9, power


def test_bootstrap_ci_covers_zero_under_null_and_excludes_it_with_effect():
    rng = np.random.default_rng(11)
    covered = []
    for i in range(N_PAIRS):
        mean, lo, hi = paired_bootstrap_ci(*_null_pair(rng), n_resamples=1000, seed=i)
        assert lo <= mean <= hi
        covered.append(lo <= 0.0 <= hi)
    coverage = float(np.mean(covered))
    assert 0.91 <= coverage <= 0.98, coverage  # nominal 0.95; percentile bootstrap runs slightly narrow
    mean, lo, hi = paired_bootstrap_ci(*_null_pair(rng, effect=0.1), n_resamples=1000, seed=0)
    assert hi < 0  # a - b with b better: the whole CI below 0


def test_randomisation_edge_cases():
    a = np.array([0.5, 0.2, np.nan, 0.9])
    assert paired_randomization_test(a, a) == 1.0  # no difference at all
    assert np.isnan(paired_randomization_test(np.array([np.nan]), np.array([1.0])))
    # NaN in either system drops the query from the pair
    assert paired_bootstrap_ci(np.array([1.0, np.nan]), np.array([0.0, 0.0]), n_resamples=50)[0] == 1.0
    # deterministic under a seed; sign flips of an all-positive difference: p = (1 + 2^-n*B) / (B+1)-ish
    d = np.ones(12)
    assert paired_randomization_test(d, 0 * d, n_resamples=2000, seed=3) == paired_randomization_test(
        d, 0 * d, n_resamples=2000, seed=3)
    assert paired_randomization_test(d, 0 * d, n_resamples=2000, seed=3) < 0.01
    with pytest.raises(ValueError):
        paired_randomization_test(np.ones(3), np.ones(4))


def test_bootstrap_mean_ci_and_p_value():
    lo, hi = bootstrap_mean_ci(np.array([1.0, 2.0, 3.0, np.nan]), n_resamples=2000)
    assert 1.0 <= lo < 2.0 < hi <= 3.0
    assert np.isnan(bootstrap_mean_ci(np.array([np.nan]))[0])
    reps = np.random.default_rng(0).normal(0.3, 0.1, 5000)
    assert bootstrap_normal_p_value(0.3, reps) == pytest.approx(0.0027, abs=0.0005)  # 3 bootstrap se
    assert bootstrap_normal_p_value(0.0, reps) == 1.0
    assert bootstrap_normal_p_value(0.196, reps) == pytest.approx(0.05, abs=0.005)


def test_holm_hand_example():
    # sorted p: 0.01 (x4) = 0.04, 0.02 (x3) = 0.06, 0.03 (x2) = 0.06, 0.04 (x1) = 0.04 -> monotone 0.06
    p = [0.03, 0.01, 0.04, 0.02]
    np.testing.assert_allclose(holm(p), [0.06, 0.04, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.4]), [0.8, 0.8])
    np.testing.assert_allclose(holm([0.9, 0.8]), [1.0, 1.0])  # capped at 1
    out = holm([0.01, np.nan, 0.04])  # NaN stays NaN and is not counted
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])
    assert np.isnan(out[1])
    assert holm([]).size == 0
