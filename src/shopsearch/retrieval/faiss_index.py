"""FAISS indexes over L2-normalised vectors, all with the inner-product metric (= cosine).

``flat`` is exact and the default: at catalogue sizes up to a few hundred thousand it is fast
enough and leaves nothing to tune. ``hnsw`` and ``ivfpq`` trade recall for speed / memory; their
search-time knobs (efSearch, nprobe) are passed per call so a shared index is never mutated.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shopsearch.data.errors import ShopsearchError

TRAIN_SEED = 1234


class IndexSpec(BaseModel):
    """Which FAISS structure to build and with which parameters.

    ``nlist`` defaults to about ``4 * sqrt(n)`` clusters; ``pq_m`` (sub-quantisers, must divide the
    dimension) defaults to the largest divisor of the dimension not above ``dim / 8``, i.e. 48 for
    384-d vectors: 48 bytes a vector, 8 dimensions per sub-quantiser.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["flat", "hnsw", "ivfpq"] = "flat"
    hnsw_m: int = Field(32, ge=2, description="HNSW: links per node")
    ef_construction: int = Field(200, ge=1, description="HNSW: build-time search breadth")
    ef_search: int = Field(128, ge=1, description="HNSW: query-time search breadth (raised to k if lower)")
    nlist: int | None = Field(None, ge=1, description="IVF: number of clusters")
    pq_m: int | None = Field(None, ge=1, description="PQ: sub-quantisers (must divide the dimension)")
    pq_nbits: int = Field(8, ge=1, le=16, description="PQ: bits per sub-quantiser code")
    nprobe: int = Field(16, ge=1, description="IVF: clusters visited per query")
    train_size: int | None = Field(
        None, ge=1, description="IVF-PQ: training sample size (default: all up to 256*nlist)"
    )
    metric: Literal["inner_product"] = "inner_product"

    def resolved_nlist(self, n: int) -> int:
        return self.nlist if self.nlist is not None else max(1, round(4 * math.sqrt(n)))

    def resolved_pq_m(self, dim: int) -> int:
        if self.pq_m is not None:
            if dim % self.pq_m:
                raise ShopsearchError(f"pq_m={self.pq_m} must divide the vector dimension {dim}")
            return self.pq_m
        target = max(1, dim // 8)
        return max(d for d in range(1, target + 1) if dim % d == 0)


def available_threads() -> int:
    """CPUs this process may run on (respects taskset/cpusets, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def configure_threads(n: int | None = None) -> int:
    """Set FAISS's OpenMP pool. Default: ``SHOPSEARCH_FAISS_THREADS``, else ``OMP_NUM_THREADS``, else
    the CPUs we may use.

    OpenMP otherwise sizes itself from the machine's cores, which in a container with a CPU quota
    means oversubscription and much slower searches. The pool is the process's: FAISS and torch
    share libgomp, so ignoring ``OMP_NUM_THREADS`` here would also widen every torch op after the
    first search (two 1-thread trainings on 2 cores ran 6x slower after their first dev evaluation).
    """
    if n is None:
        env = os.environ.get("SHOPSEARCH_FAISS_THREADS") or os.environ.get("OMP_NUM_THREADS")
        n = int(env) if env and env.strip().isdigit() else available_threads()
    n = max(1, int(n))
    faiss.omp_set_num_threads(n)
    return n


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation into a new float32 array; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def build_faiss_index(vectors: np.ndarray, spec: IndexSpec = IndexSpec()) -> faiss.Index:
    """Build an inner-product index of ``spec.kind`` over ``vectors`` (n, d), ids = row numbers.

    IVF-PQ is trained on a seeded random sample so builds are reproducible; with too few vectors to
    train (fewer than ``nlist`` or ``2**pq_nbits``) it raises a ``ShopsearchError`` naming the fix.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ShopsearchError(f"expected a 2-D array of vectors, got shape {x.shape}")
    d = x.shape[1]
    configure_threads()
    metric = faiss.METRIC_INNER_PRODUCT
    index: faiss.Index
    if spec.kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif spec.kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(d, spec.hnsw_m, metric)
        hnsw.hnsw.efConstruction = spec.ef_construction
        hnsw.hnsw.efSearch = spec.ef_search
        index = hnsw
    else:
        index = _train_ivfpq(x, spec)
    index.add(x)
    return index


def _train_ivfpq(x: np.ndarray, spec: IndexSpec) -> faiss.Index:
    n, d = x.shape
    nlist = spec.resolved_nlist(n)
    pq_m = spec.resolved_pq_m(d)
    need = max(nlist, 2**spec.pq_nbits)
    if n < need:
        raise ShopsearchError(
            f"IVF-PQ needs at least {need} vectors to train (nlist={nlist}, 2**pq_nbits={2**spec.pq_nbits}), "
            f"got {n}; use --kind flat or hnsw, or lower nlist / pq_nbits"
        )
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFPQ(quantizer, d, nlist, pq_m, spec.pq_nbits, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = spec.nprobe
    # 256 points per centroid is where FAISS's k-means stops gaining; more only costs time.
    size = min(n, spec.train_size or max(256 * nlist, need))
    rng = np.random.default_rng(TRAIN_SEED)
    sample = x if size >= n else x[np.sort(rng.choice(n, size=size, replace=False))]
    index.cp.seed = TRAIN_SEED
    index.pq.cp.seed = TRAIN_SEED
    index.cp.verbose = False
    index.train(np.ascontiguousarray(sample))
    return index  # faiss's Python wrapper keeps a reference to the quantizer


def search_params(index: faiss.Index, spec: IndexSpec, k: int) -> Any:
    """Per-call search parameters: efSearch for HNSW (at least k), nprobe for IVF, else None."""
    if isinstance(index, faiss.IndexHNSW):
        # faiss's type stubs lack the SWIG-generated parameter classes and their keywords
        return faiss.SearchParametersHNSW(efSearch=max(spec.ef_search, k))  # type: ignore[attr-defined]
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(nprobe=min(spec.nprobe, index.nlist))  # type: ignore[call-arg]
    return None


def search_index(
    index: faiss.Index, queries: np.ndarray, k: int, spec: IndexSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows and inner products; missing hits (k > ntotal, sparse IVF lists) have row -1."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    k_eff = max(1, min(k, index.ntotal))
    params = search_params(index, spec, k_eff)
    if params is None:
        scores, rows = index.search(q, k_eff)
    else:
        scores, rows = index.search(q, k_eff, params=params)
    if k_eff < k:  # pad here so callers see exactly k columns
        pad = k - k_eff
        rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return rows, scores


def describe_index(index: faiss.Index) -> dict[str, Any]:
    return {"faiss_class": type(index).__name__, "dimension": int(index.d), "ntotal": int(index.ntotal)}


def write_index(index: faiss.Index, path: str | Path) -> None:
    faiss.write_index(index, str(path))


def read_index(path: str | Path, *, mmap: bool = False) -> faiss.Index:
    """Read an index written by :func:`write_index`.

    ``mmap=True`` memory-maps instead of reading into RAM where FAISS supports it. Measured with
    faiss-cpu 1.15: IO_FLAG_MMAP_IFC maps flat storage and IVF inverted lists (RSS stays ~flat);
    HNSW is still read into memory; combining it with IO_FLAG_MMAP fails for IVF.
    """
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
    try:
        return faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        raise ShopsearchError(f"could not read the FAISS index {path}: {str(exc).splitlines()[0]}") from exc
