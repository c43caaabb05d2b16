"""From a dataset and settings to a written report: the library function behind ``shopsearch eval``.

Systems come from a built index directory when one is given (nothing re-encoded), otherwise they
are built in memory over the rendered catalogue. The IDF table for the frequency proxy comes from
the same rendered product texts, so a dataset without traffic counts still gets stated strata.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.config import ShopsearchConfig
from shopsearch.data.errors import ShopsearchError
from shopsearch.data.render import ProductTextRenderer
from shopsearch.data.schema import Dataset
from shopsearch.eval.protocols import evaluate
from shopsearch.eval.report import EvalReport
from shopsearch.eval.strata import StratumConfig, default_tokenizer
from shopsearch.retrieval.base import Retriever
from shopsearch.retrieval.systems import build_systems, parse_system, with_spelling


def term_idf(texts: Sequence[str]) -> dict[str, float]:
    """BM25-style IDF, ``log(1 + (N - df + 0.5) / (df + 0.5))``, of every term of the product texts."""
    df: Counter[str] = Counter()
    for text in texts:
        df.update(set(default_tokenizer(text)))
    n = len(texts)
    return {term: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) for term, d in df.items()}


def systems_from_index(specs: Sequence[str], index_dir: str | Path, texts_fallback: Sequence[str] | None = None,
                       text_ids: Sequence[str] | np.ndarray | None = None) -> dict[str, Retriever]:
    """Named systems served by an index directory. ``dense:MODEL`` specs (another encoder than the
    index's) are encoded in memory over the index's products; a hybrid fuses BM25 with the first
    dense system of the list, as :func:`~shopsearch.retrieval.systems.build_systems` does.
    ``texts_fallback`` are the product texts (for ``dense:MODEL``, ``+spell`` and ``>rerank:``), in the
    index's product order or, with ``text_ids``, in that order of ids."""
    from shopsearch.retrieval.fusion import HybridRetriever
    from shopsearch.retrieval.store import load_index

    bundle = load_index(index_dir)
    if texts_fallback is not None and text_ids is not None:
        text_of = {str(p): t for p, t in zip(text_ids, texts_fallback, strict=True)}
        missing = [str(p) for p in bundle.product_ids if str(p) not in text_of]
        if missing:
            raise ShopsearchError(f"index {index_dir} holds {len(missing)} products the catalogue lacks "
                                  f"(e.g. {missing[0]!r}): evaluate with the catalogue it was built from")
        texts_fallback = [text_of[str(p)] for p in bundle.product_ids]
    parsed = [parse_system(s) for s in specs]
    bases = list(dict.fromkeys(s.base for s in parsed))
    systems: dict[str, Retriever] = {}
    for spec in bases:
        if spec.kind == "bm25" or (spec.kind == "dense" and not spec.model):
            systems[spec.name] = bundle.retriever(spec.kind)
        elif spec.kind == "dense":
            if texts_fallback is None:
                raise ValueError("dense:MODEL systems need the product texts to encode")
            systems.update(build_systems([spec], bundle.product_ids, texts_fallback))
    first_dense = next((s.name for s in bases if s.kind == "dense"), None)
    for spec in bases:
        if spec.kind == "hybrid":
            dense = systems[first_dense] if first_dense else bundle.retriever("dense")
            bm25 = systems.get("bm25") or bundle.retriever("bm25")
            systems[spec.name] = HybridRetriever([bm25, dense], **spec.hybrid_options())
    if any(s.spell or s.rerank for s in parsed) and texts_fallback is None:
        raise ValueError("+spell and >rerank: systems need the product texts")
    return with_spelling(parsed, systems, texts_fallback or [], bundle.product_ids if texts_fallback else None)


def run_evaluation(
    dataset: Dataset,
    settings: ShopsearchConfig,
    *,
    index_dir: str | Path | None = None,
    show_progress: bool = True,
) -> EvalReport:
    """Evaluate the systems of ``settings.eval`` on ``dataset`` and write the requested reports."""
    ev = settings.eval
    renderer = ProductTextRenderer(fields=tuple(settings.data.text_fields))
    texts = renderer.render(dataset.catalog)
    if index_dir is not None:
        systems = systems_from_index(ev.systems, index_dir, texts, dataset.catalog.ids)
    else:
        systems = build_systems(
            ev.systems,
            dataset.catalog.ids,
            texts,
            index_spec=settings.index.index_spec(),
            bm25_params={"k1": settings.index.k1, "b": settings.index.b},
            batch_size=settings.index.batch_size,
            show_progress=show_progress,
        )
    info: dict[str, Any] = {
        "format": dataset.meta.get("format"),
        "synthetic": dataset.synthetic,
        "split": dataset.meta.get("split") or _split_name(dataset.meta.get("sources") or {}),
        "catalog_size": len(dataset.catalog),
        "queries": len(dataset.queries),
        "judgments": len(dataset.judgments),
        "product_text": list(renderer.fields),
        "sources": dataset.meta.get("sources"),
        "bad_rows": dataset.report.counts(),
        "index": str(index_dir) if index_dir is not None else None,
    }
    report = evaluate(
        systems,
        dataset.queries,
        dataset.judgments,
        protocol=ev.protocol,
        metrics=ev.metrics,
        depth=max(ev.depth, _largest_cutoff(ev.metrics)),
        strata=StratumConfig(shares=ev.strata.shares, once_max=ev.strata.once_max, proxy=ev.strata.proxy),
        idf=term_idf(texts),
        baseline=ev.baseline,
        n_resamples=ev.n_resamples,
        seed=ev.seed,
        dataset_info=info,
        show_progress=show_progress,
    )
    if ev.json_out is not None:
        report.write_json(ev.json_out)
    if ev.markdown_out is not None:
        report.write_markdown(ev.markdown_out)
    if ev.html_out is not None:
        report.write_html(ev.html_out)
    return report


def _split_name(sources: dict[str, Any]) -> str | None:
    """``dev`` from ``judgments_dev.csv``: the split is named by the judgments file."""
    match = re.search(r"judgments_([A-Za-z0-9]+)", Path(str(sources.get("judgments", ""))).name)
    return match.group(1) if match else None


def _largest_cutoff(metrics: Sequence[str]) -> int:
    cutoffs = [int(m.split("@", 1)[1]) for m in metrics if "@" in m and m.split("@", 1)[1].isdigit()]
    return int(np.max(cutoffs)) if cutoffs else 1
