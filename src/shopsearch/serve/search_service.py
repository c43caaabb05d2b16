"""One search, from request to response: check the query, rank (cached), filter, attach fields.

**Filters: over-fetch, then filter through the product table.** The FAISS and BM25 indexes know
nothing of verticals or brands, so a filtered search asks the retriever for ``k * overfetch``
candidates, keeps those whose row passes the filter mask (numpy, over the product table's
columns), and asks again for four times as many while fewer than ``k`` pass, up to ``max_fetch``
(or the whole catalogue, if smaller). Why not restrict the search itself: a per-filter FAISS
index (or IDSelector) would need one structure per filter value or a scan per query, and BM25 and
hybrid would need the same again; over-fetching works unchanged for all three modes, costs one
extra retrieval for unselective filters, and is exact whenever the fetch reaches the catalogue
size. The price: a very selective filter on a large catalogue returns the matching products
among the top ``max_fetch`` only, possibly fewer than ``k``; the response reports how many
candidates were scanned (``candidates``).

**Spelling.** With ``spell_correction`` on (the default), query words that no product uses are
corrected to catalogue words first (:class:`~shopsearch.retrieval.spelling.CatalogSpellCorrector`,
+1.0 NDCG@10 for the hybrid on Home Depot `dev`); the response keeps the query as typed and
names the corrected one, and ``spell=false`` searches the query as typed ("search instead for").

**Re-ranking.** A service started with a ``reranker`` re-orders, for a request with
``rerank=true`` (or every request, with ``rerank_default``), the top ``rerank_depth`` hits *after*
filtering with the cross-encoder, fused with the first stage's scores by the weight stored with the
model (:func:`~shopsearch.retrieval.rerank.rerank_row`): all pairs of the request in one batched
call. Filtering first means a filtered request re-ranks ``rerank_depth`` products that pass it.

**Cache.** Ranked rows and scores are cached per index snapshot (LRU, ``cache_size`` entries),
keyed by mode, re-ranking, the query text searched (cleaned, corrected), k and normalised filters; a reload
starts an empty cache with the new index, so a cached answer never outlives the index it came from.
"""

from __future__ import annotations

import time
import unicodedata

import numpy as np

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.rerank import rerank_row
from shopsearch.serve.holder import IndexHolder, ServingIndex
from shopsearch.serve.judgments import JudgmentLookup
from shopsearch.serve.metrics import ServeMetrics
from shopsearch.serve.products import FILTER_FIELDS, filter_key
from shopsearch.serve.schemas import Hit, SearchRequest, SearchResponse
from shopsearch.serve.settings import ServeSettings

# Whitespace controls a pasted query may carry; they become spaces. Every other control
# character (NUL, ESC, DEL, C1 controls) or lone surrogate is refused.
_WHITESPACE_CONTROLS = frozenset("\t\n\r\v\f")
_GROWTH = 4  # each filtered re-fetch asks for this many times more candidates

Ranked = tuple[np.ndarray, np.ndarray, int | None]  # product rows, scores, candidates scanned


class InvalidQueryError(ShopsearchError):
    """A request the service cannot run as given (answered 422)."""


def clean_query(text: str, max_chars: int) -> str:
    """The query as searched: NFC-normalised, whitespace collapsed; refused if empty, too long,
    or carrying control characters."""
    if len(text) > 4 * max_chars:  # bound the work below before looking at every character
        raise InvalidQueryError(f"the query has {len(text)} characters; the limit is {max_chars}")
    bad = [c for c in text if unicodedata.category(c) in ("Cc", "Cs") and c not in _WHITESPACE_CONTROLS]
    if bad:
        raise InvalidQueryError(
            f"the query contains {len(bad)} control character(s) (first U+{ord(bad[0]):04X}); send plain text"
        )
    query = " ".join(unicodedata.normalize("NFC", text).split())
    if not query:
        raise InvalidQueryError("the query is empty; send some text in q")
    if len(query) > max_chars:
        raise InvalidQueryError(f"the query has {len(query)} characters; the limit is {max_chars}")
    return query


class SearchService:
    """Runs searches against whatever index the holder serves at the moment of the request."""

    def __init__(
        self,
        holder: IndexHolder,
        settings: ServeSettings,
        *,
        judgments: JudgmentLookup | None = None,
        metrics: ServeMetrics | None = None,
    ) -> None:
        self.holder = holder
        self.settings = settings
        self.judgments = judgments
        self.metrics = metrics

    def search(self, request: SearchRequest, snapshot: ServingIndex | None = None) -> SearchResponse:
        """Run ``request`` on ``snapshot`` (default: the holder's current index; an A/B arm can
        pass the snapshot of its own holder)."""
        started = time.perf_counter()
        s = self.settings
        if snapshot is None:
            snapshot = self.holder.current  # read once: this request finishes on this index
        k = request.k if request.k is not None else s.k_default
        if k > s.k_max:
            raise InvalidQueryError(f"k={k} exceeds this service's limit of {s.k_max}")
        query = clean_query(request.q, s.max_query_chars)
        correction = snapshot.speller.explain(query) if snapshot.speller is not None and request.spell else None
        searched = correction.corrected if correction is not None else query
        if request.mode not in snapshot.retrievers:
            raise InvalidQueryError(
                f"mode {request.mode!r} is not available: the served index has {snapshot.modes} only"
            )
        rerank = s.rerank_default if request.rerank is None else request.rerank
        if rerank and snapshot.reranker is None:
            raise InvalidQueryError("rerank=true, but this service has no re-ranker (start it with --reranker)")
        filters = {f: str(v) for f in FILTER_FIELDS if (v := getattr(request, f)) is not None and filter_key(v)}
        key = (request.mode, rerank, searched, k, tuple((f, filter_key(v)) for f, v in sorted(filters.items())))
        ranked = snapshot.cache.get(key)
        cached = ranked is not None
        if ranked is None:
            if rerank:
                ranked = self._rerank(snapshot, searched, k, self._rank(snapshot, request.mode, searched,
                                                                         max(k, s.rerank_depth), filters))
            else:
                ranked = self._rank(snapshot, request.mode, searched, k, filters)
            snapshot.cache.put(key, ranked)
        rows, scores, candidates = ranked
        grades = self.judgments.for_query(query) if self.judgments is not None else None
        results = []
        for i, (row, score) in enumerate(zip(rows.tolist(), scores.tolist(), strict=True)):
            fields = snapshot.products.fields(row)
            grade = grades.get(fields["product_id"]) if grades else None
            results.append(Hit(rank=i + 1, score=score, grade=grade, **fields))
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.observe_search(f"{request.mode}+rerank" if rerank else request.mode, cached, seconds)
        return SearchResponse(
            query=query,
            corrected_query=searched if searched != query else None,
            corrections=list(correction.changes) if correction is not None else [],
            mode=request.mode,
            reranked=rerank,
            k=k,
            filters=filters,
            results=results,
            judged=grades is not None,
            cached=cached,
            candidates=candidates,
            index_generation=snapshot.generation,
            took_ms=round(seconds * 1000, 3),
        )

    def _rank(self, snapshot: ServingIndex, mode: str, query: str, k: int, filters: dict[str, str]) -> Ranked:
        """Rows and scores of the top ``k`` (after filtering), best first."""
        retriever = snapshot.retrievers[mode]
        products = snapshot.products
        mask = products.mask(filters)
        if mask is None:
            ids, scores = retriever.search([query], k).row(0)
            return self._finite(products.rows_of(ids), np.asarray(scores, dtype=np.float64), None)
        if not mask.any():
            return np.zeros(0, dtype=np.int64), np.zeros(0), 0
        limit = min(len(products), max(self.settings.max_fetch, k))
        fetch = min(limit, k * self.settings.overfetch)
        while True:
            ids, score_list = retriever.search([query], fetch).row(0)
            rows = products.rows_of(ids)
            keep = (rows >= 0) & mask[np.maximum(rows, 0)]
            # Stop when enough passed, when the fetch covers the limit, or when the retriever ran
            # out of hits (BM25 returns only products sharing a term with the query).
            if keep.sum() >= k or fetch >= limit or len(ids) < fetch:
                break
            fetch = min(limit, fetch * _GROWTH)
        chosen = np.flatnonzero(keep)[:k]
        return self._finite(rows[chosen], np.asarray(score_list, dtype=np.float64)[chosen], len(ids))

    def _rerank(self, snapshot: ServingIndex, query: str, k: int, ranked: Ranked) -> Ranked:
        """The top ``k`` of ``ranked`` with its first ``rerank_depth`` re-ordered by the re-ranker."""
        rows, scores, candidates = ranked
        head = rows[: self.settings.rerank_depth]
        assert snapshot.rerank_texts is not None
        ce = snapshot.reranker.score([query] * len(head), list(snapshot.rerank_texts[head]))
        order, fused = rerank_row(scores, np.asarray(ce), snapshot.reranker.fusion_weight)
        return rows[order][:k], fused[:k], candidates

    @staticmethod
    def _finite(rows: np.ndarray, scores: np.ndarray, candidates: int | None) -> Ranked:
        # JSON has no infinity or NaN; padding is already gone, so this is a guard, not a filter.
        ok = np.isfinite(scores) & (rows >= 0)
        return rows[ok], scores[ok], candidates
