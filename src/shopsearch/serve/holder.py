"""The index being served, and how a new one replaces it without dropping a request.

A :class:`ServingIndex` is an immutable snapshot: the loaded index, its retrievers, its product
table and its own result cache. :class:`IndexHolder` keeps a reference to the current snapshot.
Each request reads that reference once and works on the snapshot it got, so a reload never
changes an index under a running request: :meth:`IndexHolder.reload` opens, checks and warms the
new index completely *beside* the old one, then rebinds the reference (one atomic assignment;
readers take no lock). The old snapshot is freed once the last request holding it finishes.
A new index that fails any check is never installed, so the old one simply keeps serving.

Reloads are serialised among themselves (one lock), never with searches. Memory: during a reload
both indexes are open; with ``mmap`` (the default) most of their bytes are page cache, not heap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import Retriever
from shopsearch.retrieval.fusion import HybridRetriever
from shopsearch.retrieval.spelling import CatalogSpellCorrector
from shopsearch.retrieval.store import IndexBundle, load_index
from shopsearch.serve.encoders import EncoderIdentity, check_compatible, open_query_encoder
from shopsearch.serve.products import ProductTable
from shopsearch.serve.settings import ServeSettings

log = logging.getLogger("shopsearch.serve")
MODES = ("dense", "bm25", "hybrid")


class NotReadyError(ShopsearchError):
    """No index has been loaded yet."""


class ResultCache:
    """A thread-safe LRU map from a search's key to its ranked (ids, scores); size 0 disables it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any:
        if self.size <= 0:
            return None
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


@dataclass(eq=False)
class ServingIndex:
    """One loaded, checked, warmed index; never mutated after it is built (the cache aside)."""

    directory: Path
    bundle: IndexBundle
    generation: int
    retrievers: dict[str, Retriever]
    products: ProductTable
    cache: ResultCache
    encoder: EncoderIdentity | None
    speller: CatalogSpellCorrector | None = None  # None: spelling correction off
    reranker: Any = None  # None: no re-ranking (the same object across reloads, like the encoder)
    rerank_texts: np.ndarray | None = None  # row -> the text the re-ranker reads
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    _encoder_object: Any = None  # the encoder itself, handed on to the next index

    @property
    def modes(self) -> list[str]:
        return [m for m in MODES if m in self.retrievers]

    @property
    def n_products(self) -> int:
        return len(self.products)

    @property
    def size_bytes(self) -> int:
        """Bytes of the index files, as recorded in the manifest."""
        return sum(int(meta.get("bytes", 0)) for meta in (self.bundle.manifest.get("files") or {}).values())

    def describe(self) -> dict[str, Any]:
        """A public description (``GET /info``): names, not server paths or fingerprints."""
        dense = self.bundle.manifest.get("dense") or {}
        model = dense.get("model_id")
        return {
            "name": self.directory.name,
            "generation": self.generation,
            "n_products": self.n_products,
            "modes": self.modes,
            "size_bytes": self.size_bytes,
            "model": Path(model).name if model else None,
            "dimension": dense.get("dimension"),
            "faiss_class": dense.get("faiss_class"),
            "encoder": self.encoder.kind if self.encoder else None,
            "built": self.bundle.manifest.get("build_started"),
            "loaded_at": self.loaded_at,
            "load_seconds": round(self.load_seconds, 3),
            "reranker": self.reranker.name if self.reranker is not None else None,
        }


class IndexHolder:
    """Holds the current :class:`ServingIndex`; see the module docstring for the swap protocol."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self._current: ServingIndex | None = None
        self._reload_lock = threading.Lock()
        self._generation = 0
        self._encoder: Any = None
        self._identity: EncoderIdentity | None = None
        self._reranker: Any = None

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def snapshot(self) -> ServingIndex | None:
        """The current snapshot, or None before the first load (for probes that must not raise)."""
        return self._current

    @property
    def current(self) -> ServingIndex:
        """The snapshot to serve one request from: read it once per request."""
        snapshot = self._current
        if snapshot is None:
            raise NotReadyError("no index is loaded yet (starting up); retry shortly")
        return snapshot

    @property
    def encoder_identity(self) -> EncoderIdentity | None:
        return self._identity

    @property
    def has_encoder(self) -> bool:
        return self._encoder is not None

    def adopt_encoder(self, other: IndexHolder | None) -> None:
        """Query with ``other``'s encoder (None: open one's own on the next load), so holders of
        several indexes built with one model hold one model in memory. The next load still checks
        the index against that encoder and refuses another model (:class:`IndexMismatchError`)."""
        with self._reload_lock:
            if other is None:
                self._encoder, self._identity = None, None
            else:
                self._encoder, self._identity = other._encoder, other._identity

    def reload(self, directory: str | Path | None = None) -> tuple[ServingIndex, ServingIndex | None]:
        """Load ``directory`` (default: the current index's directory again), check it, warm it,
        swap it in; return ``(new, old)``. Raises without touching the current index on failure."""
        with self._reload_lock:
            old = self._current
            if directory is None:
                if old is None:
                    raise NotReadyError("no index directory to re-read: none has been loaded")
                directory = old.directory
            new = self._open(Path(directory))
            if self._encoder is None and new._encoder_object is not None:
                self._encoder, self._identity = new._encoder_object, new.encoder
            self._reranker = new.reranker
            self._generation = new.generation
            self._current = new  # the swap: one reference assignment, atomic for readers
            return new, old

    def _open(self, directory: Path) -> ServingIndex:
        started = time.perf_counter()
        s = self.settings
        # check_model: false (ONNX only) skips the source-model check; the export's source
        # fingerprint is then what ties the queries to the index (encoders.check_compatible)
        bundle = load_index(directory, verify=s.verify, mmap=s.mmap, check_model=s.check_model)
        encoder, identity = self._encoder, self._identity
        retrievers: dict[str, Retriever] = {}
        if "bm25" in bundle.systems:
            retrievers["bm25"] = bundle.bm25()
        if "dense" in bundle.systems:
            if encoder is None:
                encoder, identity = open_query_encoder(bundle, s)
            else:
                assert identity is not None
                check_compatible(identity, bundle)
            # The *serving* encoder (one for every index, so a reload never loads a model again)
            # and a query-vector cache sized like the result cache (cache_size: 0 then really
            # measures the encoder), rather than bundle.dense(): the index's own torch model.
            retrievers["dense"] = bundle.dense_retriever(
                encoder, query_cache_size=s.cache_size, threads=s.search_threads
            )
        if "bm25" in retrievers and "dense" in retrievers:
            retrievers["hybrid"] = HybridRetriever(
                [retrievers["bm25"], retrievers["dense"]],
                method=s.hybrid_method,
                depth=s.hybrid_depth,
                rescore_union=s.hybrid_rescore_union,
                weighting=s.hybrid_weighting,
            )
        reranker, rerank_texts = self._open_reranker(directory, bundle.products)
        # Warm every path before the swap: a broken part fails here, not on a shopper's request,
        # and the first real query does not pay for page faults and lazy initialisation.
        for name, retriever in retrievers.items():
            try:
                retriever.search(["warm up query"], 10)
            except Exception as exc:
                raise ShopsearchError(f"{directory}: the {name} index fails a test search: {exc}") from exc
        if reranker is not None and rerank_texts is not None and len(rerank_texts):
            reranker.score(["warm up query"] * 2, list(rerank_texts[:2]))
        snapshot = ServingIndex(
            directory=directory.resolve(),
            bundle=bundle,
            generation=self._generation + 1,
            retrievers=retrievers,
            products=ProductTable(bundle.products),
            cache=ResultCache(s.cache_size),
            encoder=identity if "dense" in bundle.systems else None,
            # from the display fields (the index keeps no rendered text): ~2 s for 55k products
            speller=CatalogSpellCorrector.from_products(bundle.products) if s.spell_correction else None,
            reranker=reranker,
            rerank_texts=rerank_texts,
            _encoder_object=encoder if "dense" in bundle.systems else None,
        )
        snapshot.load_seconds = time.perf_counter() - started
        log.info(
            "index %s loaded: %d products, modes %s, %.2f s",
            snapshot.directory, snapshot.n_products, snapshot.modes, snapshot.load_seconds,
        )
        return snapshot

    def _open_reranker(self, directory: Path, products: pd.DataFrame) -> tuple[Any, np.ndarray | None]:
        """The re-ranker (loaded once, kept across reloads) and the text it reads for each of the
        index's products, rendered from the fields it was trained on; (None, None) without one."""
        from shopsearch.data.render import ProductTextRenderer
        from shopsearch.data.schema import Catalog
        from shopsearch.retrieval.rerank import load_reranker
        from shopsearch.retrieval.rerank_onnx import is_onnx_cross_encoder

        s = self.settings
        if s.reranker is None:
            return None, None
        reranker = self._reranker
        if reranker is None:
            threads = s.reranker_threads or s.resolved_encoder_threads()
            options = {"intra_op_threads": threads} if is_onnx_cross_encoder(s.reranker) else {}
            reranker = load_reranker(s.reranker, **options)
        # The index keeps the display fields only: a re-ranker trained on more cannot be fed here.
        missing = [f for f in reranker.text_fields if f not in products.columns]
        if missing:
            raise ShopsearchError(
                f"re-ranker {s.reranker} reads the product field(s) {missing}, which the index {directory} "
                f"does not keep (it keeps {[c for c in products.columns if c != 'product_id']}); train the "
                "re-ranker on those fields (train-reranker --text-field)"
            )
        catalog = Catalog(products[["product_id", *reranker.text_fields]].copy())
        texts = ProductTextRenderer(fields=reranker.text_fields).render(catalog)
        return reranker, np.asarray(texts, dtype=object)
