"""Click models that turn judged grades into simulated clicks, carts and orders (vectorised numpy).

- **PBM** (position-based model; Richardson et al. 2007, Chuklin, Markov & de Rijke, *Click Models for
  Web Search*, 2015): a product at rank ``r`` (1-based) is clicked with probability
  ``e_r * a(g)``, examination ``e_r = r ** -eta`` (the power law of Joachims et al. 2017)
  independent of attractiveness; several clicks per page are possible.
- **Cascade** (Craswell et al. 2008): the shopper scans top-down and clicks the first attractive
  product, then stops: at most one click.

Attractiveness from the grade follows the ERR mapping (Chapelle et al. 2009),
``a(g) = a_min + (a_max - a_min) * (2**g - 1) / (2**g_max - 1)``; products that were not shown (padding)
have ``a = 0``. Each shopper has a click propensity ``m ~ Gamma(shape, 1/shape)`` (mean 1) that
multiplies attractiveness, so one shopper's searches are correlated, as they are in real logs; that
is what makes unit-level (delta-method) analysis necessary. A click leads to an add to cart with
probability ``cart * R(g)``, ``R(g) = (2**g - 1) / (2**g_max - 1)``, and a cart to an order with
probability ``order``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import gamma

# Quadrature nodes over the shopper propensity for exact-enough expectations (lift calibration).
_NODES = 64


@dataclass(frozen=True)
class ClickModel:
    """Parameters of the simulated shopper; defaults give a search CTR of about 0.4-0.6 on good rankings."""

    kind: Literal["pbm", "cascade"] = "pbm"
    eta: float = 1.0
    attr_min: float = 0.03
    attr_max: float = 0.7
    max_grade: int | None = None  # the grade scheme's top grade; None: taken from the rankings simulated
    cart: float = 0.3
    order: float = 0.4
    heterogeneity: float | None = 4.0  # Gamma shape of the shopper propensity; None: every shopper alike

    def __post_init__(self) -> None:
        if self.kind not in ("pbm", "cascade"):
            raise ValueError(f"click model must be pbm or cascade, got {self.kind!r}")
        if not 0.0 <= self.attr_min <= self.attr_max <= 1.0:
            raise ValueError("need 0 <= attr_min <= attr_max <= 1")
        if self.max_grade is not None and self.max_grade < 1:
            raise ValueError("max_grade must be >= 1")
        if self.heterogeneity is not None and self.heterogeneity <= 0:
            raise ValueError("heterogeneity (a Gamma shape) must be > 0, or None")

    def relevance(self, grades: np.ndarray) -> np.ndarray:
        """``R(g) = (2**g - 1) / (2**g_max - 1)`` in [0, 1]; 0 for padding (grade < 0)."""
        if self.max_grade is None:
            raise ValueError("set the click model's max_grade (the grade scheme's top grade)")
        g = np.clip(np.asarray(grades, dtype=np.float64), 0, self.max_grade)
        r = (np.power(2.0, g) - 1.0) / (2.0**self.max_grade - 1.0)
        return np.where(np.asarray(grades) < 0, 0.0, r)

    def attractiveness(self, grades: np.ndarray) -> np.ndarray:
        shown = np.asarray(grades) >= 0
        return np.where(shown, self.attr_min + (self.attr_max - self.attr_min) * self.relevance(grades), 0.0)

    def examination(self, k: int) -> np.ndarray:
        """Examination probability per rank; all ones for the cascade (it examines until a click)."""
        if self.kind == "cascade":
            return np.ones(k)
        return np.arange(1, k + 1, dtype=np.float64) ** -self.eta

    def propensity(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.heterogeneity is None:
            return np.ones(n)
        return rng.gamma(self.heterogeneity, 1.0 / self.heterogeneity, size=n)

    def propensity_nodes(self) -> np.ndarray:
        """Equal-weight quadrature nodes (mid-quantiles) of the propensity distribution."""
        if self.heterogeneity is None:
            return np.ones(1)
        q = (np.arange(_NODES) + 0.5) / _NODES
        return gamma.ppf(q, self.heterogeneity, scale=1.0 / self.heterogeneity)

    def draw(
        self, attr: np.ndarray, relevance: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Clicks, carts and orders, boolean arrays shaped like ``attr`` (impressions x ranks).

        ``attr`` is the per-impression attractiveness already scaled by the shopper's propensity
        (and any planted lift); ``relevance`` is ``R(g)`` of the same cells, unscaled, so carts
        follow the product's grade and not the shopper's eagerness to click.
        """
        attr = np.clip(attr, 0.0, 1.0)
        n, k = attr.shape
        u = rng.random((n, k))
        if self.kind == "pbm":
            clicks = u < attr * self.examination(k)[None, :]
        else:
            attractive = u < attr
            first = attractive.argmax(axis=1)
            rows = np.flatnonzero(attractive.any(axis=1))
            clicks = np.zeros((n, k), dtype=bool)
            clicks[rows, first[rows]] = True
        carts = clicks & (rng.random((n, k)) < self.cart * relevance)
        orders = carts & (rng.random((n, k)) < self.order)
        return clicks, carts, orders

    def p_any_click(self, attr: np.ndarray) -> np.ndarray:
        """P(at least one click) per impression row: ``1 - prod_r (1 - e_r a_r)`` (for the cascade,
        P(some product is attractive), the same product with ``e_r = 1``)."""
        attr = np.clip(attr, 0.0, 1.0)
        return 1.0 - np.prod(1.0 - attr * self.examination(attr.shape[-1]), axis=-1)

    def expected_ctr(self, attr_qk: np.ndarray, weights: np.ndarray, scale: float = 1.0) -> float:
        """Expected search CTR (share of searches with a click) when query ``q`` is searched with
        probability ``weights[q]`` and shows attractiveness ``attr_qk[q]`` scaled by ``scale`` and by
        the shopper propensity (integrated by quadrature)."""
        nodes = self.propensity_nodes()
        p = self.p_any_click(attr_qk[None, :, :] * nodes[:, None, None] * scale)  # (nodes, queries)
        return float(p.mean(axis=0) @ weights)

    def scale_for_lift(self, attr_qk: np.ndarray, weights: np.ndarray, lift: float) -> float:
        """The attractiveness multiplier ``c`` that raises the expected search CTR by the relative
        ``lift`` (``E(c) = (1 + lift) E(1)``); bisection, as ``E`` increases with ``c``."""
        if lift == 0.0:
            return 1.0
        base = self.expected_ctr(attr_qk, weights)
        target = (1.0 + lift) * base
        ceiling = self.expected_ctr(attr_qk, weights, 1e12)  # every shown product clicked if examined
        if not 0.0 <= target < ceiling:
            raise ValueError(f"a CTR lift of {lift:+.1%} is not reachable: the expected CTR is {base:.3f} and "
                             f"cannot exceed {ceiling:.3f} (the share of searches with results) in this click model")
        lo, hi = (1.0, 2.0) if lift > 0 else (0.0, 1.0)
        while self.expected_ctr(attr_qk, weights, hi) < target:
            hi *= 2.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.expected_ctr(attr_qk, weights, mid) < target else (lo, mid)
        return 0.5 * (lo + hi)
