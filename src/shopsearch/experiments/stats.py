"""The statistics of online experiments on their own, on plain arrays (no events, no pandas).

**Ratio metrics at the randomisation unit.** Traffic is randomised by user (or session), but a rate
such as CTR is a ratio over searches, ``R = sum_u X_u / sum_u N_u`` (``X_u`` searches with a click and
``N_u`` searches of unit ``u``). Searches of one unit are correlated, so a binomial standard error
over searches is too small. The delta method (Deng, Knoblich & Lu, "Applying the Delta Method in
Metric Analytics", KDD 2018) gives the variance over *units*::

    Var(R) ~ 1/(n mu_N^2) * (s_X^2 - 2 R s_XN + R^2 s_N^2)

Equivalently, the linearised unit values ``Y_u = R + (X_u - R N_u) / mean(N)`` have mean ``R`` and
``var(Y)/n`` equal to that variance, so a Welch t-test on ``Y`` of two arms is the delta-method
test of the difference (Welch-Satterthwaite degrees of freedom). The relative lift
``L = R_t / R_c - 1`` gets its own delta-method variance (Deng et al. 2018, section 3.3)::

    Var(L) ~ Var(R_t) / R_c^2 + R_t^2 Var(R_c) / R_c^4      (independent arms)

**Minimum detectable effect** at two-sided level alpha and power ``1 - beta`` for the traffic seen:
``MDE = (z_{1-alpha/2} + z_{1-beta}) * SE(R_t - R_c)``, relative to ``R_c``; it shrinks as
``1/sqrt(n)``, so reaching a target MDE needs ``n * (MDE / target)^2`` units.

**Sample-ratio mismatch** (Fabijan et al., "Diagnosing Sample Ratio Mismatch in Online Controlled
Experiments", KDD 2019): a chi-square goodness-of-fit test of units per variant against the
configured split; p below 0.001 means the assignment or the logging is broken and no other figure of
the experiment can be trusted.

**Interleaving preference** (Chapelle, Joachims, Radlinski & Yue, "Large-scale validation and
analysis of interleaved search evaluation", TOIS 2012): each interleaved search is won by the team
with more credited clicks; a two-sided binomial (sign) test of wins of A against wins of B at
p = 1/2, ties left out.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio metric of one arm with its delta-method standard error over ``n_units``."""

    value: float
    se: float
    n_units: int
    numerator: float
    denominator: float

    def ci(self, confidence: float = 0.95) -> tuple[float, float]:
        z = stats.norm.ppf(0.5 + confidence / 2.0)
        return self.value - z * self.se, self.value + z * self.se


def linearize(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Delta-method linearisation ``Y_u = R + (X_u - R N_u) / mean(N)`` of a ratio metric."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError(f"numerator and denominator must be 1-D arrays of one length, got {num.shape}, {den.shape}")
    if num.size == 0 or den.sum() <= 0:
        return np.full(num.shape, np.nan)
    r = num.sum() / den.sum()
    return r + (num - r * den) / den.mean()


def ratio_estimate(num: np.ndarray, den: np.ndarray) -> RatioEstimate:
    y = linearize(num, den)
    n = y.size
    value = float(np.sum(num) / np.sum(den)) if n and np.sum(den) > 0 else math.nan
    se = float(y.std(ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
    return RatioEstimate(value, se, n, float(np.sum(num)), float(np.sum(den)))


def compare_ratios(
    num_t: np.ndarray, den_t: np.ndarray, num_c: np.ndarray, den_c: np.ndarray, *, alpha: float = 0.05, power: float = 0.8
) -> dict[str, Any]:
    """Treatment vs control on a ratio metric: difference and relative lift with delta-method CIs,
    the Welch t-test on linearised unit values, and the MDE for this traffic."""
    yt, yc = linearize(num_t, den_t), linearize(num_c, den_c)
    t, c = ratio_estimate(num_t, den_t), ratio_estimate(num_c, den_c)
    diff = t.value - c.value
    se = math.sqrt(t.se**2 + c.se**2) if yt.size >= 2 and yc.size >= 2 else math.nan
    if not math.isfinite(se):
        p, tstat, df = math.nan, math.nan, math.nan
    elif se == 0.0:  # both arms constant: no evidence either way unless the constants differ
        p, tstat, df = (1.0 if diff == 0 else 0.0), math.nan, float(yt.size + yc.size - 2)
    else:
        with warnings.catch_warnings():  # an arm with (near-)constant values is fine: Welch uses the other's variance
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_ind(yt, yc, equal_var=False)
        p, tstat, df = float(res.pvalue), float(res.statistic), float(res.df)
    tcrit = float(stats.t.ppf(1.0 - alpha / 2.0, df)) if math.isfinite(df) else math.nan
    lift = t.value / c.value - 1.0 if c.value else math.nan
    se_lift = (math.sqrt(t.se**2 / c.value**2 + t.value**2 * c.se**2 / c.value**4)
               if c.value and math.isfinite(se) else math.nan)
    zcrit = float(stats.norm.ppf(1.0 - alpha / 2.0))
    mde_abs = mde(se, alpha, power)
    return {
        "control_value": c.value, "value": t.value, "control_se": c.se, "se": t.se,
        "n_units": t.n_units, "control_n_units": c.n_units,
        "diff": diff, "diff_ci": [diff - tcrit * se, diff + tcrit * se],
        "lift": lift, "lift_ci": [lift - zcrit * se_lift, lift + zcrit * se_lift], "lift_se": se_lift,
        "t": tstat, "df": df, "p_value": p,
        "mde_abs": mde_abs, "mde_rel": mde_abs / c.value if c.value else math.nan,
    }


def mde(se_diff: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true difference a two-sided level-``alpha`` test detects with probability ``power``:
    ``(z_{1-alpha/2} + z_power) * SE``."""
    return float((stats.norm.ppf(1.0 - alpha / 2.0) + stats.norm.ppf(power)) * se_diff)


def units_for_mde(n_units: int, mde_now: float, target: float) -> int | None:
    """Units needed for the MDE to reach ``target`` (same metric scale), as MDE ~ 1/sqrt(n);
    None when the MDE is unknown (too little traffic to estimate a variance)."""
    if not (math.isfinite(mde_now) and target > 0):
        return None
    return math.ceil(n_units * (mde_now / target) ** 2)


def srm_test(counts: dict[str, int], split: dict[str, float], threshold: float = SRM_THRESHOLD) -> dict[str, Any]:
    """Chi-square test of observed units per variant against the configured split. A variant with
    weight 0 that received units is a mismatch by itself (p = 0)."""
    names = list(split)
    observed = np.array([counts.get(n, 0) for n in names], dtype=np.float64)
    weights = np.array([split[n] for n in names], dtype=np.float64)
    total = observed.sum()
    expected = total * weights
    live = weights > 0
    if total == 0:
        chi2, p = math.nan, math.nan
    elif np.any(observed[~live] > 0):
        chi2, p = math.inf, 0.0
    elif live.sum() < 2:
        chi2, p = 0.0, 1.0
    else:
        res = stats.chisquare(observed[live], expected[live])
        chi2, p = float(res.statistic), float(res.pvalue)
    return {
        "observed": dict(zip(names, observed.astype(int).tolist(), strict=True)),
        "expected": dict(zip(names, expected.tolist(), strict=True)),
        "observed_share": dict(zip(names, (observed / total if total else observed).tolist(), strict=True)),
        "chi2": chi2, "df": int(live.sum() - 1), "p_value": p, "threshold": threshold,
        "mismatch": bool(p < threshold) if math.isfinite(p) else False,
    }


@dataclass(frozen=True)
class Preference:
    """The interleaving verdict: wins per team, ties, the binomial test and the win share."""

    wins_a: int
    wins_b: int
    ties: int
    no_clicks: int
    p_value: float
    win_share_a: float
    win_share_ci: tuple[float, float]
    delta_ab: float
    unit_wins_a: int
    unit_wins_b: int
    unit_p_value: float
    mde_share: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def preference_test(
    wins_a: np.ndarray, wins_b: np.ndarray, units: np.ndarray | None = None, *, alpha: float = 0.05,
    power: float = 0.8, confidence: float = 0.95,
) -> Preference:
    """Per-search outcomes from credited clicks -> binomial test of A wins vs B wins (ties out).

    ``delta_ab = (wins_a + ties/2) / (wins_a + wins_b + ties) - 1/2`` over searches with a click
    (Chapelle et al. 2012). Searches of one unit are not independent, so the same sign test is also
    run on units (a unit is won by the team that won more of its searches) as a robustness check.
    ``mde_share`` is the smallest deviation of the win share from 1/2 detectable at this number of
    decisive searches: ``(z_{1-alpha/2} + z_power) * 0.5 / sqrt(n)``.
    """
    a, b = np.asarray(wins_a, dtype=np.int64), np.asarray(wins_b, dtype=np.int64)
    outcome = np.sign(a - b)
    n_a, n_b = int((outcome > 0).sum()), int((outcome < 0).sum())
    clicked = (a + b) > 0
    ties = int((clicked & (outcome == 0)).sum())
    decisive = n_a + n_b
    if decisive:
        test = stats.binomtest(n_a, decisive, 0.5)
        ci = test.proportion_ci(confidence, method="wilson")
        p, share, share_ci = float(test.pvalue), n_a / decisive, (float(ci.low), float(ci.high))
    else:
        p, share, share_ci = 1.0, math.nan, (math.nan, math.nan)
    u_a = u_b = 0
    u_p = 1.0
    if units is not None and len(outcome):
        codes, inverse = np.unique(np.asarray(units, dtype=object).astype(str), return_inverse=True)
        per_unit = np.sign(np.bincount(inverse, weights=outcome, minlength=len(codes)))
        u_a, u_b = int((per_unit > 0).sum()), int((per_unit < 0).sum())
        u_p = float(stats.binomtest(u_a, u_a + u_b, 0.5).pvalue) if u_a + u_b else 1.0
    shown = decisive + ties
    return Preference(
        wins_a=n_a, wins_b=n_b, ties=ties, no_clicks=int((~clicked).sum()), p_value=p, win_share_a=share,
        win_share_ci=share_ci, delta_ab=(n_a + 0.5 * ties) / shown - 0.5 if shown else math.nan,
        unit_wins_a=u_a, unit_wins_b=u_b, unit_p_value=u_p,
        mde_share=mde(0.5 / math.sqrt(decisive), alpha, power) if decisive else math.nan,
    )
