"""Typo augmentation of training queries: shoppers misspell, and a dense model never shown a
misspelling splits ``frrezer`` into word pieces it has not learnt to map near ``freezer``.

Typo-aware training (Zhuang and Zuccon, "Dealing with Typos for BERT-based Passage Retrieval and
Ranking", EMNLP 2021) replaces a training query by a misspelt copy with some probability, so the
encoder learns to place both near the same products. The edits are theirs — delete, insert,
substitute with a keyboard neighbour, swap adjacent characters — plus joining two words, which Home
Depot queries show too (``exteriorpaint``, ``floorcleaners`` in ``dev``, where 29% of the queries hold
a word that no product title contains).

No library does this on the pairs table with a seeded, per-row record of what changed, so it is
written here; it only rewrites the ``query`` text of a copy of the table, never its ids, so the
no-duplicates sampler still keys each row on the original query id and the judgments are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

EDITS: tuple[str, ...] = ("delete", "insert", "substitute", "swap", "join")

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_POS = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}


def _neighbours(c: str) -> str:
    """Keys next to ``c`` on a QWERTY keyboard (same row and the rows above and below)."""
    if c not in _POS:
        return ""
    r, i = _POS[c]
    out = []
    for dr in (-1, 0, 1):
        rr = r + dr
        if 0 <= rr < len(_ROWS):
            for di in (-1, 0, 1):
                j = i + di
                if (dr, di) != (0, 0) and 0 <= j < len(_ROWS[rr]):
                    out.append(_ROWS[rr][j])
    return "".join(out)


def misspell(
    text: str, rng: np.random.Generator, edits: Sequence[str] = EDITS, min_word_length: int = 4
) -> tuple[str, str]:
    """One typo in ``text``: ``(new_text, edit)``; ``edit`` is ``""`` when no word can take one.

    Character edits go into one alphabetic word of at least ``min_word_length`` letters, never at
    its first letter (shoppers rarely get that wrong); ``join`` removes the space between two
    adjacent words.
    """
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) >= min_word_length and w.isalpha()]
    joinable = [i for i in range(len(words) - 1) if words[i] and words[i + 1]]
    possible = [e for e in edits if (joinable if e == "join" else long_words)]
    if not possible:
        return text, ""
    edit = str(rng.choice(possible))
    if edit == "join":
        i = int(rng.choice(joinable))
        return " ".join([*words[:i], words[i] + words[i + 1], *words[i + 2 :]]), edit
    i = int(rng.choice(long_words))
    w = words[i]
    pos = int(rng.integers(1, len(w)))  # never the first letter
    low = w[pos].lower()
    if edit == "delete":
        w = w[:pos] + w[pos + 1 :]
    elif edit == "insert":
        pool = _neighbours(low) + low  # a neighbouring key, or the same key twice
        w = w[:pos] + str(rng.choice(list(pool))) + w[pos:]
    elif edit == "substitute":
        pool = _neighbours(low) or "aeiou"
        w = w[:pos] + str(rng.choice(list(pool))) + w[pos + 1 :]
    elif edit == "swap":
        pos = min(pos, len(w) - 2)
        a, b = w[pos], w[pos + 1]
        w = w[:pos] + (a if a == b else b + a) + w[pos + 2 :]  # equal letters: drop one instead
    else:
        raise ValueError(f"unknown edit {edit!r}; choose from {EDITS}")
    words[i] = w
    return " ".join(words), edit


@dataclass(frozen=True)
class QueryTypoConfig:
    """``rate``: share of rows whose query is replaced by a misspelt copy (0 = off); ``seed``."""

    rate: float = 0.0
    seed: int = 0
    edits: tuple[str, ...] = EDITS

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"query typo rate must be in [0, 1], got {self.rate}")
        unknown = set(self.edits) - set(EDITS)
        if unknown:
            raise ValueError(f"unknown typo edits {sorted(unknown)}; choose from {EDITS}")


def add_query_typos(pairs: pd.DataFrame, config: QueryTypoConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """A copy of ``pairs`` with the ``query`` text of a seeded ``rate`` share of rows misspelt.

    Returns the table and counts for the manifest: rows drawn, rows changed, and rows per edit (a
    drawn query too short for any edit stays as it was and is counted as ``unchanged``).
    """
    out = pairs.copy()
    stats: dict[str, int] = {"rows": len(out), "drawn": 0, "changed": 0, "unchanged": 0}
    if config.rate == 0.0 or out.empty:
        return out, stats
    rng = np.random.default_rng(config.seed)
    drawn = np.flatnonzero(rng.random(len(out)) < config.rate)
    stats["drawn"] = len(drawn)
    column = out.columns.get_loc("query")
    for row in drawn:
        text, edit = misspell(str(out.iat[row, column]), rng, config.edits)
        if edit:
            out.iat[row, column] = text
            stats["changed"] += 1
            stats[edit] = stats.get(edit, 0) + 1
        else:
            stats["unchanged"] += 1
    return out, stats
