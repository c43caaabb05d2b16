"""The delta method, Welch test, SRM, MDE and the interleaving preference test against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from shopsearch.experiments.stats import (
    compare_ratios,
    linearize,
    mde,
    preference_test,
    ratio_estimate,
    srm_test,
    units_for_mde,
)


def clustered(n_units: int, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit (searches with a click, searches) with a unit-level propensity: correlated searches."""
    searches = 1 + rng.poisson(5.0, n_units)
    p = np.clip(rng.beta(1, 1, n_units) * 2 * rate, 0, 1)
    return rng.binomial(searches, p), searches


def test_linearisation_gives_the_delta_method_variance():
    rng = np.random.default_rng(0)
    x, n = clustered(500, 0.4, rng)
    y = linearize(x, n)
    r = x.sum() / n.sum()
    assert y.mean() == pytest.approx(r, abs=1e-12)
    mu_x, mu_n = x.mean(), n.mean()
    cov = np.cov(x, n, ddof=1)
    delta = (cov[0, 0] / mu_n**2 - 2 * mu_x * cov[0, 1] / mu_n**3 + mu_x**2 * cov[1, 1] / mu_n**4) / len(x)
    assert ratio_estimate(x, n).se ** 2 == pytest.approx(delta, rel=1e-9)


def test_delta_se_matches_the_unit_bootstrap_and_exceeds_the_naive_binomial_se():
    rng = np.random.default_rng(1)
    x, n = clustered(2000, 0.4, rng)
    est = ratio_estimate(x, n)
    idx = rng.integers(0, len(x), size=(2000, len(x)))
    boot = x[idx].sum(1) / n[idx].sum(1)
    assert est.se == pytest.approx(boot.std(ddof=1), rel=0.1)
    naive = math.sqrt(est.value * (1 - est.value) / n.sum())
    assert est.se > 1.25 * naive  # searches of one unit are correlated: the binomial SE is too small


def test_compare_ratios_is_welch_on_linearised_values():
    rng = np.random.default_rng(2)
    (xt, nt), (xc, nc) = clustered(800, 0.42, rng), clustered(900, 0.4, rng)
    c = compare_ratios(xt, nt, xc, nc)
    ref = stats.ttest_ind(linearize(xt, nt), linearize(xc, nc), equal_var=False)
    assert c["p_value"] == pytest.approx(ref.pvalue) and c["df"] == pytest.approx(ref.df)
    rt, rc = xt.sum() / nt.sum(), xc.sum() / nc.sum()
    assert c["diff"] == pytest.approx(rt - rc) and c["lift"] == pytest.approx(rt / rc - 1)
    lo, hi = c["lift_ci"]
    assert lo < c["lift"] < hi
    se = math.sqrt(c["se"] ** 2 + c["control_se"] ** 2)
    assert c["mde_abs"] == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se)
    assert c["mde_rel"] == pytest.approx(c["mde_abs"] / rc)


def test_degenerate_arms():
    zeros = np.zeros(10)
    ones = np.ones(10)
    assert compare_ratios(zeros, ones, zeros, ones)["p_value"] == 1.0
    assert math.isnan(compare_ratios(ones[:1], ones[:1], ones, ones)["p_value"])


def test_mde_and_traffic_needed():
    assert mde(0.01) == pytest.approx(0.01 * (1.959964 + 0.841621), rel=1e-5)
    assert units_for_mde(10000, 0.06, 0.03) == 40000 and units_for_mde(100, math.nan, 0.03) is None


def test_sample_ratio_mismatch():
    split = {"a": 0.5, "b": 0.5}
    assert not srm_test({"a": 5030, "b": 4970}, split)["mismatch"]
    bad = srm_test({"a": 52000, "b": 48000}, split)
    assert bad["mismatch"] and bad["p_value"] < 1e-10
    assert srm_test({"a": 10, "b": 0, "c": 3}, {"a": 0.5, "b": 0.5, "c": 0.0})["p_value"] == 0.0
    uneven = srm_test({"a": 2000, "b": 8000}, {"a": 0.2, "b": 0.8})
    assert not uneven["mismatch"] and uneven["expected"] == {"a": 2000.0, "b": 8000.0}


def test_preference_test():
    a = np.array([2, 0, 1, 1, 0, 3, 0])
    b = np.array([0, 1, 1, 0, 0, 1, 2])
    p = preference_test(a, b, units=np.array(["u1", "u1", "u2", "u2", "u3", "u3", "u4"]))
    assert (p.wins_a, p.wins_b, p.ties, p.no_clicks) == (3, 2, 1, 1)
    assert p.p_value == pytest.approx(stats.binomtest(3, 5, 0.5).pvalue)
    assert p.delta_ab == pytest.approx((3 + 0.5) / 6 - 0.5)
    assert (p.unit_wins_a, p.unit_wins_b) == (2, 1)  # u1 0, u2 +1, u3 +1 ... u4 -1
    assert p.win_share_ci[0] < p.win_share_a < p.win_share_ci[1]
    none = preference_test(np.zeros(4, int), np.zeros(4, int))
    assert none.p_value == 1.0 and math.isnan(none.win_share_a)
