"""Stage-2 graded groups per query, and the column layouts the sentence-transformers losses read.

A group is one query with products of at least ``min_grades`` distinct grades, sorted by grade
(best first), at most ``max_per_grade`` per grade and ``max_group_size`` in all. Sizes vary and
grades may be missing (paper A, ROAR): the listwise losses compare each grade with the next lower
PRESENT grade, so a group is useful as soon as two grades are present.

``groups_to_columns`` pads every group to one width G: ``query, doc_1..doc_G`` (padding ``""``) and
``label`` (list of G grades, ``-1`` = padding) — the input of RoarLoss / BradleyTerryLoss /
ListMLELoss (features ``[query, doc_1..doc_G]``, labels ``(B, G)``). ``pairs_to_columns`` gives
``anchor, positive, negative_1..n`` for the stage-1 MaskedInfoNCELoss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shopsearch.data.schema import Dataset

if TYPE_CHECKING:
    import datasets

PADDING_LABEL = -1
# Home Depot mean rating (grades 0..6, r = 1 + g/3) onto four ESCI-like levels: r >= 2.67 (the
# benchmark's "relevant") -> 3, r = 2.33 -> 2, r in {1.67, 2.0} -> 1, r <= 1.33 -> 0. Fewer, wider
# levels give every comparison in the listwise loss a margin the crowd raters actually agreed on.
MEAN_RATING_4_LEVELS: dict[int, int] = {6: 3, 5: 3, 4: 2, 3: 1, 2: 1, 1: 0, 0: 0}


@dataclass(frozen=True)
class GroupConfig:
    """How groups are cut.

    Args:
        max_per_grade: cap per grade, one int for all or grade -> cap (an unlisted grade is
            bounded by ``max_group_size`` only). Which products fill a capped grade: mined hard
            negatives first (they are the informative ones), then a seeded random choice.
        min_grades: queries with fewer distinct grades present are skipped and counted.
        max_group_size: products per group; trimmed round-robin over grades (one of each grade
            in turn), so trimming never removes a grade that was present.
        seed: seed of the random choice.
        collapse: optional grade -> level map applied first (e.g. :data:`MEAN_RATING_4_LEVELS`);
            every judged grade must be mapped.
        min_top_grade: skip groups whose best grade is below this (None: keep). The stage-2
            contrastive term uses the best product as the positive; set this to the scheme's
            relevant grade to forbid e.g. a Complement standing in as the positive.
        hard_negative_grade: grade given to mined hard negatives (unjudged; default the bottom).
    """

    max_per_grade: Mapping[int, int] | int = 4
    min_grades: int = 2
    max_group_size: int = 16
    seed: int = 0
    collapse: Mapping[int, int] | None = None
    min_top_grade: int | None = None
    hard_negative_grade: int = 0

    def cap(self, grades: pd.Series) -> pd.Series:
        if isinstance(self.max_per_grade, Mapping):
            return grades.map(lambda g: self.max_per_grade.get(int(g), self.max_group_size))
        return pd.Series(int(self.max_per_grade), index=grades.index)


def build_groups(
    dataset: Dataset, config: GroupConfig = GroupConfig(), hard_negatives: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per kept query: ``query_id, query, product_ids, grades, size`` (lists best first).

    ``hard_negatives`` (``query_id`` plus ``negative_*`` columns, e.g. from
    :func:`~shopsearch.training.mining.mine_hard_negatives`) adds mined products at
    ``hard_negative_grade`` where the query has no judgment for them (a judgment always wins).
    """
    j = dataset.judgments.df[["query_id", "product_id", "grade"]].copy()
    stats: dict[str, Any] = {"queries_judged": int(j["query_id"].nunique()), "judgments": len(j)}
    in_catalog = j["product_id"].isin(set(dataset.catalog.df["product_id"]))
    stats["dropped_not_in_catalog"] = int((~in_catalog).sum())
    j = j[in_catalog]
    if config.collapse is not None:
        unmapped = sorted(set(j["grade"]) - set(config.collapse))
        if unmapped:
            raise ValueError(f"collapse map has no level for grade(s) {unmapped}")
        j["grade"] = j["grade"].map(lambda g: int(config.collapse[g]))
    j["_mined"] = False
    j = pd.concat([j, _mined_rows(hard_negatives, j, dataset, config, stats)], ignore_index=True)

    rng = np.random.default_rng(config.seed)
    j["_r"] = rng.random(len(j))
    j = j.sort_values(
        ["query_id", "grade", "_mined", "_r"], ascending=[True, False, False, True], kind="stable"
    )
    j["_rank"] = j.groupby(["query_id", "grade"], sort=False).cumcount()
    capped = j["_rank"] < config.cap(j["grade"])
    stats["removed_by_grade_cap"] = int((~capped).sum())
    j = j[capped].sort_values(["query_id", "_rank", "grade"], ascending=[True, True, False], kind="stable")
    sized = j.groupby("query_id", sort=False).cumcount() < config.max_group_size
    stats["removed_by_group_size"] = int((~sized).sum())
    j = j[sized].sort_values(["query_id", "grade", "_rank"], ascending=[True, False, True], kind="stable")

    per_q = j.groupby("query_id", sort=True).agg(
        product_ids=("product_id", list),
        grades=("grade", list),
        n_grades=("grade", "nunique"),
        top=("grade", "max"),
    )
    few = per_q["n_grades"] < config.min_grades
    low = ~few & (per_q["top"] < config.min_top_grade if config.min_top_grade is not None else False)
    text = dataset.queries.df.set_index("query_id")["text"]
    per_q["query"] = per_q.index.map(lambda q: str(text.get(q, "") or "").strip())
    no_text = ~few & ~low & (per_q["query"] == "")
    stats["skipped_few_grades"] = int(few.sum())
    stats["skipped_top_grade_below_min"] = int(low.sum())
    stats["skipped_no_query_text"] = int(no_text.sum())
    per_q = per_q[~few & ~low & ~no_text]
    groups = per_q.reset_index()[["query_id", "query", "product_ids", "grades"]]
    groups["grades"] = groups["grades"].map(lambda gs: [int(g) for g in gs])
    groups["size"] = groups["product_ids"].map(len).astype(int)
    sizes = groups["size"]
    stats.update(
        groups=len(groups),
        size_min=int(sizes.min()) if len(sizes) else 0,
        size_mean=float(sizes.mean()) if len(sizes) else 0.0,
        size_max=int(sizes.max()) if len(sizes) else 0,
        size_histogram={int(k): int(v) for k, v in sizes.value_counts().sort_index().items()},
        grade_counts={
            int(k): int(v)
            for k, v in pd.Series(np.concatenate([[], *groups["grades"]])).value_counts().sort_index().items()
        },
        collapse=None if config.collapse is None else {int(k): int(v) for k, v in config.collapse.items()},
    )
    return groups, stats


def _mined_rows(
    hard_negatives: pd.DataFrame | None,
    judged: pd.DataFrame,
    dataset: Dataset,
    config: GroupConfig,
    stats: dict[str, Any],
) -> pd.DataFrame:
    """Mined negatives as (query_id, product_id, grade, _mined) rows, minus already judged ones."""
    empty = pd.DataFrame({"query_id": [], "product_id": [], "grade": [], "_mined": []}).astype(
        {"_mined": bool}
    )
    for key in ("hard_negatives_added", "hard_negatives_already_judged", "hard_negatives_outside_groups"):
        stats[key] = 0
    if hard_negatives is None or not len(hard_negatives):
        return empty
    cols = [c for c in hard_negatives.columns if str(c).startswith("negative_")]
    long = hard_negatives[["query_id", *cols]].melt(id_vars=["query_id"], value_name="product_id")
    long = long[long["product_id"].notna() & (long["product_id"].astype(str) != "")]
    long = long.astype({"query_id": str, "product_id": str}).drop_duplicates(["query_id", "product_id"])
    usable = long["query_id"].isin(set(judged["query_id"])) & long["product_id"].isin(
        set(dataset.catalog.df["product_id"])
    )
    stats["hard_negatives_outside_groups"] = int((~usable).sum())  # unjudged query or unknown product
    long = long[usable]
    seen = set(zip(judged["query_id"], judged["product_id"], strict=True))
    already = np.array(
        [k in seen for k in zip(long["query_id"], long["product_id"], strict=True)], dtype=bool
    )
    stats["hard_negatives_already_judged"] = int(already.sum())
    long = long[~already]
    stats["hard_negatives_added"] = len(long)
    return long[["query_id", "product_id"]].assign(grade=int(config.hard_negative_grade), _mined=True)


def groups_to_columns(
    groups: pd.DataFrame,
    product_text: Mapping[str, str],
    size: int | None = None,
    teacher: Sequence[Sequence[float] | np.ndarray] | None = None,
) -> datasets.Dataset:
    """``query, doc_1..doc_G, label``: docs padded with ``""``, labels with ``-1``; G = ``size`` or
    the largest group. Row order is the groups' order (so :func:`~shopsearch.training.sampler.group_keys`
    of the same frame aligns). With ``teacher`` (one score per group product), each label is the G
    grades followed by the G teacher scores (padding 0.0), the input of
    :class:`~shopsearch.training.losses.distillation.ListwiseDistillationLoss`."""
    import datasets

    width = int(groups["product_ids"].map(len).max()) if len(groups) else 0
    width = width if size is None else int(size)
    too_big = groups["product_ids"].map(len) > width
    if too_big.any():
        raise ValueError(
            f"{int(too_big.sum())} group(s) exceed size {width}; build them with max_group_size <= size"
        )
    columns: dict[str, list[Any]] = {"query": groups["query"].astype(str).tolist()}
    docs = [
        [_text(product_text, p) for p in pids] + [""] * (width - len(pids)) for pids in groups["product_ids"]
    ]
    for i in range(width):
        columns[f"doc_{i + 1}"] = [row[i] for row in docs]
    columns["label"] = [[int(g) for g in gs] + [PADDING_LABEL] * (width - len(gs)) for gs in groups["grades"]]
    if teacher is not None:
        sizes_match = len(teacher) == len(groups) and all(
            len(t) == len(p) for t, p in zip(teacher, groups["product_ids"], strict=True)
        )
        if not sizes_match:
            raise ValueError("teacher scores must give one score per product of every group")
        columns["label"] = [
            [float(g) for g in label] + [float(t) for t in scores] + [0.0] * (width - len(scores))
            for label, scores in zip(columns["label"], teacher, strict=True)
        ]
    return datasets.Dataset.from_dict(columns)


def pairs_to_columns(
    pairs: pd.DataFrame, product_text: Mapping[str, str], n_negatives: int = 0
) -> datasets.Dataset:
    """``anchor, positive, negative_1..n`` texts, rows in ``pairs`` order. A missing negative is
    an error, not a silent "" (an empty text would enter the loss as a real product): drop short
    rows first with :func:`~shopsearch.training.mining.fill_missing_negatives`, then take sampler keys from
    the same filtered frame."""
    import datasets

    columns: dict[str, list[str]] = {
        "anchor": pairs["query"].astype(str).tolist(),
        "positive": [_text(product_text, p) for p in pairs["product_id"]],
    }
    for i in range(1, n_negatives + 1):
        col = f"negative_{i}"
        if col not in pairs.columns or pairs[col].isna().any():
            missing = int(pairs[col].isna().sum()) if col in pairs.columns else len(pairs)
            raise ValueError(f"{missing} pair(s) lack {col}; fill them first (mining.fill_missing_negatives)")
        columns[col] = [_text(product_text, p) for p in pairs[col]]
    return datasets.Dataset.from_dict(columns)


def _text(product_text: Mapping[str, str], product_id: Any) -> str:
    try:
        return str(product_text[str(product_id)])
    except KeyError:
        raise KeyError(
            f"no rendered text for product {product_id!r}; render the whole catalogue with the index's renderer"
        ) from None
