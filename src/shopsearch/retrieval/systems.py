"""Named retrieval systems from short specs, as the CLI and config files write them.

``bm25`` | ``dense`` | ``dense:PATH`` (another encoder) | ``hybrid`` (= ``hybrid:weighted``: equal-
weight min-max fusion over the rescored union of both lists, :class:`HybridRetriever`'s default) |
``hybrid:rrf`` (reciprocal rank fusion over the same union) | ``hybrid:coverage`` (the weighted
fusion with BM25's weight scaled per query by the share of the query's words it knows,
``HybridRetriever(weighting="coverage")``: for a model trained on the shop's queries). A hybrid fuses BM25 with the first
dense system of the list (the default encoder when the list has none), so ``--system bm25 --system
dense:my-model --system hybrid`` compares the fused model with its parts. Each product text is
encoded once per encoder. Any spec followed by ``+spell`` (``bm25+spell``, ``hybrid+spell``) is the
same system searched with spelling-corrected queries (:mod:`shopsearch.retrieval.spelling`).
Any spec followed by ``>rerank:PATH@N`` (``hybrid>rerank:runs/ce/model@50``) is that system with its
top N re-ranked by the cross-encoder at PATH, a ``CrossEncoder`` directory or its ONNX export
(:mod:`shopsearch.retrieval.rerank`; N defaults to 50).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import Retriever

if TYPE_CHECKING:
    from shopsearch.retrieval.faiss_index import IndexSpec


SPELL_SUFFIX = "+spell"
RERANK_MARK = ">rerank:"
DEFAULT_RERANK_DEPTH = 50


@dataclass(frozen=True)
class SystemSpec:
    """One parsed ``--system`` value."""

    kind: Literal["bm25", "dense", "hybrid"]
    model: str | None = None  # dense: encoder path or name
    fusion: Literal["rrf", "weighted", "coverage"] = "weighted"  # hybrid
    spell: bool = False  # queries spelling-corrected against the catalogue first
    rerank: str | None = None  # a cross-encoder directory re-ranking this system's top rerank_depth
    rerank_depth: int = DEFAULT_RERANK_DEPTH

    def hybrid_options(self) -> dict[str, Any]:
        """:class:`~shopsearch.retrieval.fusion.HybridRetriever` keyword arguments of a hybrid spec."""
        if self.fusion == "coverage":
            return {"method": "weighted", "weighting": "coverage"}
        return {"method": self.fusion}

    @property
    def name(self) -> str:
        first = self._base_name + SPELL_SUFFIX if self.spell else self._base_name
        if self.rerank is None:
            return first
        return f"{first}{RERANK_MARK}{_model_label(self.rerank)}@{self.rerank_depth}"

    @property
    def first_stage(self) -> SystemSpec:
        """The system without its re-ranker."""
        return replace(self, rerank=None, rerank_depth=DEFAULT_RERANK_DEPTH)

    @property
    def base(self) -> SystemSpec:
        """The first stage without spelling correction."""
        return replace(self.first_stage, spell=False)

    @property
    def _base_name(self) -> str:
        if self.kind == "dense" and self.model:
            return f"dense:{_model_label(self.model)}"
        if self.kind == "hybrid" and self.fusion != "weighted":
            return f"hybrid:{self.fusion}"
        return self.kind


def _model_label(model: str) -> str:
    """A model's short name in system names: a training run's model sits in RUN/model, named after RUN."""
    path = Path(model)
    return path.parent.name if path.name == "model" and path.parent.name else path.name or model


def parse_system(spec: str) -> SystemSpec:
    text = spec.strip()
    first, mark, rerank = text.partition(RERANK_MARK)
    if mark:
        path, at, depth = rerank.rpartition("@")
        if not at or not depth.isdigit():
            path, depth = rerank, str(DEFAULT_RERANK_DEPTH)
        if not path or int(depth) < 1:
            raise ShopsearchError(f"system {spec!r}: write FIRST>rerank:MODEL_PATH@N with N >= 1 (e.g. hybrid>rerank:runs/ce/model@50)")
        return replace(parse_system(first), rerank=path, rerank_depth=int(depth))
    if text.lower().endswith(SPELL_SUFFIX):
        return replace(parse_system(text[: -len(SPELL_SUFFIX)]), spell=True)
    kind, _, arg = text.partition(":")
    kind = kind.lower()
    if kind == "bm25" and not arg:
        return SystemSpec("bm25")
    if kind == "dense":
        return SystemSpec("dense", model=arg or None)
    if kind == "hybrid" and arg in ("", "rrf", "weighted", "coverage"):
        return SystemSpec("hybrid", fusion="weighted" if arg == "" else arg)  # type: ignore[arg-type]
    raise ShopsearchError(
        f"unknown system {spec!r}; use bm25, dense, dense:MODEL_PATH, hybrid, hybrid:rrf or hybrid:coverage, "
        "each optionally followed by +spell and by >rerank:MODEL_PATH@N"
    )


def build_systems(
    specs: Sequence[str | SystemSpec],
    product_ids: np.ndarray,
    texts: Sequence[str],
    *,
    index_spec: IndexSpec | None = None,
    bm25_params: dict | None = None,
    batch_size: int = 64,
    show_progress: bool = True,
) -> dict[str, Retriever]:
    """Build every named system in memory over the given product texts (ids aligned with texts)."""
    from shopsearch.retrieval.bm25 import BM25Retriever
    from shopsearch.retrieval.dense import DenseRetriever
    from shopsearch.retrieval.encoder import SentenceEncoder
    from shopsearch.retrieval.faiss_index import IndexSpec
    from shopsearch.retrieval.fusion import HybridRetriever

    parsed = [s if isinstance(s, SystemSpec) else parse_system(s) for s in specs]
    spec = index_spec if index_spec is not None else IndexSpec()
    bm25: Retriever | None = None
    dense_by_model: dict[str | None, Retriever] = {}

    def get_bm25() -> Retriever:
        nonlocal bm25
        if bm25 is None:
            bm25 = BM25Retriever(product_ids, texts, **(bm25_params or {}))
        return bm25

    def get_dense(model: str | None) -> Retriever:
        if model not in dense_by_model:
            encoder = SentenceEncoder(model, batch_size=batch_size)
            dense_by_model[model] = DenseRetriever.build(
                encoder, product_ids, texts, spec, show_progress=show_progress
            )
        return dense_by_model[model]

    first_dense_model = next((s.model for s in parsed if s.kind == "dense"), None)
    base: dict[str, Retriever] = {}
    for s in dict.fromkeys(s.base for s in parsed):
        if s.kind == "bm25":
            base[s.name] = get_bm25()
        elif s.kind == "dense":
            base[s.name] = get_dense(s.model)
        else:
            base[s.name] = HybridRetriever([get_bm25(), get_dense(first_dense_model)], **s.hybrid_options())
    return with_spelling(parsed, base, texts, product_ids)


def with_spelling(parsed: Sequence[SystemSpec], base: dict[str, Retriever], texts: Sequence[str],
                  product_ids: Sequence[str] | np.ndarray | None = None) -> dict[str, Retriever]:
    """``parsed`` by name, each built on ``base`` (first stages by their names without ``+spell``): the
    ``+spell`` ones behind one spelling corrector built from ``texts``, the ``>rerank:`` ones behind
    their cross-encoder, which reads ``texts`` (aligned with ``product_ids``)."""
    from shopsearch.retrieval.rerank import RerankedRetriever, load_reranker
    from shopsearch.retrieval.spelling import CatalogSpellCorrector, SpellCorrectedRetriever

    corrector = CatalogSpellCorrector(texts) if any(s.spell for s in parsed) else None
    rerankers: dict[str, Any] = {}
    text_of: dict[str, str] | None = None
    systems: dict[str, Retriever] = {}
    for s in parsed:
        if s.name in systems:
            raise ShopsearchError(f"system {s.name!r} given twice")
        first = base[s.base.name]
        if corrector and s.spell:
            first = SpellCorrectedRetriever(first, corrector, s.first_stage.name)
        if s.rerank is None:
            systems[s.name] = first
            continue
        if product_ids is None or len(product_ids) != len(texts):
            raise ValueError("re-ranked systems need the product texts with their ids")
        if text_of is None:
            text_of = {str(p): t for p, t in zip(product_ids, texts, strict=True)}
        if s.rerank not in rerankers:
            rerankers[s.rerank] = load_reranker(s.rerank)
        systems[s.name] = RerankedRetriever(first, rerankers[s.rerank], text_of, depth=s.rerank_depth, name=s.name)
    return systems
