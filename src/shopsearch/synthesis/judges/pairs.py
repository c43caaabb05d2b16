"""(query, product text) pairs from a shop's graded judgments: for training and calibrating judges.

Two uses, one source (METHOD.md part B, step 5: the business classifier is learnt from the shop's own
labels):

- :func:`classifier_training_pairs`: every judged pair with a target label, plus products sampled
  from the catalogue that the query never judged, as easy negatives;
- :func:`judged_pairs`: every judged pair with its grade and the binary "relevant" flag
  (grade >= ``relevant_min``), optionally with sampled unjudged products, for threshold calibration
  and dev evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

from shopsearch.data.render import ProductTextRenderer
from shopsearch.data.schema import Catalog, Dataset
from shopsearch.synthesis.judges.base import JudgeError

LabelMode = Literal["soft", "binary"]


def product_text_map(catalog: Catalog, renderer: ProductTextRenderer | None = None) -> dict[str, str]:
    """product_id -> the rendered text judges see (titles only unless ``renderer`` says otherwise)."""
    texts = (renderer or ProductTextRenderer()).render(catalog)
    return dict(zip(catalog.df["product_id"].tolist(), texts, strict=True))


def _sample_unjudged(
    dataset: Dataset, per_query: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``per_query`` products per query drawn uniformly from the catalogue, never one the query judged.

    Uniform draws from a catalogue of thousands are almost surely irrelevant, which makes them safe
    negatives; products from a retriever's top-k would be harder but often unjudged *relevant* ones.
    """
    columns = ["query_id", "product_id"]
    if per_query <= 0 or len(dataset.queries) == 0:
        return pd.DataFrame(columns=columns)
    all_ids = dataset.catalog.ids
    judged = dataset.judgments.df.groupby("query_id")["product_id"].agg(set).to_dict()
    rows: list[tuple[str, str]] = []
    for qid in dataset.queries.ids:
        seen = judged.get(qid, set())
        if len(all_ids) - len(seen) < per_query:
            continue  # a catalogue too small to hold that many unjudged products for this query
        picked: set[str] = set()
        while len(picked) < per_query:
            for pid in all_ids[rng.integers(0, len(all_ids), size=per_query * 2)]:
                if pid not in seen and pid not in picked and len(picked) < per_query:
                    picked.add(pid)
        rows.extend((str(qid), str(pid)) for pid in sorted(picked))
    return pd.DataFrame(rows, columns=columns)


def _attach_texts(frame: pd.DataFrame, dataset: Dataset, product_texts: Mapping[str, str]) -> pd.DataFrame:
    query_text = dict(zip(dataset.queries.df["query_id"], dataset.queries.df["text"], strict=True))
    missing = sorted(set(frame["product_id"]) - set(product_texts))
    if missing:
        raise JudgeError(
            f"{len(missing)} judged products have no product text (e.g. {missing[:3]}): build the text map "
            "from the same catalogue as the judgments"
        )
    frame = frame.copy()
    frame["query"] = frame["query_id"].map(query_text)
    if frame["query"].isna().any():
        raise JudgeError("some judgments name a query_id that is not in the dataset's queries")
    frame["product_text"] = frame["product_id"].map(product_texts)
    return frame


def classifier_training_pairs(
    dataset: Dataset,
    product_texts: Mapping[str, str],
    *,
    label_mode: LabelMode = "soft",
    unjudged_per_query: int = 2,
    max_pairs: int | None = None,
    seed: int = 13,
) -> pd.DataFrame:
    """Training pairs for the business relevance classifier, shuffled.

    Labels: ``soft`` = grade / max_grade (BCE accepts soft targets), ``binary`` = 1[grade >= relevant_min];
    sampled unjudged products get 0 either way. Columns: query_id, product_id, query, product_text,
    grade (-1 for unjudged), label, judged. ``max_pairs`` keeps a random subset (whole queries are not
    kept together: the classifier scores pairs, not rankings).
    """
    if label_mode not in ("soft", "binary"):
        raise JudgeError(f"label_mode must be 'soft' or 'binary', got {label_mode!r}")
    scheme = dataset.scheme
    if scheme.max_grade <= 0:
        raise JudgeError(f"grade scheme {scheme.name!r} has max_grade {scheme.max_grade}: nothing to learn")
    judged = dataset.judgments.df[["query_id", "product_id", "grade"]].copy()
    if judged.empty:
        raise JudgeError("the dataset has no judgments to train a relevance classifier on")
    if label_mode == "soft":
        judged["label"] = judged["grade"].astype(np.float32) / np.float32(scheme.max_grade)
    else:
        judged["label"] = (judged["grade"] >= scheme.relevant_min).astype(np.float32)
    judged["judged"] = True
    rng = np.random.default_rng(seed)
    extra = _sample_unjudged(dataset, unjudged_per_query, rng)
    extra["grade"] = -1
    extra["label"] = np.float32(0.0)
    extra["judged"] = False
    frame = pd.concat([judged, extra], ignore_index=True) if len(extra) else judged
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if max_pairs is not None and len(frame) > max_pairs:
        frame = frame.iloc[:max_pairs].reset_index(drop=True)
    frame = _attach_texts(frame, dataset, product_texts)
    frame["label"] = frame["label"].astype(np.float32)
    return frame[["query_id", "product_id", "query", "product_text", "grade", "label", "judged"]]


def judged_pairs(
    dataset: Dataset,
    product_texts: Mapping[str, str],
    *,
    unjudged_per_query: int = 0,
    seed: int = 13,
) -> pd.DataFrame:
    """Every judged pair with ``relevant`` = grade >= the scheme's ``relevant_min``.

    With ``unjudged_per_query`` > 0, sampled unjudged products join as non-relevant (``judged`` False,
    grade -1): the mix a judge meets in the pipeline, where most retrieved products were never judged.
    Calibration on judged pairs alone is the stricter test (judged negatives were shown to raters, so
    they are near misses).
    """
    scheme = dataset.scheme
    frame = dataset.judgments.df[["query_id", "product_id", "grade"]].copy()
    frame["judged"] = True
    extra = _sample_unjudged(dataset, unjudged_per_query, np.random.default_rng(seed))
    if len(extra):
        extra["grade"] = -1
        extra["judged"] = False
        frame = pd.concat([frame, extra], ignore_index=True)
    frame = _attach_texts(frame, dataset, product_texts)
    frame["relevant"] = frame["grade"] >= scheme.relevant_min
    return frame[["query_id", "product_id", "query", "product_text", "grade", "relevant", "judged"]]
