"""A demo query's structured intent and the grade it gives a product, by construction.

Labels never look at query text: noise (typos, synonyms, dropped words) cannot change a grade. The
rules (ESCI grades 3/2/1/0):

* **Exact** — the product's type is one the intent accepts and every stated constraint holds:
  each required attribute has an allowed value, no excluded value is present (negation), and the
  price is below ``max_price`` (alternative-intent queries).
* **Substitute** — an accepted type that breaks at least one stated constraint, or a declared
  substitute type (sofa bed for a sofa), whatever its attributes.
* **Complement** — a declared complement type (ink for a printer, a case for a phone) that fits: when
  the query pins a model or brand of a model-bearing type ("veltron nova 12 case", "officio printer"),
  an accessory must be compatible with it. An ink cartridge for another printer is Irrelevant.
* **Irrelevant** — everything else.

:func:`grade_product` is the scalar reference; :class:`FacetIndex` computes the same grades for all
products at once with numpy (the tests check both agree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopsearch.data.demo.vocabulary import complements_of, product_types, substitutes_of

EXACT, SUBSTITUTE, COMPLEMENT, IRRELEVANT = 3, 2, 1, 0
QUERY_TYPES = ("broad", "specific", "very_specific", "knowledge", "negation", "alternative")


@dataclass(frozen=True)
class Intent:
    """What the shopper wants, as constraints over product facets.

    ``require`` maps attribute -> allowed values (``brand``, ``color``, ``model`` and
    ``compatible_with`` are attributes too); ``exclude`` lists (attribute, value) pairs a product must
    not have; ``max_price`` is an exclusive upper bound.
    """

    query_type: str
    types: tuple[str, ...]
    require: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[tuple[str, str], ...] = ()
    max_price: float | None = None

    @property
    def stated_attributes(self) -> tuple[str, ...]:
        """Attributes the query constrains (price included when bounded)."""
        out = [a for a, _ in self.require] + [a for a, _ in self.exclude]
        return tuple(dict.fromkeys(out + (["price"] if self.max_price is not None else [])))

    def satisfied_by(self, facets: Mapping[str, Any]) -> bool:
        """True when every stated constraint holds (the type is checked by the caller)."""
        if any(facets.get(a) not in values for a, values in self.require):
            return False
        if any(facets.get(a) == v for a, v in self.exclude):
            return False
        return self.max_price is None or float(facets["price"]) < self.max_price

    def fit_constraint(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        """(allowed "<brand> <model>" fits, allowed brands of fits) an accessory must match, or Nones."""
        req = dict(self.require)
        if "compatible_with" in req:
            return frozenset(req["compatible_with"]), None
        types = product_types()
        if not any(types[t].models for t in self.types):
            return None, None
        if "model" in req and "brand" in req:
            return frozenset(f"{b} {m}" for b in req["brand"] for m in req["model"]), None
        if "brand" in req:
            return None, frozenset(req["brand"])
        return None, None

    def fits(self, fit: str | None) -> bool:
        """Whether an accessory (or main product) with this fit key suits the query's pinned model/brand."""
        exact, brands = self.fit_constraint()
        if fit is None or (exact is None and brands is None):
            return True
        if exact is not None:
            return fit in exact
        return any(fit.startswith(b + " ") for b in brands or ())

    def related_types(self) -> tuple[frozenset[str], frozenset[str]]:
        """(substitute types, complement types) of the intent, excluding its own types."""
        subs = frozenset().union(*(substitutes_of(t) for t in self.types)) - set(self.types)
        comps = frozenset().union(*(complements_of(t) for t in self.types)) - set(self.types) - subs
        return subs, comps

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for reports and for an oracle judge in synthesis experiments)."""
        return {
            "query_type": self.query_type,
            "types": list(self.types),
            "require": {a: list(v) for a, v in self.require},
            "exclude": [[a, v] for a, v in self.exclude],
            "max_price": self.max_price,
        }


def grade_product(intent: Intent, facets: Mapping[str, Any]) -> int:
    """The ESCI grade (3/2/1/0) of one product for one intent; see the module docstring."""
    ptype = facets["product_type"]
    if ptype in intent.types:
        return EXACT if intent.satisfied_by(facets) else SUBSTITUTE
    subs, comps = intent.related_types()
    if ptype in subs:
        return SUBSTITUTE
    if ptype in comps and intent.fits(facets.get("fits")):
        return COMPLEMENT
    return IRRELEVANT


@dataclass(frozen=True)
class Candidates:
    """Row numbers of the products an intent grades above Irrelevant, plus non-fitting complements."""

    exact: np.ndarray
    substitute: np.ndarray
    complement: np.ndarray
    misfit: np.ndarray  # complement types that do not fit: the hardest Irrelevant products
    substitute_hits: np.ndarray  # per substitute: stated constraints it does meet (near misses score high)


class FacetIndex:
    """Products grouped by type with one numpy column per facet, for fast grading of whole types."""

    def __init__(self, facets: Sequence[Mapping[str, Any]]) -> None:
        self.facets = list(facets)
        self.type_of = np.array([f["product_type"] for f in self.facets], dtype=object)
        self.rows: dict[str, np.ndarray] = {}
        self._columns: dict[tuple[str, str], np.ndarray] = {}
        for t in dict.fromkeys(self.type_of):
            self.rows[t] = np.flatnonzero(self.type_of == t)

    def column(self, ptype: str, attr: str) -> np.ndarray:
        """Values of ``attr`` for the products of ``ptype`` (None where absent), aligned with rows."""
        key = (ptype, attr)
        if key not in self._columns:
            rows = self.rows.get(ptype, np.empty(0, dtype=np.int64))
            if attr == "price":
                self._columns[key] = np.array([float(self.facets[r]["price"]) for r in rows])
            else:
                self._columns[key] = np.array([self.facets[r].get(attr) for r in rows], dtype=object)
        return self._columns[key]

    def _rows(self, ptype: str) -> np.ndarray:
        return self.rows.get(ptype, np.empty(0, dtype=np.int64))

    def constraint_masks(self, intent: Intent, ptype: str) -> list[np.ndarray]:
        """One boolean mask per stated constraint over the products of ``ptype``."""
        n = len(self._rows(ptype))
        masks = []
        for attr, values in intent.require:
            allowed = set(values)  # a set test, not np.isin: columns mix None and str, which cannot sort
            masks.append(np.fromiter((v in allowed for v in self.column(ptype, attr)), dtype=bool, count=n))
        for attr, value in intent.exclude:
            masks.append(self.column(ptype, attr) != value)
        if intent.max_price is not None:
            masks.append(self.column(ptype, "price") < intent.max_price)
        return masks

    def satisfied(self, intent: Intent, ptype: str) -> np.ndarray:
        """Boolean mask over the products of ``ptype``: every stated constraint holds."""
        mask = np.ones(len(self._rows(ptype)), dtype=bool)
        for m in self.constraint_masks(intent, ptype):
            mask &= m
        return mask

    def candidates(self, intent: Intent) -> Candidates:
        """All Exact, Substitute and Complement rows of an intent, and the misfitting complements."""
        exact, sub, comp, misfit, hits = [], [], [], [], []
        for t in intent.types:
            masks = self.constraint_masks(intent, t)
            count = np.sum(masks, axis=0) if masks else np.zeros(len(self._rows(t)), dtype=np.int64)
            mask = count == len(masks)
            exact.append(self._rows(t)[mask])
            sub.append(self._rows(t)[~mask])
            hits.append(np.asarray(count)[~mask])
        subs, comps = intent.related_types()
        for t in sorted(subs):
            sub.append(self._rows(t))
            hits.append(np.zeros(len(self._rows(t)), dtype=np.int64))
        exact_fit, brand_fit = intent.fit_constraint()
        for t in sorted(comps):
            fits = self.column(t, "fits")
            if exact_fit is not None:
                ok = np.array([f is None or f in exact_fit for f in fits], dtype=bool)
            elif brand_fit is not None:
                ok = np.array(
                    [f is None or any(f.startswith(b + " ") for b in brand_fit) for f in fits], dtype=bool
                )
            else:
                ok = np.ones(len(fits), dtype=bool)
            comp.append(self._rows(t)[ok])
            misfit.append(self._rows(t)[~ok])

        def cat(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

        return Candidates(cat(exact), cat(sub), cat(comp), cat(misfit), cat(hits))

    def has_exact(self, intent: Intent) -> bool:
        return any(bool(self.satisfied(intent, t).any()) for t in intent.types if t in self.rows)
