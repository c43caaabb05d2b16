"""Two systems' rankings of the same judged queries, with the grade of every shown product.

The input of the click-model simulator: from two runs (TREC files or ``{query_id: [product_id,
...]}``), from two grade arrays, or from two retrieval systems built over a dataset. Products a run
shows that nobody judged get ``unjudged_grade`` (0, as the ``full`` evaluation protocol counts them);
empty slots (a run with fewer than ``k`` products) get grade -1 and are not shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shopsearch.data.errors import DataError
from shopsearch.data.schema import Dataset, Judgments, Queries

NOT_SHOWN = -1


@dataclass
class Rankings:
    """Rankings of systems ``a`` (index 0) and ``b`` (index 1) for ``n`` queries, top ``k``.

    ``ids`` and ``grades`` have shape (2, n, k); ``weights`` is the probability that a search is
    for each query (its traffic share; uniform when traffic is unknown).
    """

    query_ids: np.ndarray
    texts: np.ndarray
    weights: np.ndarray
    ids: np.ndarray
    grades: np.ndarray
    systems: tuple[str, str]
    max_grade: int
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.query_ids)
        if self.ids.shape != self.grades.shape or self.ids.ndim != 3 or self.ids.shape[:2] != (2, n):
            raise ValueError(f"ids {self.ids.shape} and grades {self.grades.shape} must both be (2, {n}, k)")
        if n == 0:
            raise DataError("no query has a ranking from both systems and judgments: nothing to simulate")
        w = np.asarray(self.weights, dtype=np.float64)
        if w.shape != (n,) or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("weights must be n finite non-negative numbers with a positive sum")
        self.weights = w / w.sum()

    @property
    def k(self) -> int:
        return int(self.ids.shape[2])

    def __len__(self) -> int:
        return len(self.query_ids)

    def grade_lookup(self) -> list[dict[str, int]]:
        """Per query: product id -> grade, over both systems' shown products (for interleaved pages)."""
        out = []
        for q in range(len(self)):
            d: dict[str, int] = {}
            for side in (0, 1):
                for pid, g in zip(self.ids[side, q], self.grades[side, q], strict=True):
                    if pid:
                        d[str(pid)] = int(g)
            out.append(d)
        return out


def rankings_from_runs(
    run_a: Mapping[str, Sequence[str]],
    run_b: Mapping[str, Sequence[str]],
    judgments: Judgments,
    queries: Queries | None = None,
    *,
    k: int = 10,
    systems: tuple[str, str] = ("a", "b"),
    unjudged_grade: int = 0,
) -> Rankings:
    """Rankings of the judged queries that both runs rank (others are counted in ``notes``)."""
    qrels = judgments.qrels()
    both = [q for q in qrels if q in run_a and q in run_b]
    notes = []
    for name, run in zip(systems, (run_a, run_b), strict=True):
        missing = sum(1 for q in qrels if q not in run)
        if missing:
            notes.append(f"{missing} judged queries have no ranking from {name}: not simulated")
    unjudged = [q for q in set(run_a) | set(run_b) if q not in qrels]
    if unjudged:
        notes.append(f"{len(unjudged)} ranked queries have no judgments: not simulated")
    n = len(both)
    ids = np.full((2, n, k), "", dtype=object)
    grades = np.full((2, n, k), NOT_SHOWN, dtype=np.int64)
    for side, run in enumerate((run_a, run_b)):
        for i, q in enumerate(both):
            shown = [str(p) for p in run[q] if p][:k]
            ids[side, i, : len(shown)] = shown
            grades[side, i, : len(shown)] = [qrels[q].get(p, unjudged_grade) for p in shown]
    texts, weights = np.array(both, dtype=object), np.ones(n)
    if queries is not None:
        table = queries.df.set_index("query_id")
        found = table["text"].reindex(both).to_numpy(dtype=object)
        texts = np.array([t if isinstance(t, str) and t.strip() else q for t, q in zip(found, both, strict=True)],
                         dtype=object)
        traffic = table["traffic"].reindex(both).to_numpy(dtype=np.float64)
        if n and np.all(np.isfinite(traffic)) and np.all(traffic > 0):
            weights = traffic
            notes.append("searches drawn in proportion to each query's traffic")
        else:
            notes.append("traffic unknown for some queries: every query searched equally often")
    return Rankings(np.array(both, dtype=object), texts, weights, ids, grades, systems,
                    judgments.scheme.max_grade, notes)


def rankings_from_grades(
    grades_a: np.ndarray,
    grades_b: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    max_grade: int | None = None,
    systems: tuple[str, str] = ("a", "b"),
) -> Rankings:
    """Rankings given as grade arrays (n_queries, k), -1 for an empty slot. Product ids are made
    up per query and grade, so the same grade at the same query is the same product in both systems
    (which interleaving needs to see overlap) as long as a grade appears once per list."""
    ga, gb = np.asarray(grades_a, dtype=np.int64), np.asarray(grades_b, dtype=np.int64)
    if ga.shape != gb.shape or ga.ndim != 2:
        raise ValueError(f"grade arrays must have one (n_queries, k) shape, got {ga.shape} and {gb.shape}")
    n, k = ga.shape
    grades = np.stack([ga, gb])
    ids = np.full(grades.shape, "", dtype=object)
    for side in (0, 1):
        for q in range(n):
            seen: dict[int, int] = {}
            for r in range(k):
                g = int(grades[side, q, r])
                if g >= 0:
                    seen[g] = seen.get(g, 0) + 1
                    ids[side, q, r] = f"q{q}-g{g}-{seen[g]}"
    qids = np.array([f"q{q}" for q in range(n)], dtype=object)
    top = int(max(grades.max(), 1)) if max_grade is None else max_grade
    return Rankings(qids, qids.copy(), np.ones(n) if weights is None else weights, ids, grades, systems, top)


def rankings_from_trec(path_a: str | Path, path_b: str | Path, dataset: Dataset, *, k: int = 10) -> Rankings:
    """Rankings from two TREC run files over a dataset's judged queries."""
    from shopsearch.eval.runs import read_trec_run

    names = (Path(path_a).stem, Path(path_b).stem)
    if names[0] == names[1]:
        names = (f"{names[0]} (a)", f"{names[1]} (b)")
    return rankings_from_runs(read_trec_run(path_a), read_trec_run(path_b), dataset.judgments, dataset.queries,
                              k=k, systems=names)


def rankings_from_systems(
    dataset: Dataset,
    specs: tuple[str, str],
    *,
    k: int = 10,
    index_dir: str | Path | None = None,
    text_fields: Sequence[str] = ("title",),
    show_progress: bool = False,
) -> Rankings:
    """Build two retrieval systems (``bm25``, ``dense``, ``dense:PATH``, ``hybrid`` ...) over the
    dataset's catalogue, as ``shopsearch eval`` does, and rank every judged query with each."""
    from shopsearch.data.render import ProductTextRenderer
    from shopsearch.eval.pipeline import systems_from_index
    from shopsearch.retrieval.systems import build_systems

    unique = list(dict.fromkeys(specs))  # the same spec twice (an A/A test) is built once
    texts = ProductTextRenderer(fields=tuple(text_fields)).render(dataset.catalog)
    if index_dir is not None:
        systems = systems_from_index(unique, index_dir, texts, dataset.catalog.ids)
    else:
        systems = build_systems(unique, dataset.catalog.ids, texts, show_progress=show_progress)
    by_spec = dict(zip(unique, systems.values(), strict=True))
    judged = list(dict.fromkeys(dataset.judgments.df["query_id"]))
    table = dataset.queries.df.set_index("query_id")["text"]
    qids = [q for q in judged if q in table.index and str(table[q]).strip()]
    runs = []
    for spec in specs:
        result = by_spec[spec].search([str(table[q]) for q in qids], k)
        runs.append({q: [p for p, _ in hits] for q, hits in result.to_run(qids).items()})
    names = (specs[0], specs[1]) if specs[0] != specs[1] else (f"{specs[0]} (a)", f"{specs[1]} (b)")
    return rankings_from_runs(runs[0], runs[1], dataset.judgments, dataset.queries, k=k, systems=names)
