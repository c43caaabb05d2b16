"""The demo shop's product-type tables: the data model and the registry.

The tables themselves live in ``vocabulary_home.py`` / ``vocabulary_outdoor.py`` (product types) and
``vocabulary_knowledge.py`` (knowledge-intensive query templates). They are written compactly: lists are
``|``-separated strings and brands carry a price tier (``"Nordhaus:3"`` = premium), parsed once here
into frozen dataclasses so the generator never handles raw strings. Every brand is invented: the demo
shop must not make claims about real companies' products or prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

# Price multiplier per brand tier (1 = budget, 2 = mid-range, 3 = premium). "Cheaper alternative to
# <brand>" queries rely on tiers producing clearly different price levels.
TIER_PRICE = {1: 0.7, 2: 1.0, 3: 1.65}

# How an attribute reads in a query. ("suffix", "for {v}") puts the phrase after the product noun
# ("tent for 4 people"); anything not listed reads "{v}" before the noun ("black leather sofa").
QUERY_FORMS: dict[str, tuple[str, str]] = {
    "compatible_with": ("suffix", "for {v}"),
    "leg_material": ("suffix", "with {v} legs"),
    "age_range": ("suffix", "for {v}"),
    "players": ("suffix", "for {v}"),
    "skin_type": ("suffix", "for {v} skin"),
    "hair_type": ("suffix", "for {v} hair"),
    "hob": ("suffix", "for {v} hobs"),
    "room": ("suffix", "for {v}"),
    "wall_type": ("suffix", "for {v} walls"),
    "max_screen_size": ("suffix", "{v}"),
    "ram": ("prefix", "{v} ram"),
    "upholstery": ("prefix", "{v}"),
    "thickness": ("prefix", "{v} thick"),
    "theme": ("prefix", "{v}"),
}

# Shopper words for catalogue values (lower case; "attr=value" keys apply to one attribute only):
# queries use them a share of the time, so a query says "vegan leather couch" while the listing says
# "Faux Leather Sofa". None may equal another value of the same attribute of a type using it, or the
# intent would be ambiguous (a test checks this).
VALUE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "faux leather": ("vegan leather", "pleather"),
    "grey": ("gray",),
    "charcoal": ("dark grey",),
    "navy": ("dark blue", "navy blue"),
    "beige": ("oatmeal", "sand"),
    "4k uhd": ("4k", "ultra hd"),
    "full hd": ("fhd",),
    "full-motion": ("swivel", "articulating"),
    "cordless stick": ("stick", "cordless"),
    "robot": ("robotic", "automatic"),
    "ptfe non-stick": ("teflon",),
    "ceramic non-stick": ("ceramic",),
    "xl": ("extra large",),
    "xxl": ("2xl",),
    "men's": ("mens", "for men"),
    "women's": ("womens", "ladies"),
    "wireless pad": ("wireless charging", "qi"),
    "usb-c": ("type c", "usb c"),
    "noise cancelling": ("anc", "noise canceling"),
    "all-in-one": ("printer scanner copier", "3 in 1"),
    "bean-to-cup": ("automatic", "bean to cup"),
    "pod": ("capsule",),
    "double-wall vacuum insulated": ("insulated", "thermal"),
    "stainless steel": ("stainless",),
    "organic cotton": ("organic",),
    "mid-century": ("retro", "mid century"),
    "chesterfield": ("button back",),
    "seats=corner": ("l-shaped", "l shaped"),
    "pocket sprung": ("spring", "sprung"),
    "size=super king": ("6ft",),
    "size=king": ("5ft",),
    "size=double": ("4ft6",),
    "ottoman lift": ("ottoman",),
    "persian-style": ("oriental", "traditional"),
    "shaggy": ("shag", "fluffy"),
    "hammer drill": ("sds", "percussion drill"),
    "combi drill": ("combi",),
    "tool only": ("body only", "bare tool"),
    "heavy-duty": ("heavy duty", "strong"),
    "adhesive strips": ("no drill", "stick on"),
    "matt": ("matte", "flat"),
    "kitchen & bathroom": ("bathroom", "kitchen and bathroom"),
    "ocean animals": ("sea animals", "sea creatures"),
    "dinosaur": ("dino", "dinosaurs"),
    "sweatproof": ("sweat proof", "sports"),
    "max cushion": ("cushioned", "max cushioning"),
    "trail": ("off road", "mountain"),
    "waterproof": ("water proof",),
    "down": ("goose down",),
    "fleece-lined": ("fleece",),
    "fragrance-free": ("unscented", "perfume free"),
    "sulfate-free": ("sulphate free", "sls free"),
    "oily": ("greasy",),
    "colour-treated": ("dyed", "coloured"),
    "spf 50+": ("factor 50+",),
    "spf 30": ("factor 30",),
    "1.7l": ("1.7 litre",),
    "natural rubber": ("rubber",),
    "ages 3-5": ("toddler", "preschool"),
    "ages 0-2": ("baby",),
    "bpa-free plastic": ("plastic",),
}

# How an attribute reads in a description sentence; the default is "{v} {attribute words}", or just
# "{v}" when the value already names the attribute ("SPF 15", "4-shelf").
DESCRIPTION_FORMS: dict[str, str] = {
    "leg_material": "{v} legs",
    "upholstery": "{v} upholstery",
    "compatible_with": "a precise fit for the {v}",
    "age_range": "a design suited to {v}",
    "players": "play for {v}",
    "skin_type": "a formula for {v} skin",
    "hair_type": "a formula for {v} hair",
    "hob": "a base that works on {v} hobs",
    "room": "a finish made for {v}",
    "wall_type": "fixings for {v} walls",
    "size": "size {v}",
    "max_screen_size": "support for screens {v}",
    "theme": "a {v} theme",
    "feature": "{v}",
    "pieces": "{v} in the box",
    "spf": "{v} protection",
    "water_resistance": "a {v} formula",
    "format": "an easy {v} format",
    "fragrance": "a {v} formula",
    "sulfates": "a {v} formula",
    "version": "{v} support",
    "length": "a {v} length",
    "fill": "{v} filling",
    "set": "sold as a {v}",
    "style": "a {v} design",
    "gender": "{v} sizing",
    "battery": "{v} supplied",
    "cable": "{v} included",
    "shelves": "a {v} layout",
    "seats": "{v} seating",
    "ram": "{v} of RAM",
}


@dataclass(frozen=True)
class Brand:
    name: str
    tier: int  # 1 budget .. 3 premium


@dataclass(frozen=True)
class ProductType:
    """One product type: everything needed to make products of it and queries for it.

    ``attrs`` values are ordered; for attributes in ``price_by`` a later value costs more (a bigger
    screen, more storage). ``negations`` are ``(attribute, value, phrasings)``: "sofa without wood
    legs" excludes ``leg_material == wood``. ``models`` is "" (no model line), ``"word:Nova|Edge"``
    (named series, phones) or ``"code"`` (alphanumeric models, printers). ``compat_of`` names the type
    this accessory fits: its products get ``compatible_with`` = "<brand> <model>" of a real product.
    """

    key: str
    name: str
    vertical: str
    path: tuple[str, ...]
    brands: tuple[Brand, ...]
    colors: tuple[str, ...]
    attrs: tuple[tuple[str, tuple[str, ...]], ...]
    title: str
    synonyms: tuple[str, ...]
    complements: tuple[str, ...]
    substitutes: tuple[str, ...]
    price: float
    price_by: tuple[str, ...]
    negations: tuple[tuple[str, str, tuple[str, ...]], ...]
    blurbs: tuple[str, ...]
    models: str
    compat_of: str
    weight: float
    plural: str

    @property
    def attr_names(self) -> tuple[str, ...]:
        return tuple(a for a, _ in self.attrs)

    def values(self, attr: str) -> tuple[str, ...]:
        return dict(self.attrs)[attr]

    @property
    def display_name(self) -> str:
        """The name inside a sentence: lower case except acronyms ("the Lumora TV", "an HDMI cable")."""
        return " ".join(w if w.isupper() else w.lower() for w in self.name.split())

    @property
    def noun(self) -> str:
        """The canonical query noun, e.g. ``tv`` or ``frying pan``."""
        return self.name.lower()

    @property
    def category(self) -> str:
        from shopsearch.data.schema import CATEGORY_SEPARATOR

        return CATEGORY_SEPARATOR.join((self.vertical, *self.path))


def _split(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split("|") if s.strip())


def make_type(
    key: str,
    name: str,
    vertical: str,
    path: str,
    *,
    brands: str,
    attrs: dict[str, str],
    title: str,
    colors: str = "",
    synonyms: str = "",
    complements: str = "",
    substitutes: str = "",
    price: float = 50.0,
    price_by: str = "",
    negations: tuple[tuple[str, str, str], ...] = (),
    blurbs: str = "",
    models: str = "",
    compat_of: str = "",
    weight: float = 1.0,
    plural: str = "",
) -> ProductType:
    """Parse one compact table row into a :class:`ProductType` (see the module docstring)."""
    parsed_brands = []
    for item in _split(brands):
        brand_name, _, tier = item.rpartition(":")
        parsed_brands.append(Brand(brand_name, int(tier)))
    return ProductType(
        key=key,
        name=name,
        vertical=vertical,
        path=tuple(p.strip() for p in path.split(">")),
        brands=tuple(parsed_brands),
        colors=_split(colors),
        attrs=tuple((a, _split(v)) for a, v in attrs.items()),
        title=title,
        synonyms=_split(synonyms),
        complements=tuple(complements.split()),
        substitutes=tuple(substitutes.split()),
        price=float(price),
        price_by=tuple(price_by.split()),
        negations=tuple((a, v, _split(p)) for a, v, p in negations),
        blurbs=_split(blurbs),
        models=models,
        compat_of=compat_of,
        weight=weight,
        plural=plural or name.lower() + "s",
    )


@dataclass(frozen=True)
class KnowledgeTemplate:
    """A knowledge-intensive query family mapped to structured constraints.

    ``phrasings`` use ``{slot}`` placeholders; each slot option maps the words a shopper says to the
    attribute constraints it implies ("5" -> ``age_range in {ages 3-5}``), which is the knowledge the
    query needs. ``require`` holds constraints that hold for every phrasing.
    """

    name: str
    phrasings: tuple[str, ...]
    types: tuple[str, ...]
    require: tuple[tuple[str, tuple[str, ...]], ...]
    slots: tuple[tuple[str, tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...]], ...]


def _constraints(spec: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``"age_range=ages 3-5; theme=dinosaur"`` -> ``(("age_range", ("ages 3-5",)), ...)``."""
    out = []
    for part in spec.split(";"):
        if part.strip():
            attr, _, values = part.partition("=")
            out.append((attr.strip(), _split(values)))
    return tuple(out)


def make_knowledge(
    name: str, phrasings: str, types: str, require: str = "", slots: dict[str, dict[str, str]] | None = None
) -> KnowledgeTemplate:
    """Parse one knowledge-template row (constraints as ``attr=v1|v2; attr2=v``)."""
    parsed_slots = tuple(
        (slot, tuple((said, _constraints(spec)) for said, spec in options.items()))
        for slot, options in (slots or {}).items()
    )
    return KnowledgeTemplate(
        name, _split(phrasings), tuple(types.split()), _constraints(require), parsed_slots
    )


@cache
def product_types() -> dict[str, ProductType]:
    """Every product type by key, checked for consistency once."""
    from shopsearch.data.demo.vocabulary_electronics import ELECTRONICS_TYPES
    from shopsearch.data.demo.vocabulary_home import HOME_TYPES
    from shopsearch.data.demo.vocabulary_outdoor import OUTDOOR_TYPES

    types: dict[str, ProductType] = {}
    for t in (*ELECTRONICS_TYPES, *HOME_TYPES, *OUTDOOR_TYPES):
        if t.key in types:
            raise ValueError(f"duplicate product type {t.key!r}")
        types[t.key] = t
    from shopsearch.data.demo.vocabulary_knowledge import KNOWLEDGE

    problems = check_vocabulary(types) + check_knowledge(KNOWLEDGE, types)
    if problems:
        raise ValueError("demo vocabulary is inconsistent: " + "; ".join(problems))
    return types


@cache
def knowledge_templates() -> tuple[KnowledgeTemplate, ...]:
    from shopsearch.data.demo.vocabulary_knowledge import KNOWLEDGE

    product_types()  # validates the templates against the types
    return KNOWLEDGE


@cache
def complements_of(key: str) -> frozenset[str]:
    """Declared complements, made symmetric: if ink complements a printer, a printer complements ink."""
    types = product_types()
    out = set(types[key].complements)
    out.update(k for k, t in types.items() if key in t.complements)
    out.discard(key)
    return frozenset(out)


@cache
def substitutes_of(key: str) -> frozenset[str]:
    """Declared substitute types, symmetric (a sofa bed substitutes a sofa and vice versa)."""
    types = product_types()
    out = set(types[key].substitutes)
    out.update(k for k, t in types.items() if key in t.substitutes)
    out.discard(key)
    return frozenset(out)


def check_vocabulary(types: dict[str, Any]) -> list[str]:
    """Readable problems with the tables: unknown references, negations of unknown values."""
    problems = []
    for t in types.values():
        for ref in (*t.complements, *t.substitutes, *([t.compat_of] if t.compat_of else [])):
            if ref not in types:
                problems.append(f"{t.key} refers to unknown type {ref!r}")
        attrs = dict(t.attrs)
        for attr, value, _ in t.negations:
            if value not in attrs.get(attr, ()):
                problems.append(f"{t.key}: negation of unknown {attr}={value!r}")
        for attr in t.price_by:
            if attr not in attrs:
                problems.append(f"{t.key}: price_by unknown attribute {attr!r}")
        if t.compat_of and not types.get(t.compat_of, t).models:
            problems.append(f"{t.key}: compat_of {t.compat_of!r} has no model line")
        if len(t.brands) < 3:
            problems.append(f"{t.key}: needs at least 3 brands")
    return problems


def check_knowledge(templates: tuple[KnowledgeTemplate, ...], types: dict[str, Any]) -> list[str]:
    """Every template constraint must name an attribute all its types have, and a value one of them has."""
    problems = []
    for k in templates:
        missing = [t for t in k.types if t not in types]
        if missing:
            problems.append(f"knowledge {k.name!r}: unknown types {missing}")
            continue
        constraints = list(k.require) + [c for _, options in k.slots for _, cs in options for c in cs]
        for attr, values in constraints:
            if any(attr not in dict(types[t].attrs) for t in k.types):
                problems.append(f"knowledge {k.name!r}: not every type has attribute {attr!r}")
                continue
            known = {v for t in k.types for v in dict(types[t].attrs)[attr]}
            if set(values) - known:
                problems.append(f"knowledge {k.name!r}: unknown {attr} values {sorted(set(values) - known)}")
    return problems
