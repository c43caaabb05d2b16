"""Products of the demo shop: attributes sampled from the vocabulary, then realistic text.

Each product has *facets* (the structured truth labels are computed from: type key, brand, colour,
model, fit, every attribute, price) and *text* (title, description, bullets) composed from them the way
marketplace listings are: a title with the brand, key attributes and colour; a couple of sentences;
"Label: value" bullets. Some attributes appear only in the bullets or description, never in the title,
so title-only lexical matching is deliberately incomplete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopsearch.data.demo.vocabulary import DESCRIPTION_FORMS, TIER_PRICE, ProductType, product_types

MIN_PER_TYPE = 2  # every type needs a couple of products so queries and substitutes exist
_VARIANTS_PER_MODEL = 4  # a phone model comes in several colours and storage sizes
_BRAND_TIER_WEIGHT = {1: 1.0, 2: 1.3, 3: 0.8}  # mid-range brands list the most products
_TITLE_OMIT = 0.2  # chance a seller leaves one attribute (or the colour) out of a title
_SERIES_SUFFIXES = ("", " Pro", " Lite", " Max", " Plus")
_CLOSERS = (
    "Free returns within 30 days.",
    "Backed by a two-year manufacturer warranty.",
    "Ships in recyclable packaging.",
    "Rated highly by customers for value.",
    "Dispatched within one working day.",
)
# (singular, plural) verb forms: "the Lumora TV offers", "the Pacer running shoes offer".
_VERBS = (("features", "feature"), ("comes with", "come with"), ("offers", "offer"), ("combines", "combine"))


@dataclass(frozen=True)
class Product:
    """One generated product: catalogue row fields plus the facets labels are computed from."""

    row: dict[str, Any]
    facets: dict[str, Any]


def cap(value: str) -> str:
    """Title-case words without lowering the rest ("4K UHD" stays); short words ("cm", "i5", "to")
    keep their case unless they open the value."""
    words = value.split(" ")
    return " ".join(w[:1].upper() + w[1:] if i == 0 or len(w) > 2 else w for i, w in enumerate(words))


def type_counts(n_products: int, rng: np.random.Generator) -> dict[str, int]:
    """How many products of each type: a floor per type, the rest multinomial by type weight."""
    types = product_types()
    floor = MIN_PER_TYPE * len(types)
    if n_products < floor:
        raise ValueError(f"the demo shop needs at least {floor} products ({len(types)} product types)")
    weights = np.array([t.weight for t in types.values()])
    extra = rng.multinomial(n_products - floor, weights / weights.sum())
    return {key: MIN_PER_TYPE + int(e) for key, e in zip(types, extra, strict=True)}


def _model_lines(t: ProductType, count: int, rng: np.random.Generator) -> dict[str, list[str]]:
    """Model names per brand: series words for phones ("Nova 12 Pro"), codes for the rest ("JX-420")."""
    per_brand = max(1, round(count / (len(t.brands) * _VARIANTS_PER_MODEL)))
    series = t.models.partition(":")[2].split("|") if t.models.startswith("word") else []
    out: dict[str, list[str]] = {}
    for i, brand in enumerate(t.brands):
        names: set[str] = set()
        while len(names) < per_brand:
            if series:
                word = series[(i + len(names)) % len(series)]
                suffix = _SERIES_SUFFIXES[int(rng.integers(len(_SERIES_SUFFIXES)))]
                names.add(f"{word} {int(rng.integers(8, 16))}{suffix}")
            else:
                letters = "".join(chr(65 + int(x)) for x in rng.integers(0, 26, size=2))
                names.add(f"{letters}-{int(rng.integers(10, 99)) * 10}")
        out[brand.name] = sorted(names)
    return out


def _price(t: ProductType, tier: int, attrs: dict[str, str], rng: np.random.Generator) -> float:
    factor = TIER_PRICE[tier]
    for attr in t.price_by:
        factor *= 1.0 + 0.18 * t.values(attr).index(attrs[attr])
    price = t.price * factor * float(np.exp(rng.normal(0.0, 0.08)))
    return round(max(1.0, round(price)) - 0.01, 2)  # shop-style .99 prices


def _describe(t: ProductType, facets: dict[str, Any], rng: np.random.Generator) -> str:
    """Two or three sentences; attributes missing from the title are preferred, so text adds facts."""
    in_title = [a for a in t.attr_names if "{" + a + "}" in t.title]
    order = [a for a in t.attr_names if a not in in_title] + in_title
    chosen = order[: int(rng.integers(2, 4))]
    phrases = []
    for attr in chosen:
        words = attr.replace("_", " ")
        # "4-shelf shelves" reads badly: drop the attribute word when the value already names it.
        named = words.split()[-1][:4] in facets[attr].lower()
        form = DESCRIPTION_FORMS.get(attr, "{v}" if named else "{v} " + words)
        phrases.append(form.format(v=facets[attr]))
    listing = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    singular, plural = _VERBS[int(rng.integers(len(_VERBS)))]
    verb = plural if t.plural == t.name.lower() else singular
    sentences = [f"The {facets['brand']} {t.display_name} {verb} {listing}."]
    if t.blurbs:
        sentences.append(t.blurbs[int(rng.integers(len(t.blurbs)))])
    if rng.random() < 0.5:
        sentences.append(_CLOSERS[int(rng.integers(len(_CLOSERS)))])
    return " ".join(sentences)


def _bullets(t: ProductType, facets: dict[str, Any], rng: np.random.Generator) -> str:
    lines = []
    if facets.get("compatible_with"):
        lines.append(f"Compatible with: {facets['compatible_with']}")
    if facets.get("model"):
        lines.append(f"Model: {facets['model']}")
    attrs = list(t.attr_names)
    rng.shuffle(attrs)
    for attr in attrs[: int(rng.integers(3, 5))]:
        lines.append(f"{attr.replace('_', ' ').capitalize()}: {cap(facets[attr])}")
    if facets.get("color") and len(lines) < 5:
        lines.append(f"Colour: {facets['color']}")
    if len(lines) < 3:  # types with two attributes and no colour still get three bullets
        lines.append(f"Brand: {facets['brand']}")
    return "\n".join(lines[:5])


def _one(
    t: ProductType, rng: np.random.Generator, models: dict[str, list[str]], fits: list[str] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Facets and title of one product of type ``t``."""
    weights = np.array([_BRAND_TIER_WEIGHT[b.tier] for b in t.brands])
    brand = t.brands[int(rng.choice(len(t.brands), p=weights / weights.sum()))]
    attrs = {a: values[int(rng.integers(len(values)))] for a, values in t.attrs}
    facets: dict[str, Any] = {"product_type": t.key, "brand": brand.name, **attrs}
    facets["color"] = t.colors[int(rng.integers(len(t.colors)))] if t.colors else None
    slots = {"brand": brand.name, **{a: cap(v) for a, v in attrs.items()}}
    if models:
        line = models[brand.name]
        facets["model"] = line[int(rng.integers(len(line)))]
        facets["fits"] = f"{brand.name} {facets['model']}"
        slots["model"] = facets["model"]
    if fits:
        facets["compatible_with"] = facets["fits"] = fits[int(rng.integers(len(fits)))]
        slots["compatible_with"] = facets["compatible_with"]
    facets["price"] = _price(t, brand.tier, attrs, rng)
    title = t.title
    noun = t.name.split()[-1]  # an omission must leave the product noun ("Drill", "Cable") in the title
    for attr in t.attr_names:  # sellers write incomplete titles: the fact stays in bullets/attributes
        if rng.random() < _TITLE_OMIT:
            shorter = _omit(title, attr)
            if noun in re.sub(r"\{[a-z_]+\}", "", shorter):
                title = shorter
    if facets["color"]:
        slots["color"] = facets["color"]
        if rng.random() < _TITLE_OMIT:
            title = _omit(title, "color")
        elif "{color}" not in title:
            title += ", {color}"
    return facets, slots | {"title": title.format(**slots)}


def _omit(template: str, attr: str) -> str:
    """Remove ``{attr}`` and the words that only make sense with it ("for {room}", ", Size {size}")."""
    slot = "{" + attr + "}"
    patterns = (
        r",( Size)? " + re.escape(slot) + r"( Deep)?",
        r" (for|with)( Screens)? " + re.escape(slot) + r"( Skin| Hair| Hobs| Legs)?",
        re.escape(slot) + r" ",
    )
    for pattern in patterns:
        out, n = re.subn(pattern, "", template, count=1)
        if n:
            return out
    return template


def make_products(n_products: int, rng: np.random.Generator) -> list[Product]:
    """``n_products`` products over every type, in shuffled order (ids do not reveal the type)."""
    types = product_types()
    counts = type_counts(n_products, rng)
    models = {k: _model_lines(t, counts[k], rng) for k, t in types.items() if t.models}
    made: dict[str, list[tuple[dict[str, Any], dict[str, str]]]] = {}
    # Accessories come after the types they fit, so compatible_with names a model that exists.
    for key in sorted(types, key=lambda k: bool(types[k].compat_of)):
        t = types[key]
        fits = sorted({f["fits"] for f, _ in made[t.compat_of]}) if t.compat_of else None
        made[key] = [_one(t, rng, models.get(key, {}), fits) for _ in range(counts[key])]
    flat = [(types[k], f, s) for k in types for f, s in made[k]]
    order = rng.permutation(len(flat))
    products = []
    for i, j in enumerate(order):
        t, facets, slots = flat[int(j)]
        attributes = {"product_type": t.name, **{a: facets[a] for a in t.attr_names}}
        for extra in ("model", "compatible_with"):
            if facets.get(extra):
                attributes[extra] = facets[extra]
        attributes["price"] = f"{facets['price']:.2f}"
        row = {
            "product_id": f"P{i + 1:06d}",
            "title": slots["title"],
            "brand": facets["brand"],
            "color": facets["color"],
            "category": t.category,
            "vertical": t.vertical,
            "description": _describe(t, facets, rng),
            "bullets": _bullets(t, facets, rng),
            "attributes": attributes,
        }
        products.append(Product(row, facets | {"product_id": row["product_id"]}))
    return products
