"""Seeded shopper noise for demo queries: typos, colloquial synonyms, dropped words.

Noise changes the text only. Labels come from the query's structured intent, so a noisy query keeps
its grades — exactly the situation a search engine faces when a shopper types "leathr couch". The
operations are chosen so the words a reader needs to recover the intent survive: negation words are
never dropped, and a synonym swap uses a declared synonym of the same product type.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Function words a hurried shopper leaves out; dropping them keeps the meaning.
DROPPABLE = frozenset(
    ["a", "an", "the", "for", "with", "of", "to", "my", "that", "on", "in", "i", "do", "is", "what", "which"]
)
# Words whose loss would flip or erase a constraint.
PROTECTED = frozenset(["no", "not", "non", "without", "free", "isn't", "aren't"])
# Spelling and register variants shoppers use interchangeably.
WORD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "grey": ("gray",),
    "colour": ("color",),
    "moisturizer": ("moisturiser",),
    "moisturiser": ("moisturizer",),
    "without": ("w/o", "with no"),
    "aluminium": ("aluminum",),
    "men's": ("mens", "men"),
    "women's": ("womens", "ladies"),
    "inch": ("in",),
    "cheaper": ("cheap", "less expensive"),
    "tv": ("telly",),
    "sofa": ("couch",),
    "sneakers": ("trainers",),
    "vacuum": ("hoover",),
    "kids": ("childrens",),
}
OPERATIONS = ("typo", "synonym", "drop")


def typo(word: str, rng: np.random.Generator) -> str:
    """One keyboard slip: swap two adjacent letters, drop a letter, or double a letter."""
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))  # keep the first letter, as most real typos do
    kind = int(rng.integers(3))
    if kind == 0 and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _typo_text(words: list[str], rng: np.random.Generator) -> str | None:
    spots = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not spots:
        return None
    i = spots[int(rng.integers(len(spots)))]
    return " ".join([*words[:i], typo(words[i], rng), *words[i + 1 :]])


def _synonym_text(text: str, noun: str, noun_synonyms: Sequence[str], rng: np.random.Generator) -> str | None:
    if noun and noun_synonyms and f" {noun} " in f" {text} ":
        options = [s for s in noun_synonyms if s != noun]
        if options:
            pick = options[int(rng.integers(len(options)))]
            return f" {text} ".replace(f" {noun} ", f" {pick} ", 1).strip()
    words = text.split()
    spots = [i for i, w in enumerate(words) if w in WORD_SYNONYMS]
    if not spots:
        return None
    i = spots[int(rng.integers(len(spots)))]
    variants = WORD_SYNONYMS[words[i]]
    return " ".join([*words[:i], variants[int(rng.integers(len(variants)))], *words[i + 1 :]])


def _drop_text(words: list[str], rng: np.random.Generator) -> str | None:
    spots = [i for i, w in enumerate(words) if w in DROPPABLE and w not in PROTECTED]
    if not spots or len(words) < 3:
        return None
    i = spots[int(rng.integers(len(spots)))]
    return " ".join(words[:i] + words[i + 1 :])


def add_noise(
    text: str, rng: np.random.Generator, noun: str = "", noun_synonyms: Sequence[str] = ()
) -> tuple[str, str | None]:
    """Apply one noise operation; returns (new text, operation) or (text, None) if none applied.

    ``noun`` is the product noun as it appears in ``text``; ``noun_synonyms`` are the colloquial names
    of the same product type ("couch" for "sofa"), used by the synonym operation.
    """
    words = text.split()
    order = [OPERATIONS[int(i)] for i in rng.choice(3, size=3, replace=False, p=[0.5, 0.25, 0.25])]
    for op in order:
        if op == "typo":
            noisy = _typo_text(words, rng)
        elif op == "synonym":
            noisy = _synonym_text(text, noun, noun_synonyms, rng)
        else:
            noisy = _drop_text(words, rng)
        if noisy and noisy != text:
            return noisy, op
    return text, None
