"""Teacher scores for stage-2 distillation (``stage2.distill_weight``): one score in [0, 1] per group product.

Three teachers (``stage2.teacher``), as in RocketQAv2 (Ren et al. 2021) and Hofstätter et al. (2020),
whose point is that the online encoder inherits a stronger ranker's order of products the judgments
never compared:

- ``hybrid``: BM25 + the stage-1 model, each min-max normalised over the group's products and
  averaged with equal weights, as the default hybrid fuses its candidates
  (:func:`~shopsearch.retrieval.fusion.normalize_scores`);
- ``cross_encoder``: a ``shopsearch train-reranker`` model (or its ONNX export) reading each
  (query, product) pair, its logit squashed by the logistic function, so one temperature serves
  every group and a group the cross-encoder finds all irrelevant stays flat;
- ``both``: the mean of the two.

Cross-encoder scores cost minutes on a CPU, so the scores of a run are kept as Parquet
(``stage2/teacher_scores.parquet``: group, query, product_id, score and each component) with a
key of the teacher and the groups, and read back on a rerun whose key matches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.artifacts import atomic_write_parquet
from shopsearch.retrieval.fusion import CandidateScorer, normalize_scores

TEACHERS = ("hybrid", "cross_encoder", "both")
DISTILL_ONLY_LABEL = -2  # losses.distillation.DISTILL_ONLY
CACHE_FILE = "teacher_scores.parquet"
_KEY = b"shopsearch_teacher"


def hybrid_teacher_scores(
    queries: Sequence[str],
    product_ids: Sequence[Sequence[str]],
    scorers: Sequence[CandidateScorer],
    batch_size: int = 256,
) -> list[np.ndarray]:
    """For each query, the equal-weight mean of every scorer's min-max normalised scores of its
    products (each in [0, 1]; a scorer that gives a group equal scores contributes 1 to each)."""
    if len(queries) != len(product_ids):
        raise ValueError(f"{len(queries)} queries but {len(product_ids)} product lists")
    if not scorers:
        raise ValueError("a teacher needs at least one scorer")
    out: list[np.ndarray] = []
    for start in range(0, len(queries), batch_size):
        q = list(queries[start : start + batch_size])
        cands = [list(p) for p in product_ids[start : start + batch_size]]
        width = max((len(c) for c in cands), default=0)
        valid = np.array([[j < len(c) for j in range(width)] for c in cands], dtype=bool).reshape(len(cands), width)
        fused = np.zeros((len(cands), width))
        for scorer in scorers:
            raw = np.zeros((len(cands), width))
            for i, scores in enumerate(scorer.score_candidates(q, cands)):
                raw[i, : len(scores)] = np.asarray(scores, dtype=np.float64)
            fused += normalize_scores(raw, valid, "minmax")[0] / len(scorers)
        out.extend(fused[i, : len(c)] for i, c in enumerate(cands))
    return out


def add_teacher_candidates(groups: pd.DataFrame, retriever: Any, n: int, top_k: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each group extended by the first ``n`` products of ``retriever``'s top ``top_k`` for its query
    that the group does not hold, graded ``DISTILL_ONLY_LABEL``: products no judgment ranks, which
    the distillation term alone learns from (the teacher's knowledge beyond the judged pairs)."""
    if n <= 0 or not len(groups):
        return groups, {"per_group": 0}
    found = retriever.search(groups["query"].astype(str).tolist(), top_k)
    ids, grades, added = [], [], 0
    for i, (pids, gs) in enumerate(zip(groups["product_ids"], groups["grades"], strict=True)):
        have = {str(p) for p in pids}
        extra = [p for p in found.row(i)[0] if p not in have][:n]
        ids.append([*pids, *extra])
        grades.append([*gs, *[DISTILL_ONLY_LABEL] * len(extra)])
        added += len(extra)
    return groups.assign(product_ids=ids, grades=grades), {"per_group": n, "top_k": top_k, "added": added}


def cross_encoder_teacher_scores(
    queries: Sequence[str],
    product_ids: Sequence[Sequence[str]],
    texts: dict[str, str],
    reranker: Any,
    chunk: int = 2048,
    show_progress: bool = True,
) -> list[np.ndarray]:
    """``sigmoid(logit)`` of every (query, product) pair of every group, scored by ``reranker``
    (anything with ``score(queries, texts) -> logits``) in chunks of pairs sorted by length, so each
    forward pass pads little."""
    if len(queries) != len(product_ids):
        raise ValueError(f"{len(queries)} queries but {len(product_ids)} product lists")
    missing = sorted({str(p) for ps in product_ids for p in ps} - set(texts))
    if missing:
        raise ValueError(f"{len(missing)} group product(s) have no text for the cross-encoder, e.g. {missing[:3]}")
    pair_q = [str(q) for q, ps in zip(queries, product_ids, strict=True) for _ in ps]
    pair_t = [texts[str(p)] for ps in product_ids for p in ps]
    order = np.argsort([len(q) + len(t) for q, t in zip(pair_q, pair_t, strict=True)], kind="stable")
    logits = np.zeros(len(pair_q), dtype=np.float64)
    from tqdm.auto import tqdm

    for start in tqdm(range(0, len(order), chunk), desc="cross-encoder teacher", unit="chunk",
                      disable=not show_progress or len(order) <= chunk):
        idx = order[start : start + chunk]
        logits[idx] = reranker.score([pair_q[i] for i in idx], [pair_t[i] for i in idx])
    scores = 1.0 / (1.0 + np.exp(-logits))
    return list(np.split(scores, np.cumsum([len(ps) for ps in product_ids])[:-1]))


def teacher_key(kind: str, model: str | Path | None, queries: Sequence[str],
                product_ids: Sequence[Sequence[str]]) -> dict[str, Any]:
    """What the stored scores depend on: the teacher, its model's weights and the groups."""
    groups = hashlib.sha256()
    for q, ps in zip(queries, product_ids, strict=True):
        groups.update(json.dumps([str(q), [str(p) for p in ps]]).encode())
    weights = None
    if model is not None:
        files = sorted(p for p in Path(model).rglob("*") if p.suffix in {".safetensors", ".onnx", ".bin"})
        weights = hashlib.sha256(b"".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}".encode()
                                          for p in files)).hexdigest()
    return {"kind": kind, "model": None if model is None else str(Path(model).resolve()), "weights": weights,
            "groups": groups.hexdigest(), "n_groups": len(queries)}


def write_teacher_scores(path: Path, key: dict[str, Any], queries: Sequence[str],
                         product_ids: Sequence[Sequence[str]], scores: Sequence[np.ndarray],
                         components: Mapping[str, Sequence[np.ndarray]]) -> None:
    """The scores as Parquet (one row per group product), written beside and renamed into place."""
    import pyarrow as pa

    frame = pd.DataFrame({
        "group": np.repeat(np.arange(len(queries)), [len(ps) for ps in product_ids]),
        "query": [str(q) for q, ps in zip(queries, product_ids, strict=True) for _ in ps],
        "product_id": [str(p) for ps in product_ids for p in ps],
        "score": np.concatenate(scores) if scores else np.zeros(0),
        **{name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in components.items()},
    })
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _KEY: json.dumps(key).encode()})
    atomic_write_parquet(path, table)


def read_teacher_scores(path: Path, key: dict[str, Any]) -> list[np.ndarray] | None:
    """The stored per-group scores when ``path`` holds scores made under ``key``, else None."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return None
    meta = pq.read_schema(path).metadata or {}
    if _KEY not in meta or json.loads(meta[_KEY]) != key:
        return None
    frame = pq.read_table(path, columns=["group", "score"]).to_pandas()
    sizes = np.bincount(frame["group"].to_numpy(), minlength=key["n_groups"])
    return list(np.split(frame["score"].to_numpy(dtype=np.float64), np.cumsum(sizes)[:-1]))


def group_teacher_scores(
    kind: str,
    queries: Sequence[str],
    product_ids: Sequence[Sequence[str]],
    *,
    hybrid: Sequence[CandidateScorer] = (),
    model: str | Path | None = None,
    catalog: Any = None,
    cache: Path | None = None,
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The ``kind`` teacher's scores of every group and statistics for the manifest, read from
    ``cache`` when it holds this teacher's scores of these groups, else computed and stored there.
    ``hybrid``: the BM25 and stage-1 scorers; ``model`` and ``catalog``: the cross-encoder and the
    catalogue its product texts are rendered from (with the fields it was trained on)."""
    if kind not in TEACHERS:
        raise ValueError(f"unknown teacher {kind!r}; one of {', '.join(TEACHERS)}")
    needs_model = kind in ("cross_encoder", "both")
    if needs_model and model is None:
        raise ValueError(f"the {kind} teacher needs a cross-encoder (stage2.teacher_model)")
    key = teacher_key(kind, model if needs_model else None, queries, product_ids)
    stats: dict[str, Any] = {"kind": kind, "model": key["model"], "groups": len(queries)}
    stored = read_teacher_scores(cache, key) if cache is not None else None
    if stored is not None:
        return stored, {**stats, "cached": str(cache), "mean_score": _mean(stored)}
    components: dict[str, list[np.ndarray]] = {}
    if kind in ("hybrid", "both"):
        components["hybrid"] = hybrid_teacher_scores(queries, product_ids, hybrid)
    if model is not None and needs_model:
        from shopsearch.data.render import ProductTextRenderer
        from shopsearch.retrieval.rerank import load_reranker

        reranker = load_reranker(model)
        rendered = ProductTextRenderer(fields=tuple(reranker.text_fields)).render(catalog)
        texts = dict(zip((str(p) for p in catalog.ids), rendered, strict=True))
        components["cross_encoder"] = cross_encoder_teacher_scores(queries, product_ids, texts, reranker)
    parts = list(components.values())
    scores = [np.mean(np.stack(group), axis=0) for group in zip(*parts, strict=True)]
    if cache is not None:
        write_teacher_scores(cache, key, queries, product_ids, scores, components)
        stats["stored"] = str(cache)
    return scores, {**stats, "mean_score": _mean(scores),
                    **{f"mean_{name}": _mean(part) for name, part in components.items()}}


def _mean(scores: Sequence[np.ndarray]) -> float | None:
    return float(np.mean(np.concatenate(scores))) if scores else None
