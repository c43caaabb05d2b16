"""Training the re-ranker: a cross-encoder that re-orders a first stage's top N on the shop's judgments.

Data. For every train query: its judged products with soft targets y = grade / max_grade, and the
first stage's own top ``mining_depth`` products the query never judged, ``negatives_per_query`` of them
drawn at random, with y = 0. These hard negatives are what a re-ranker meets at serving time (random
catalogue products, the relevance classifier's negatives, are too easy to teach an order among the top
50); under the full-corpus protocol an unjudged product counts as grade 0 too. Mined once and stored
with the run as ``pairs.parquet``, so a resumed run trains on exactly the same pairs.

Loss. Binary cross-entropy on the soft targets (sentence-transformers ``BinaryCrossEntropyLoss``):

    L = -mean[ y log sigmoid(s) + (1 - y) log(1 - sigmoid(s)) ]

a pointwise regression onto the grade scale, whose logit orders a query's candidates by expected
grade: the order NDCG@10 with linear gain rewards. ``loss: lambdaloss`` (NDCG-Loss2++, Wang et al.
2018) or ``listnet`` trains listwise instead, over each query's judged and mined pairs together
(sentence-transformers' losses), so the model learns the order within a query rather than the
grade of each pair. The fitting core (length-grouped batches, time
budget) is :mod:`shopsearch.training.cross_encoder`, shared with the synthesis relevance judge.

Selection. ``eval_steps`` apart, the first stage's top ``rerank_depth`` of ``dev_queries`` dev queries is
re-ranked and scored by NDCG@10 under the full-corpus protocol; the best checkpoint is the model kept
(``RUN/model``, a plain ``CrossEncoder(path)`` directory), its dev figure next to the first stage's in
the manifest. Then the weight w of the fusion with the first stage's scores
(:mod:`shopsearch.retrieval.rerank`) is chosen on the same dev queries over ``FUSION_GRID`` (w = 1 is
the cross-encoder alone) and stored with the model, so every consumer of the spec uses it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from shopsearch.artifacts import atomic_dir, atomic_write_text, write_manifest
from shopsearch.data.errors import ShopsearchError
from shopsearch.data.render import ProductTextRenderer
from shopsearch.data.schema import Dataset
from shopsearch.eval.metrics import per_query_metrics
from shopsearch.retrieval.base import NO_ID, Retriever, SearchResult
from shopsearch.retrieval.rerank import FUSION_FILE, RerankedRetriever, order_heads, score_heads
from shopsearch.training.cross_encoder import CrossEncoderFitConfig, fit_cross_encoder, new_cross_encoder

MANIFEST_KIND = "reranker"
PAIRS_FILE = "pairs.parquet"
FUSION_GRID = tuple(round(0.1 * i, 1) for i in range(11))


class RerankerConfig(CrossEncoderFitConfig):
    """Settings of :func:`train_reranker` (defaults sized for Home Depot on 2 CPU cores, 30 minutes)."""

    first_stage: str = Field("hybrid", description="the system whose top products are mined and re-ranked")
    text_fields: tuple[str, ...] = ("title",)
    mining_depth: int = Field(30, ge=1, description="hard negatives come from the first stage's top this many")
    negatives_per_query: int = Field(6, ge=0)
    rerank_depth: int = Field(50, ge=1, description="first-stage hits re-ranked in dev evaluations")
    dev_queries: int | None = Field(400, ge=1, description="dev queries per evaluation (None: all)")
    eval_steps: int | None = Field(None, ge=1, description="steps between dev evaluations (None: the end only)")
    num_layers: int | None = Field(
        None, ge=1, description="keep the base model's bottom this many transformer layers (None: all): "
        "a cheaper re-ranker per pair")
    judge_target_precision: float = Field(
        0.9, gt=0, le=1, description="dev precision the model's threshold as a synthesis judge is calibrated to")


def mine_pairs(dataset: Dataset, first_stage: Retriever, texts: dict[str, str], config: RerankerConfig,
               *, batch_size: int = 256) -> pd.DataFrame:
    """Judged pairs with soft targets plus the first stage's unjudged top products as y = 0, shuffled.

    Columns: query_id, product_id, query, product_text, grade (-1 for mined), label, judged.
    """
    scheme = dataset.scheme
    if scheme.max_grade <= 0:
        raise ShopsearchError(f"grade scheme {scheme.name!r} has max_grade {scheme.max_grade}: nothing to learn")
    judged = dataset.judgments.df[["query_id", "product_id", "grade"]].astype({"query_id": str, "product_id": str})
    seen = judged.groupby("query_id")["product_id"].agg(set).to_dict()
    table = dataset.queries.df.astype({"query_id": str}).set_index("query_id")["text"]
    qids = [q for q in dict.fromkeys(judged["query_id"]) if q in table.index]
    rng = np.random.default_rng(config.seed)
    mined: list[tuple[str, str]] = []
    if config.negatives_per_query:
        for start in range(0, len(qids), batch_size):
            chunk = qids[start:start + batch_size]
            found = first_stage.search([str(table[q]) for q in chunk], config.mining_depth)
            for q, row in zip(chunk, found.ids, strict=True):
                pool = [str(p) for p in row if p != NO_ID and str(p) not in seen.get(q, ())]
                take = min(config.negatives_per_query, len(pool))
                mined.extend((q, pool[j]) for j in sorted(rng.choice(len(pool), size=take, replace=False)))
    negatives = pd.DataFrame(mined, columns=["query_id", "product_id"]).assign(grade=-1)
    frame = pd.concat([judged.assign(judged=True), negatives.assign(judged=False)], ignore_index=True)
    frame["label"] = np.where(frame["judged"], frame["grade"] / scheme.max_grade, 0.0).astype(np.float32)
    frame["query"] = frame["query_id"].map(table).astype(str)
    missing = sorted(set(frame["product_id"]) - set(texts))
    if missing:
        raise ShopsearchError(f"{len(missing)} judged products are not in the catalogue (e.g. {missing[:3]})")
    frame["product_text"] = frame["product_id"].map(texts)
    frame = frame.sample(frac=1.0, random_state=config.seed).reset_index(drop=True)
    return frame[["query_id", "product_id", "query", "product_text", "grade", "label", "judged"]]


def dev_ndcg(system: Retriever, dev: Dataset, query_ids: Sequence[str], k: int = 10) -> float:
    """Mean NDCG@``k`` of ``system`` over ``query_ids`` of ``dev`` under the full-corpus protocol."""
    return result_ndcg(system.search(_query_texts(dev, query_ids), k), dev, query_ids, k)


def _query_texts(dev: Dataset, query_ids: Sequence[str]) -> list[str]:
    table = dev.queries.df.astype({"query_id": str}).set_index("query_id")["text"]
    return [str(table[q]) for q in query_ids]


def result_ndcg(found: SearchResult, dev: Dataset, query_ids: Sequence[str], k: int = 10) -> float:
    """Mean NDCG@``k`` of search results (rows in ``query_ids`` order) under the full-corpus protocol."""
    run = found.to_run(list(query_ids))
    frame = per_query_metrics(run, dev.judgments.qrels(), dev.scheme, [f"ndcg@{k}"], query_ids=query_ids)
    return float(frame[f"ndcg@{k}"].mean())


def train_reranker(
    train: Dataset,
    first_stage: Retriever,
    output: str | Path,
    config: RerankerConfig | None = None,
    *,
    dev: Dataset | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Mine pairs with ``first_stage`` on ``train``, fit the cross-encoder, keep the best on ``dev``.

    Writes ``output/pairs.parquet`` (the mined training pairs), ``output/checkpoints/`` while training
    (``resume`` continues from the last one), ``output/model`` (the kept model, ``CrossEncoder(path)``)
    and ``output/manifest.json``. Returns the manifest's training and dev figures.
    """
    import torch

    config = config or RerankerConfig()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    renderer = ProductTextRenderer(fields=config.text_fields)
    texts = dict(zip(train.catalog.df["product_id"].astype(str), renderer.render(train.catalog), strict=True))
    pairs_path = out / PAIRS_FILE
    start = time.monotonic()
    if resume and pairs_path.is_file():
        pairs = pd.read_parquet(pairs_path)
    else:
        pairs = mine_pairs(train, first_stage, texts, config)
        tmp = pairs_path.with_suffix(".tmp")
        pairs.to_parquet(tmp, index=False)
        tmp.replace(pairs_path)
    mining_s = time.monotonic() - start

    dev_ids: list[str] = []
    if dev is not None:
        judged = list(dict.fromkeys(dev.judgments.df["query_id"].astype(str)))
        rng = np.random.default_rng(config.seed)
        dev_ids = judged if config.dev_queries is None or config.dev_queries >= len(judged) else sorted(
            rng.choice(judged, size=config.dev_queries, replace=False).tolist())
    dev_texts = (dict(zip(dev.catalog.df["product_id"].astype(str), renderer.render(dev.catalog), strict=True))
                 if dev is not None else texts)

    torch.manual_seed(config.seed)  # the new classification head is drawn at construction
    model = new_cross_encoder(config.base_model, max_length=config.max_seq_length, device=config.device,
                              num_layers=config.num_layers)
    history: list[dict[str, Any]] = []

    def evaluate(step: int) -> float:
        scorer = _ModelScorer(model, config.batch_size * 2)
        system = RerankedRetriever(first_stage, scorer, dev_texts, depth=config.rerank_depth)
        assert dev is not None
        value = dev_ndcg(system, dev, dev_ids)
        history.append({"step": step, "ndcg@10": round(value, 6)})
        atomic_write_text(out / "dev_history.json", json.dumps(history, indent=2) + "\n")
        return value

    training = fit_cross_encoder(model, pairs, config, show_progress=show_progress,
                                 checkpoints=out / "checkpoints", resume=resume,
                                 evaluate=evaluate if dev is not None else None, eval_steps=config.eval_steps)
    first_ndcg = dev_ndcg(first_stage, dev, dev_ids) if dev is not None else None
    best = training.pop("best", None)
    if best is not None:
        model.model.load_state_dict(best["state"])
    fusion: dict[str, Any] | None = None
    if dev is not None:  # one first-stage search and one scoring serve the whole grid
        queries = _query_texts(dev, dev_ids)
        found = first_stage.search(queries, config.rerank_depth)
        logits = score_heads(_ModelScorer(model, config.batch_size * 2), queries, found, dev_texts,
                             config.rerank_depth)
        curve = {w: round(result_ndcg(order_heads(found, logits, 10, w), dev, dev_ids), 6) for w in FUSION_GRID}
        weight = max(curve, key=lambda w: (curve[w], w))
        fusion = {"fusion_weight": weight, "dev_ndcg@10": curve[weight], "first_stage": first_stage.name,
                  "rerank_depth": config.rerank_depth, "dev_queries": len(dev_ids),
                  "curve": {str(w): v for w, v in curve.items()}}
    # What a server needs to use the model as trained: the product text it read, the fusion weight.
    settings = {"text_fields": list(config.text_fields), **(fusion or {})}
    with atomic_dir(out / "model", overwrite=True) as tmp:
        model.save_pretrained(str(tmp))
        (Path(tmp) / FUSION_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    figures = {
        "mining_seconds": round(mining_s, 1),
        "pairs": len(pairs), "judged_pairs": int(pairs["judged"].sum()),
        "queries": int(pairs["query_id"].nunique()), **training,
        "dev": None if dev is None else {
            "queries": len(dev_ids), "first_stage_ndcg@10": round(float(first_ndcg or 0.0), 6),
            "reranked_ndcg@10": best["value"] if best else None, "kept_step": best["step"] if best else None,
            "history": history, "fusion": fusion},
    }
    write_manifest(out, MANIFEST_KIND, config=config.model_dump(mode="json"), first_stage=first_stage.name,
                   training=figures, data={"train": train.summary(), "dev": dev.summary() if dev else None})
    return figures


class _ModelScorer:
    """The model being trained as a re-ranker's scorer (eval mode, no gradients, raw logits)."""

    def __init__(self, model: Any, batch_size: int) -> None:
        self.model = model
        self.batch_size = batch_size

    def score(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        import torch

        if not queries:
            return np.zeros(0, dtype=np.float32)
        was_training = self.model.model.training
        try:
            scores = self.model.predict(list(zip(queries, texts, strict=True)), batch_size=self.batch_size,
                                        show_progress_bar=False, activation_fn=torch.nn.Identity(),
                                        convert_to_numpy=True)
        finally:
            self.model.model.train(was_training)
        return np.asarray(scores, dtype=np.float32).reshape(-1)
