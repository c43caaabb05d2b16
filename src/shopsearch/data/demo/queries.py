"""Demo queries: structured intents drawn from real catalogue products, then rendered as text.

Every query except the knowledge and alternative families starts from an *anchor* product and states
some of its facets, so at least one Exact product exists by construction; knowledge and alternative
intents are checked against the catalogue and redrawn when nothing satisfies them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shopsearch.data.demo.intent import FacetIndex, Intent
from shopsearch.data.demo.products import Product
from shopsearch.data.demo.vocabulary import (
    QUERY_FORMS,
    VALUE_SYNONYMS,
    ProductType,
    knowledge_templates,
    product_types,
)
from shopsearch.data.demo.vocabulary_knowledge import ALTERNATIVE_PHRASINGS

# Values a shopper never types as something they want ("contains sulfates shampoo").
UNSAID_VALUES = frozenset({"no SPF", "contains sulfates", "no storage", "not water resistant", "no cable"})
# Attributes that size a product; very specific queries name one when the type has it.
SIZE_ATTRS = ("size", "screen_size", "waist", "capacity", "weight", "volume", "length", "pieces")
_MAX_TRIES = 40
_LETTER_SIZES = frozenset({"xs", "s", "m", "l", "xl", "xxl"})
_VALUE_SYNONYM_SHARE = 0.3  # how often a shopper uses their own word for a value


@dataclass
class QueryDraft:
    """A query before ranking: text, the intent labels come from, and what noise may touch."""

    text: str
    intent: Intent
    vertical: str
    noun: str  # the product noun as written in the text ("" when the text has none)
    noun_synonyms: tuple[str, ...]
    noise: str | None = None
    clean_text: str = ""


def _pick(seq: tuple[str, ...] | list[str], rng: np.random.Generator) -> str:
    return seq[int(rng.integers(len(seq)))]


def value_synonyms(attr: str, value: str) -> tuple[str, ...]:
    """Shopper words for one attribute value (attribute-specific entries first)."""
    v = value.lower()
    return VALUE_SYNONYMS.get(f"{attr}={v}", VALUE_SYNONYMS.get(v, ()))


def _query_value(attr: str, value: str, rng: np.random.Generator) -> str:
    """How a shopper writes a value: lower case, own words for it, units spelt a few ways."""
    v = value.lower()
    words = value_synonyms(attr, value)
    if words and rng.random() < _VALUE_SYNONYM_SHARE:
        return _pick(words, rng)
    if "-inch" in v and rng.random() < 0.5:
        v = v.replace("-inch", _pick((" inch", "in", " in"), rng))
    return v


def _noun(t: ProductType, rng: np.random.Generator, synonym_share: float = 0.3) -> str:
    """The canonical noun most of the time, otherwise a colloquial synonym or the plural."""
    r = rng.random()
    if t.synonyms and r < synonym_share:
        return _pick(t.synonyms, rng)
    return t.plural if r > 0.85 else t.noun


def render(t: ProductType, noun: str, stated: list[tuple[str, str]], rng: np.random.Generator) -> str:
    """Constraint values around the noun in shopper word order: brand, model, adjectives, noun, phrases."""
    head: list[str] = []
    prefix: list[str] = []
    suffix: list[str] = []
    for attr, value in stated:
        v = _query_value(attr, value, rng)
        if attr in ("brand", "model"):
            head.append(v)
        elif attr == "color":
            (suffix if rng.random() < 0.3 else prefix).insert(0, v)
        elif v in _LETTER_SIZES:  # "t-shirt size l", not "l t-shirt"
            suffix.append(f"size {v}")
        else:
            where, form = QUERY_FORMS.get(attr, ("prefix", "{v}"))
            (suffix if where == "suffix" else prefix).append(form.format(v=v))
    return " ".join([*head, *prefix, noun, *suffix])


def _statable(t: ProductType, f: dict) -> list[str]:
    attrs = [a for a in t.attr_names if f[a] not in UNSAID_VALUES]
    if f.get("color"):
        attrs.append("color")
    if f.get("compatible_with"):
        attrs.append("compatible_with")
    return attrs


def _draft(t: ProductType, text: str, intent: Intent, noun: str) -> QueryDraft:
    return QueryDraft(text, intent, t.vertical, noun, (t.noun, *t.synonyms))


class QueryMaker:
    """Draws query drafts of each type from one catalogue and one random generator."""

    def __init__(self, products: list[Product], index: FacetIndex, rng: np.random.Generator) -> None:
        self.products = products
        self.index = index
        self.rng = rng
        self.types = product_types()

    def _anchor(self, keep: Callable[[ProductType], bool] = lambda t: True) -> tuple[ProductType, dict]:
        for _ in range(_MAX_TRIES * 5):
            f = self.products[int(self.rng.integers(len(self.products)))].facets
            t = self.types[f["product_type"]]
            if keep(t):
                return t, f
        raise LookupError("no anchor product of the wanted kind")

    def broad(self) -> QueryDraft:
        t, _ = self._anchor()
        noun = _noun(t, self.rng, synonym_share=0.35)
        return _draft(t, noun, Intent("broad", (t.key,)), noun)

    def specific(self) -> QueryDraft:
        t, f = self._anchor()
        attrs = _statable(t, f)
        k = 1 if self.rng.random() < 0.6 or len(attrs) < 2 else 2
        chosen = [attrs[int(i)] for i in sorted(self.rng.choice(len(attrs), size=k, replace=False))]
        return self._from_facets("specific", t, f, chosen)

    def very_specific(self) -> QueryDraft:
        t, f = self._anchor()
        chosen = ["brand"]
        if f.get("model") and self.rng.random() < 0.6:
            chosen.append("model")
        size = [a for a in SIZE_ATTRS if a in t.attr_names and f[a] not in UNSAID_VALUES]
        if size:
            chosen.append(size[0])
        rest = [a for a in _statable(t, f) if a not in chosen]
        extra = min(len(rest), int(self.rng.integers(1, 3)))
        chosen += [rest[int(i)] for i in sorted(self.rng.choice(len(rest), size=extra, replace=False))]
        return self._from_facets("very_specific", t, f, chosen)

    def _from_facets(self, qtype: str, t: ProductType, f: dict, chosen: list[str]) -> QueryDraft:
        stated = [(a, f[a]) for a in chosen]
        noun = _noun(t, self.rng)
        intent = Intent(qtype, (t.key,), tuple((a, (v,)) for a, v in stated))
        return _draft(t, render(t, noun, stated, self.rng), intent, noun)

    def negation(self) -> QueryDraft:
        def usable(t: ProductType) -> bool:
            return bool(t.negations)

        for _ in range(_MAX_TRIES):
            t, f = self._anchor(usable)
            attr, value, phrasings = t.negations[int(self.rng.integers(len(t.negations)))]
            # The anchor must satisfy the negation and some product must violate it (a Substitute).
            if f[attr] == value or not (self.index.column(t.key, attr) == value).any():
                continue
            stated: list[tuple[str, str]] = []
            others = [a for a in _statable(t, f) if a != attr and a != "compatible_with"]
            if others and self.rng.random() < 0.4:
                a = others[int(self.rng.integers(len(others)))]
                stated.append((a, f[a]))
            noun = _noun(t, self.rng, synonym_share=0.2)
            phrase = _pick(phrasings, self.rng).replace("{t}", render(t, noun, stated, self.rng))
            intent = Intent("negation", (t.key,), tuple((a, (v,)) for a, v in stated), ((attr, value),))
            return _draft(t, phrase, intent, noun)
        raise LookupError("no product satisfies any negation")

    def knowledge(self) -> QueryDraft:
        templates = knowledge_templates()
        for _ in range(_MAX_TRIES):
            k = templates[int(self.rng.integers(len(templates)))]
            words: dict[str, str] = {}
            require: dict[str, set[str]] = {a: set(v) for a, v in k.require}
            for slot, options in k.slots:
                said, constraints = options[int(self.rng.integers(len(options)))]
                words[slot] = said
                for attr, values in constraints:
                    require[attr] = require[attr] & set(values) if attr in require else set(values)
            intent = Intent(
                "knowledge", k.types, tuple((a, tuple(sorted(v))) for a, v in sorted(require.items()))
            )
            if not self.index.has_exact(intent):
                continue
            text = _pick(k.phrasings, self.rng).format(**words).lower()
            t = self.types[k.types[0]]
            return QueryDraft(text, intent, t.vertical, "", ())
        raise LookupError("no knowledge template is satisfiable in this catalogue")

    def alternative(self) -> QueryDraft:
        for _ in range(_MAX_TRIES):
            t, f = self._anchor(lambda t: len({b.tier for b in t.brands}) > 1)
            tier = {b.name: b.tier for b in t.brands}
            if tier[f["brand"]] < 2:  # "cheaper alternative to" names a mid-range or premium brand
                continue
            prices = self.index.column(t.key, "price")[self.index.column(t.key, "brand") == f["brand"]]
            intent = Intent("alternative", (t.key,), (), (("brand", f["brand"]),), float(np.median(prices)))
            if not self.index.has_exact(intent):
                continue
            noun = _noun(t, self.rng, synonym_share=0.25)
            text = _pick(ALTERNATIVE_PHRASINGS, self.rng).format(brand=f["brand"].lower(), t=noun)
            return _draft(t, text, intent, noun)
        raise LookupError("no brand has a cheaper alternative in this catalogue")
