"""Few-shot prompts for the multi-candidate query rewriter, one set per query type.

METHOD.md part B, step 2: the rewriter turns a long-tail query into several rewrites that keep its
intent (respecting negation) and read like product text, so that they retrieve products relevant to
the ORIGINAL query. The prompts say exactly that, and each query type gets examples of its own
difficulty: a question becomes the products that answer it, a negation becomes an explicit
attribute, an alternative names the product type without the brand, a need becomes product types
and attributes. The examples are written for product search, not taken from any benchmark.

Two styles: ``list`` asks for ``n`` numbered rewrites in one answer (the paper's multi-candidate
rewriter); ``single`` asks for one rewrite and is sampled ``n`` times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shopsearch.synthesis.llm.base import Message
from shopsearch.synthesis.query_types import QUERY_TYPES

PROMPT_VERSION = "rewrite-v1"
Style = Literal["list", "single"]

SYSTEM = (
    "You rewrite online shop search queries into search queries that match how products are described "
    "in a catalogue: product types, attributes, materials, sizes, brands. Keep the shopper's intent and every "
    "constraint. State an exclusion as an explicit attribute (\"without wood legs\" -> \"metal legs\"), never drop "
    "it. Each rewrite is a short search query of 2 to 8 words, not a sentence, and never repeats the original."
)
FORMAT = {
    "list": "Answer with a numbered list of {n} different rewrites, one per line, and nothing else.",
    "single": "Answer with one rewrite on one line, and nothing else.",
}
GUIDANCE: dict[str, str] = {
    "qa": "The query is a question: rewrite it into the products that answer it.",
    "negative": "The query excludes something: keep the exclusion in every rewrite, as the attribute wanted "
                "instead or as \"no X\" / \"X-free\".",
    "alternative": "The query wants something instead of a named product or brand: name the product type and "
                   "its key features, not the brand it wants to avoid.",
    "knowledge": "The query names a need, occasion or person, not a product: rewrite it into the product types "
                 "and attributes that meet the need.",
    "plain": "The query names a product: rewrite it with the words a catalogue would use (synonyms, attributes).",
}


@dataclass(frozen=True)
class Example:
    query: str
    rewrites: tuple[str, ...]


FEW_SHOT: dict[str, tuple[Example, ...]] = {
    "qa": (
        Example("what do I need to hang a heavy mirror", (
            "heavy duty picture hanging kit", "wall anchors 50 lb", "heavy duty mirror hanging hooks",
            "drywall anchors and screws kit", "french cleat mirror hanger")),
        Example("how to unclog a bathroom sink", (
            "drain snake auger", "sink plunger", "drain clog remover gel", "hair catcher drain cleaning tool",
            "sink drain cleaner")),
        Example("what goes in a first aid kit for hiking", (
            "hiking first aid kit", "blister plasters", "elastic bandage wrap", "emergency foil blanket",
            "compact outdoor trauma kit")),
    ),
    "negative": (
        Example("sofa without wood legs", (
            "sofa with metal legs", "sofa no wood legs", "upholstered sofa chrome legs",
            "sofa black metal frame legs", "floor sofa no legs")),
        Example("shampoo that doesn't have sulfates", (
            "sulfate-free shampoo", "sulphate free shampoo", "sls free shampoo", "gentle shampoo no sulfates",
            "sulfate-free moisturizing shampoo")),
        Example("rug not wool", (
            "polypropylene area rug", "cotton rug", "polyester rug no wool", "jute rug", "washable synthetic rug")),
    ),
    "alternative": (
        Example("cheaper alternative to a dyson", (
            "cordless stick vacuum", "budget cordless vacuum cleaner", "bagless cyclone vacuum",
            "stick vacuum with hepa filter", "lightweight cordless vacuum")),
        Example("something like airpods but for android", (
            "true wireless earbuds", "bluetooth earbuds android", "wireless earbuds with charging case",
            "in ear bluetooth headphones", "noise cancelling wireless earbuds")),
        Example("kitchenaid mixer dupe", (
            "tilt head stand mixer", "5 quart stand mixer", "stand mixer with dough hook",
            "budget stand mixer", "stand mixer stainless steel bowl")),
    ),
    "knowledge": (
        Example("gift for a dinosaur-loving 5 year old", (
            "dinosaur toy set", "dinosaur building blocks ages 4-6", "dinosaur plush toy",
            "dinosaur jigsaw puzzle kids", "t-rex remote control toy")),
        Example("summer moisturizer for oily skin", (
            "oil-free gel moisturizer", "lightweight moisturizer oily skin", "mattifying moisturizer spf 30",
            "water gel face cream", "non-comedogenic face lotion")),
        Example("shoes for running on muddy trails", (
            "trail running shoes", "waterproof trail runners", "trail shoes deep lugs",
            "gore-tex trail running shoes", "grippy off road running shoes")),
    ),
    "plain": (
        Example("cordless drill", (
            "20v cordless drill driver", "cordless power drill with battery", "brushless drill driver kit",
            "lithium ion cordless drill", "compact drill driver")),
        Example("white subway tile", (
            "white ceramic subway tile 3x6", "glossy white wall tile", "white metro tile",
            "white porcelain subway tile", "white kitchen backsplash tile")),
        Example("led bulb e26 warm", (
            "e26 led bulb warm white", "led light bulb 2700k e26", "a19 led bulb soft white",
            "dimmable e26 led bulb warm", "60w equivalent led bulb e26")),
    ),
}


def _ask(query: str, n: int, style: Style) -> str:
    what = "one rewrite" if style == "single" else f"{n} rewrites"
    return f"Query: {query}\nWrite {what}."


def _answer(example: Example, n: int, style: Style) -> str:
    if style == "single":
        return example.rewrites[0]
    return "\n".join(f"{i}. {r}" for i, r in enumerate(example.rewrites[:n], start=1))


def build_messages(query: str, query_type: str = "plain", n: int = 5, *, style: Style = "list",
                   shots: int = 2) -> list[Message]:
    """Chat messages asking for ``n`` rewrites (``list``) or one (``single``) of ``query``.

    The system message holds the task, the format and the type's guidance; ``shots`` examples of the
    same type follow as user/assistant turns (small chat models copy a demonstrated format far more
    reliably than a described one); an unknown type is treated as ``plain``. Examples show
    ``min(n, 5)`` rewrites each.
    """
    if style not in FORMAT:
        raise ValueError(f"style must be 'list' or 'single', got {style!r}")
    qtype = query_type if query_type in QUERY_TYPES else "plain"
    shown = max(1, min(n, 5))
    system = f"{SYSTEM} {GUIDANCE[qtype]} {FORMAT[style].format(n=n)}"
    messages: list[Message] = [{"role": "system", "content": system}]
    for example in FEW_SHOT[qtype][: max(0, shots)]:
        messages.append({"role": "user", "content": _ask(example.query, shown, style)})
        messages.append({"role": "assistant", "content": _answer(example, shown, style)})
    messages.append({"role": "user", "content": _ask(query, n, style)})
    return messages
