"""Team-draft interleaving of two rankings, and credit from clicks.

Team draft (Radlinski, Kurup & Joachims, "How does clickthrough data reflect retrieval quality?",
CIKM 2008): like two captains picking players, the team with fewer picks so far (a coin flip on a
tie) adds its highest-ranked product not yet in the merged list. Each position remembers the team
that picked it; a click credits that team. Under "no preference" (clicks independent of team) each
team is equally likely to win an impression, which the preference test in
:mod:`shopsearch.experiments.analysis` relies on.

The coin flips are seeded by the query and the unit, so a shopper who repeats a search sees the same
page, and the serving process, a replay and the analysis agree on the teams.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Team = Literal["a", "b"]


@dataclass(frozen=True)
class Interleaved:
    """The merged list and, position by position, the team (``"a"`` or ``"b"``) that contributed it."""

    ids: list[str]
    teams: list[Team]

    def team_of(self, product_id: str) -> Team | None:
        """The team of a shown product, None when it was not shown."""
        for pid, team in zip(self.ids, self.teams, strict=True):
            if pid == product_id:
                return team
        return None


def interleaving_seed(query: str, unit_id: str) -> int:
    """The coin-flip seed of one (query, unit): 64 bits of SHA-256, stable across processes
    (Python's ``hash`` of a string is salted per process and would not be)."""
    digest = hashlib.sha256(f"{query}\x1f{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def team_draft(a: Sequence[str], b: Sequence[str], query: str, unit_id: str, k: int | None = None) -> Interleaved:
    """Team-draft interleaving of rankings ``a`` and ``b`` (product ids, best first).

    Stops at ``k`` products (default ``len(a) + len(b)``) or, as in the paper, when either team has
    nothing left to add (so no position is filled without a fair pick). Duplicates within a list
    and empty ids (padding) are skipped. Deterministic for a given (query, unit_id).
    """
    rng = random.Random(interleaving_seed(query, unit_id))
    lists = ([p for p in a if p], [p for p in b if p])
    limit = len(lists[0]) + len(lists[1]) if k is None else k
    ids: list[str] = []
    teams: list[Team] = []
    shown: set[str] = set()
    cursor = [0, 0]
    picks = [0, 0]

    def next_new(t: int) -> str | None:
        lst = lists[t]
        while cursor[t] < len(lst) and lst[cursor[t]] in shown:
            cursor[t] += 1
        return lst[cursor[t]] if cursor[t] < len(lst) else None

    while len(ids) < limit:
        heads = (next_new(0), next_new(1))
        if heads[0] is None or heads[1] is None:
            break
        # the team behind picks; on a tie a fair coin decides who picks first
        t = 0 if picks[0] < picks[1] or (picks[0] == picks[1] and rng.random() < 0.5) else 1
        pid = heads[t]
        assert pid is not None
        ids.append(pid)
        teams.append("a" if t == 0 else "b")
        shown.add(pid)
        picks[t] += 1
    return Interleaved(ids, teams)


@dataclass(frozen=True)
class Credit:
    """Distinct clicked products credited to each team on one interleaved impression."""

    a: int
    b: int

    @property
    def winner(self) -> Team | None:
        """``"a"``/``"b"`` for the team with more credited clicks, None for a tie (also no clicks)."""
        return "a" if self.a > self.b else "b" if self.b > self.a else None


def credit(interleaved: Interleaved, clicked: Iterable[str]) -> Credit:
    """Count each distinct clicked product once for the team that contributed it; clicks on
    products that were not shown are ignored."""
    team = dict(zip(interleaved.ids, interleaved.teams, strict=True))
    hits = [team[p] for p in set(clicked) if p in team]
    return Credit(a=hits.count("a"), b=hits.count("b"))
