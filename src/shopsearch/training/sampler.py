"""A batch sampler that never puts the same product, or the same query, twice in one batch.

In-batch negatives are the other rows' products: a product twice in a batch is a positive for one
row and a false negative for the other, and the same query twice asks the loss to push a query's
own positive away. Paper A requires "a product must not appear twice in one batch".

Why not sentence-transformers' own ``NoDuplicatesBatchSampler`` (6.2) as is? It was checked: it
dedupes the ``str`` of every non-label column value of a row, across columns. That covers texts,
but for our data it is both too strict and too weak, and not replayable:

- too strict: stage-2 group rows pad with ``""`` documents and every padded row shares ``""``,
  so two padded groups could never meet in a batch; any constant column (a weight) would likewise
  serialise the whole epoch;
- too weak: it knows texts only. Training data keyed by ids (``product_id``, ``query_id``, mined
  ``negative_i`` ids) cannot carry those id columns into the trainer (the collator would tokenise
  them as text), so the ids must come from outside the dataset — the ``keys`` argument here;
- length and replay: its ``__len__`` is an estimate and a short pass is topped up by resampling
  rows already seen; it reads one dataset row per duplicate check. Here each epoch's plan is
  computed once, a pure function of ``(seed, epoch, keys)``: ``__len__`` is exact and a resumed
  run (the HF trainer skips the first k batches of the replayed epoch) sees the same batches.

We subclass it so code that checks for a no-duplicates sampler still recognises this one, and
keep its constructor signature so the trainer can build it: pass
``NoDuplicatesBatchSampler.factory(keys=pair_keys(pairs))`` as ``args.batch_sampler``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

try:  # sentence-transformers >= 5.x moved the samplers
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler as _STNoDuplicates
except ImportError:  # pragma: no cover - older sentence-transformers
    from sentence_transformers.sampler import DefaultBatchSampler  # type: ignore[no-redef]
    from sentence_transformers.sampler import NoDuplicatesBatchSampler as _STNoDuplicates  # type: ignore[no-redef]

from shopsearch.training.pairs import normalize_query

RowKeys = frozenset[Hashable]
_NEGATIVE = re.compile(r"^negative_\d+$")
QUERY_COLUMNS: tuple[str, ...] = ("anchor", "query")
LABEL_COLUMNS: tuple[str, ...] = ("label", "labels", "score", "scores")


def pair_keys(pairs: pd.DataFrame, negative_columns: Sequence[str] | None = None) -> list[RowKeys]:
    """Per pair row: its query (id and normalised text) and every product id it carries
    (positive and mined negatives). Rows align with ``pairs_to_columns(pairs, ...)``."""
    negs = (
        [c for c in pairs.columns if _NEGATIVE.match(str(c))]
        if negative_columns is None
        else list(negative_columns)
    )
    qids = pairs["query_id"].astype(str).tolist()
    texts = pairs["query"].map(normalize_query).tolist()
    products = [pairs[c].tolist() for c in ["product_id", *negs]]
    out = []
    for i, (qid, text) in enumerate(zip(qids, texts, strict=True)):
        keys: set[Hashable] = {("qid", qid), ("q", text)}
        keys.update(("p", str(col[i])) for col in products if _present(col[i]))
        out.append(frozenset(keys))
    return out


def group_keys(groups: pd.DataFrame) -> list[RowKeys]:
    """Per stage-2 group row: its query and all its products (every one is an in-batch negative
    for the other groups). Rows align with ``groups_to_columns(groups, ...)``."""
    return [
        frozenset({("qid", str(qid)), ("q", normalize_query(q))} | {("p", str(p)) for p in pids})
        for qid, q, pids in zip(groups["query_id"], groups["query"], groups["product_ids"], strict=True)
    ]


def text_keys(dataset: Any, query_columns: Sequence[str] = QUERY_COLUMNS) -> list[RowKeys]:
    """Keys from a dataset's own text columns when no ids are at hand: query columns in one
    namespace, all other columns (positive, negatives, docs) in the product one; ``""``/None
    (padding) and label columns are not keys."""
    columns = [c for c in _column_names(dataset) if c not in LABEL_COLUMNS and c != "dataset_name"]
    values = {c: list(dataset[c]) for c in columns}
    n = len(dataset)
    return [
        frozenset(
            ("q" if c in query_columns else "p", str(values[c][i])) for c in columns if _present(values[c][i])
        )
        for i in range(n)
    ]


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value) and str(value) != ""


def _column_names(dataset: Any) -> list[str]:
    return list(dataset.column_names if hasattr(dataset, "column_names") else dataset.columns)


class NoDuplicatesBatchSampler(_STNoDuplicates):
    """Batches with no shared key (query or product) between rows; see the module docstring.

    Args:
        dataset: the training dataset (``datasets.Dataset`` or DataFrame); only its length is
            used when ``keys`` are given.
        batch_size, drop_last, valid_label_columns, generator, seed: as the trainer passes them.
            ``generator`` is ignored on purpose: the order depends on ``seed`` and the epoch only.
        keys: one set of hashable keys per row (:func:`pair_keys`, :func:`group_keys`); None ->
            :func:`text_keys` of the dataset.
        clusters: optional topic cluster per row (:func:`~shopsearch.training.topics.
            query_topic_clusters`): the permutation then takes the clusters in a seeded order and
            each cluster's rows in a seeded order, so batches are drawn from one topic at a time
            (topic-aware sampling, TAS).

    Packing is first-fit over a seeded permutation: each row goes to the earliest batch that has
    room and shares no key with it, so conflicting rows are deferred, not dropped. With
    ``drop_last=False`` every row is yielded exactly once per epoch; with ``drop_last=True`` the
    rows of incomplete batches are dropped and counted. ``last_stats`` reports both.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool = False,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int | None = 0,
        *,
        keys: Sequence[RowKeys] | None = None,
        clusters: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        # ST's own __init__ would strip label columns and set up hashing we do not use.
        DefaultBatchSampler.__init__(
            self, dataset, batch_size=batch_size, drop_last=drop_last,
            valid_label_columns=valid_label_columns, generator=generator, seed=0 if seed is None else seed,
        )  # fmt: skip
        self.dataset = dataset
        self.keys: list[RowKeys] = list(text_keys(dataset) if keys is None else keys)
        if len(self.keys) != len(dataset):
            raise ValueError(f"{len(self.keys)} key sets for a dataset of {len(dataset)} rows")
        self.clusters = None if clusters is None else np.asarray(clusters, dtype=np.int64)
        if self.clusters is not None and len(self.clusters) != len(self.keys):
            raise ValueError(f"{len(self.clusters)} cluster ids for a dataset of {len(self.keys)} rows")
        self._plan_cache: tuple[int, list[list[int]], dict[str, Any]] | None = None
        self.last_stats: dict[str, Any] = {}

    @classmethod
    def factory(
        cls, keys: Sequence[RowKeys] | None = None, clusters: Sequence[int] | np.ndarray | None = None
    ) -> Callable[..., NoDuplicatesBatchSampler]:
        """A callable for ``SentenceTransformerTrainingArguments(batch_sampler=...)``."""
        return functools.partial(cls, keys=keys, clusters=clusters)

    def _order(self, rng: np.random.Generator) -> list[int]:
        if self.clusters is None:
            return rng.permutation(len(self.keys)).tolist()
        ids = np.unique(self.clusters)
        order: list[int] = []
        for c in rng.permutation(ids).tolist():
            rows = np.flatnonzero(self.clusters == c)
            order.extend(rows[rng.permutation(len(rows))].tolist())
        return order

    def plan(self, epoch: int | None = None) -> tuple[list[list[int]], dict[str, Any]]:
        """The epoch's batches and stats; computed once per epoch, pure in (seed, epoch, keys)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._plan_cache is not None and self._plan_cache[0] == epoch:
            return self._plan_cache[1], self._plan_cache[2]
        rng = np.random.default_rng([int(self.seed), epoch])
        batches: list[list[int]] = []
        used: list[set[Hashable]] = []
        first_open = deferred = 0
        for idx in self._order(rng):
            row = self.keys[idx]
            b = first_open
            while b < len(batches) and (len(batches[b]) >= self.batch_size or not used[b].isdisjoint(row)):
                b += 1
            deferred += b > first_open and any(len(x) < self.batch_size for x in batches[first_open:b])
            if b == len(batches):
                batches.append([])
                used.append(set())
            batches[b].append(idx)
            used[b].update(row)
            while first_open < len(batches) and len(batches[first_open]) >= self.batch_size:
                first_open += 1
        partial = [bt for bt in batches if len(bt) < self.batch_size]
        if self.drop_last:
            batches = [bt for bt in batches if len(bt) == self.batch_size]
        stats = {
            "epoch": epoch,
            "rows": len(self.keys),
            "batches": len(batches),
            "partial_batches": len(partial),
            "rows_in_partial_batches": sum(map(len, partial)),
            "rows_deferred_by_conflict": int(deferred),
            "rows_dropped": sum(map(len, partial)) if self.drop_last else 0,
        }
        self._plan_cache = (epoch, batches, stats)
        return batches, stats

    def __iter__(self) -> Iterator[list[int]]:
        batches, self.last_stats = self.plan()
        yield from (list(b) for b in batches)

    def __len__(self) -> int:
        return len(self.plan()[0])

    def fingerprint(self) -> str:
        """Identity of the keys, so a resumed run can check it replays the same data."""
        h = hashlib.sha256()
        for row in self.keys:
            h.update(repr(sorted(map(repr, row))).encode())
        if self.clusters is not None:
            h.update(b"clusters" + self.clusters.tobytes())
        return h.hexdigest()[:16]

    def state_dict(self) -> dict[str, Any]:
        """All a resume needs: the plan is a pure function of these."""
        return {"seed": int(self.seed), "epoch": int(self.epoch), "batch_size": self.batch_size,
                "drop_last": self.drop_last, "fingerprint": self.fingerprint()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("fingerprint") != self.fingerprint() or state.get("batch_size") != self.batch_size:
            raise ValueError(
                "sampler state is for other data or another batch size; the epoch would not replay"
            )
        self.seed, self.epoch, self.drop_last = (
            int(state["seed"]),
            int(state["epoch"]),
            bool(state["drop_last"]),
        )
        self._plan_cache = None
