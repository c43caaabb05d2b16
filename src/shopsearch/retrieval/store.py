"""Index directories: build once, load many times, refuse anything that does not add up.

Layout (every file checksummed in ``manifest.json``, kind ``index``)::

    products.parquet        product ids + display fields (title, brand, color, category, vertical)
    bm25/                   bm25s index files + shopsearch_bm25.json (parameters, product ids)
    dense/vectors.npy       float32 (n, d) product vectors, L2-normalised when the encoder normalises
    dense/index.faiss       FAISS index over those vectors (faiss.write_index)

The manifest also records the encoder (id, path, fingerprint, dimension, normalisation, prefixes),
the renderer settings, the IndexSpec, library versions, build time and throughput (products/s).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from shopsearch.artifacts import ArtifactError, atomic_dir, read_manifest, sha256_file, write_manifest
from shopsearch.data.errors import ShopsearchError
from shopsearch.data.render import ProductTextRenderer
from shopsearch.data.schema import Catalog
from shopsearch.retrieval.base import Retriever
from shopsearch.retrieval.bm25 import PARAMS_FILE as BM25_PARAMS_FILE
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.dense import DenseRetriever
from shopsearch.retrieval.encoder import DEFAULT_MODEL, SentenceEncoder, model_fingerprint, resolve_model
from shopsearch.retrieval.faiss_index import IndexSpec, read_index, write_index
from shopsearch.retrieval.fusion import HybridRetriever

INDEX_KIND = "index"
FORMAT_VERSION = 1
PRODUCTS_FILE = "products.parquet"
BM25_DIR = "bm25"
VECTORS_FILE = "dense/vectors.npy"
FAISS_FILE = "dense/index.faiss"
DISPLAY_COLUMNS = ("product_id", "title", "brand", "color", "category", "vertical")
SYSTEMS = ("bm25", "dense")
# Query vectors a dense retriever keeps (LRU) unless told otherwise; DenseRetriever's own default.
QUERY_CACHE_SIZE = 10_000


class IndexIntegrityError(ArtifactError):
    """An index directory is corrupted, inconsistent, or not the index the caller expected."""


def product_ids_checksum(ids: Sequence[str] | np.ndarray) -> str:
    """SHA-256 of the ordered product ids (JSON-encoded, so no separator can be ambiguous)."""
    return hashlib.sha256(json.dumps([str(x) for x in ids], ensure_ascii=False).encode()).hexdigest()


def _systems(systems: Sequence[str]) -> list[str]:
    wanted = {s.strip().lower() for s in systems}
    if "hybrid" in wanted:  # a hybrid is served from the two component indexes
        wanted |= set(SYSTEMS)
        wanted.discard("hybrid")
    unknown = wanted - set(SYSTEMS)
    if unknown or not wanted:
        raise ShopsearchError(f"unknown or no index systems {sorted(unknown)}; choose from {list(SYSTEMS)}")
    return [s for s in SYSTEMS if s in wanted]


def _display_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)) or value is pd.NA:
        return None
    return str(value)


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def build_index(
    catalog: Catalog,
    out_dir: str | Path,
    *,
    renderer: ProductTextRenderer = ProductTextRenderer(),
    systems: Sequence[str] = SYSTEMS,
    model: str | Path | None = None,
    spec: IndexSpec = IndexSpec(),
    bm25_params: dict[str, Any] | None = None,
    overwrite: bool = True,
    show_progress: bool = True,
    batch_size: int = 64,
    encoder: SentenceEncoder | None = None,
) -> Path:
    """Render the catalogue, build the requested indexes and write them atomically to ``out_dir``.

    A failure at any point leaves a previous index at ``out_dir`` untouched. ``encoder`` reuses an
    already loaded encoder (its settings win over ``model`` / ``batch_size``).
    """
    chosen = _systems(systems)
    if len(catalog) == 0:
        raise ShopsearchError("the catalogue is empty: nothing to index")
    start, started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    ids = catalog.ids
    texts = renderer.render(catalog)
    n = len(ids)
    timings: dict[str, float] = {}
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "systems": chosen,
        "n_products": n,
        "product_ids_sha256": product_ids_checksum(ids),
        "renderer": {
            "fields": list(renderer.fields),
            "labelled": renderer.labelled,
            "max_chars": renderer.max_chars,
            "separator": renderer.separator,
        },
        "build_started": started,
    }
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        products = catalog.df[list(DISPLAY_COLUMNS)].copy()
        for col in DISPLAY_COLUMNS[1:]:  # display fields as text; Parquet needs one type per column
            products[col] = products[col].map(_display_text)
        products.to_parquet(tmp / PRODUCTS_FILE, index=False)
        if "bm25" in chosen:
            t = time.perf_counter()
            bm25 = BM25Retriever(ids, texts, show_progress=show_progress, **(bm25_params or {}))
            bm25.save(tmp / BM25_DIR)
            timings["bm25_build_s"] = round(time.perf_counter() - t, 3)
            timings["bm25_products_per_s"] = _rate(n, timings["bm25_build_s"])
            info["bm25"] = {k: v for k, v in bm25.describe().items() if k != "n_products"}
        if "dense" in chosen:
            import faiss
            import sentence_transformers

            enc = encoder if encoder is not None else SentenceEncoder(model, batch_size=batch_size)
            t = time.perf_counter()
            vectors = enc.encode(texts, show_progress=show_progress)
            timings["encode_s"] = round(time.perf_counter() - t, 3)
            timings["encode_products_per_s"] = _rate(n, timings["encode_s"])
            t = time.perf_counter()
            dense = DenseRetriever(enc, ids, vectors, spec)
            timings["faiss_build_s"] = round(time.perf_counter() - t, 3)
            (tmp / "dense").mkdir()
            np.save(tmp / VECTORS_FILE, dense.vectors, allow_pickle=False)
            write_index(dense.index, tmp / FAISS_FILE)
            info["dense"] = {
                **enc.describe(),
                "index_spec": spec.model_dump(),
                "faiss_class": type(dense.index).__name__,
                "batch_size": enc.batch_size,
                "versions": {
                    "faiss": faiss.__version__,
                    "sentence_transformers": sentence_transformers.__version__,
                },
            }
        timings["total_s"] = round(time.perf_counter() - start, 3)
        info["timings"] = timings
        info["build_seconds"] = timings["total_s"]
        write_manifest(tmp, INDEX_KIND, **info)
    return Path(out_dir)


@dataclass
class IndexBundle:
    """A loaded, checked index directory; retrievers and the encoder are created on first use."""

    directory: Path
    manifest: dict[str, Any]
    product_ids: np.ndarray
    products: pd.DataFrame
    model: str | Path | None = None
    _bm25: BM25Retriever | None = None
    _vectors: np.ndarray | None = None
    _faiss: Any = None
    _encoder: SentenceEncoder | None = None
    _cache: dict[str, Retriever] = field(default_factory=dict)

    @property
    def systems(self) -> list[str]:
        return list(self.manifest.get("systems", []))

    def _need(self, system: str) -> None:
        if system not in self.systems:
            raise ShopsearchError(
                f"index {self.directory} has no {system} part (it holds {self.systems}); rebuild it"
            )

    @property
    def model_location(self) -> str | Path:
        """Where the dense part's model is now: the ``model`` override, the bundled default, or the
        path recorded at build time."""
        self._need("dense")
        return _model_location(self.manifest["dense"], self.model)

    def encoder(self) -> SentenceEncoder:
        """The encoder the index was built with, same settings; its dimension is checked."""
        self._need("dense")
        if self._encoder is None:
            d = self.manifest["dense"]
            enc = SentenceEncoder(
                self.model_location,
                max_seq_length=d.get("max_seq_length"),
                query_prefix=d.get("query_prefix", ""),
                document_prefix=d.get("document_prefix", ""),
                normalize=bool(d["normalize"]),
                batch_size=int(d.get("batch_size", 64)),
            )
            if enc.dimension != d["dimension"]:
                raise IndexIntegrityError(
                    f"{self.directory}: model {enc.model_id} gives {enc.dimension}-d vectors, index holds {d['dimension']}-d"
                )
            self._encoder = enc
        return self._encoder

    def bm25(self) -> BM25Retriever:
        self._need("bm25")
        assert self._bm25 is not None
        return self._bm25

    def dense(self) -> DenseRetriever:
        """The dense retriever with the index's own model, created once and kept on the bundle."""
        self._need("dense")
        if "dense" not in self._cache:
            self._cache["dense"] = self.dense_retriever()
        return self._cache["dense"]  # type: ignore[return-value]

    def dense_retriever(
        self,
        encoder: SentenceEncoder | None = None,
        *,
        query_cache_size: int = QUERY_CACHE_SIZE,
        threads: int | None = None,
    ) -> DenseRetriever:
        """A new dense retriever over this index's vectors and FAISS index (shared, not copied).

        ``encoder`` encodes the queries; by default it is the index's own model (:meth:`encoder`).
        Pass another to query with it: an ONNX export, a wrapper that serialises calls, one encoder
        shared by several indexes. Anything with :class:`SentenceEncoder`'s query interface will do
        (``dimension``, ``normalize``, ``model_id``, ``encode(texts, is_query=True)``). Its dimension
        and normalisation must match the index's (:class:`IndexIntegrityError` otherwise); that it
        is the same *model* is for the caller to check, e.g. by fingerprint as
        :func:`shopsearch.serve.encoders.check_compatible` does. ``query_cache_size`` bounds the
        retriever's LRU of query vectors (0 disables it); ``threads`` its FAISS threads per search
        (None: every CPU available). Unlike :meth:`dense`, nothing is kept on
        the bundle: every call returns a new retriever with its own cache.
        """
        self._need("dense")
        d = self.manifest["dense"]
        if encoder is None:
            encoder = self.encoder()  # checks its dimension itself
        else:
            # A mismatch here would not fail loudly: DenseRetriever would quietly re-normalise the
            # vectors (or not) and return scores on another scale than the index was built for.
            if int(encoder.dimension) != int(d["dimension"]) or bool(encoder.normalize) != bool(d["normalize"]):
                raise IndexIntegrityError(
                    f"{self.directory} holds {d['dimension']}-d vectors (normalize={bool(d['normalize'])}); "
                    f"encoder {encoder.model_id} gives {encoder.dimension}-d (normalize={bool(encoder.normalize)})"
                )
        assert self._vectors is not None  # set by load_index whenever the index has a dense part
        spec = IndexSpec(**d["index_spec"])
        return DenseRetriever(
            encoder,
            self.product_ids,
            self._vectors,
            spec,
            self._faiss,
            query_cache_size=query_cache_size,
            threads=threads,
        )

    def retriever(self, mode: Literal["bm25", "dense", "hybrid"], **hybrid_opts: Any) -> Retriever:
        """``bm25``, ``dense``, or ``hybrid`` (options go to :class:`HybridRetriever`)."""
        if mode == "bm25":
            return self.bm25()
        if mode == "dense":
            return self.dense()
        if mode == "hybrid":
            return HybridRetriever([self.bm25(), self.dense()], **hybrid_opts)
        raise ShopsearchError(f"unknown search mode {mode!r}; use bm25, dense or hybrid")


def _model_location(dense_info: dict[str, Any], override: str | Path | None) -> str | Path:
    if override is not None:
        return override
    if dense_info["model_id"] == DEFAULT_MODEL:
        return DEFAULT_MODEL  # the bundled copy wherever the package is installed now
    return dense_info["model_path"]


def _verify_files(directory: Path, manifest: dict[str, Any]) -> None:
    files = manifest.get("files") or {}
    systems = manifest.get("systems", [])
    required = [PRODUCTS_FILE]
    required += [f"{BM25_DIR}/{BM25_PARAMS_FILE}"] if "bm25" in systems else []
    required += [VECTORS_FILE, FAISS_FILE] if "dense" in systems else []
    for name in required:
        if name not in files:
            raise IndexIntegrityError(f"{directory}: the manifest does not list {name}")
    for name, meta in files.items():
        path = directory / name
        if not path.is_file():
            raise IndexIntegrityError(f"{directory}: {name} is listed in the manifest but missing")
        size = path.stat().st_size
        if size != meta.get("bytes", size):
            raise IndexIntegrityError(
                f"{directory}: {name} has {size} bytes, the manifest says {meta['bytes']} (corrupted)"
            )
        digest = sha256_file(path)
        if digest != meta["sha256"]:
            raise IndexIntegrityError(
                f"{directory}: {name} does not match its checksum (sha256 {digest[:12]}…, manifest {meta['sha256'][:12]}…); "
                "the file is corrupted or was edited: rebuild the index"
            )


def _check_model(
    directory: Path, d: dict[str, Any], expect_model: str | Path | None, model: str | Path | None
) -> None:
    if expect_model is not None:
        want_id, want_path = resolve_model(expect_model)
        if want_id != d["model_id"] and model_fingerprint(want_path) != d.get("model_fingerprint"):
            raise IndexIntegrityError(
                f"{directory} was built with model {d['model_id']!r}, but {str(expect_model)!r} ({want_id}) was expected"
            )
    try:
        _, path = resolve_model(_model_location(d, model))
    except ShopsearchError as exc:
        raise ShopsearchError(
            f"{directory} was built with model {d['model_id']!r}, which cannot be found now ({exc}); "
            "pass its new location (load_index(model=...))"
        ) from exc
    if d.get("model_fingerprint") and model_fingerprint(path) != d["model_fingerprint"]:
        raise IndexIntegrityError(
            f"{directory}: the model files at {path} differ from those the index was built with "
            f"({d['model_id']}); the stored vectors would not match its queries: rebuild the index"
        )


def index_model_location(directory: str | Path) -> str | Path:
    """Where the model of an index's dense part is, from its manifest alone (nothing else loaded)."""
    manifest = read_manifest(Path(directory), kind=INDEX_KIND, verify=False)
    if "dense" not in manifest.get("systems", []):
        raise ShopsearchError(f"index {directory} has no dense part, so no encoder")
    return _model_location(manifest["dense"], None)


def load_index(
    directory: str | Path,
    *,
    verify: bool = True,
    expect_model: str | Path | None = None,
    expect_dimension: int | None = None,
    model: str | Path | None = None,
    mmap: bool = False,
    check_model: bool = True,
) -> IndexBundle:
    """Open an index directory, refusing (:class:`IndexIntegrityError`) a file that fails its
    checksum, product ids that do not match, dimensions that disagree between manifest, vectors,
    FAISS index and model, or a model other than ``expect_model``.

    ``verify=False`` skips the checksums (hashing every file) and the model check, but not the
    structural checks. ``check_model=False`` skips only the model check (that the model the index
    was built with can be found and its files still match the recorded fingerprint), for a
    deployment that ships an ONNX export of the model instead of the model itself and checks the
    export's source fingerprint against the manifest; checksums are still verified. Then
    :meth:`IndexBundle.encoder` (and :meth:`IndexBundle.dense`) would open an unchecked model: pass
    the export to :meth:`IndexBundle.dense_retriever` instead. ``expect_model`` is always checked
    (and needs the model), whatever ``check_model`` says.
    ``model`` points at the encoder directory when it has moved since the build (its fingerprint
    must still match). ``mmap`` memory-maps the vectors, the BM25 arrays and, where FAISS can,
    the FAISS index (see :func:`shopsearch.retrieval.faiss_index.read_index`).
    """
    directory = Path(directory)
    manifest = read_manifest(directory, kind=INDEX_KIND, verify=False)
    if verify:
        _verify_files(directory, manifest)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexIntegrityError(
            f"{directory}: index format {manifest.get('format_version')}, expected {FORMAT_VERSION}"
        )
    products = pd.read_parquet(directory / PRODUCTS_FILE)
    ids = products["product_id"].astype(str).to_numpy(dtype=object)
    if len(ids) != manifest["n_products"] or product_ids_checksum(ids) != manifest["product_ids_sha256"]:
        raise IndexIntegrityError(
            f"{directory}: the product ids in {PRODUCTS_FILE} ({len(ids)}) do not match the manifest "
            f"({manifest['n_products']} ids, checksum {manifest['product_ids_sha256'][:12]}…)"
        )
    bundle = IndexBundle(directory, manifest, ids, products, model=model)
    if "bm25" in bundle.systems:
        try:
            bundle._bm25 = BM25Retriever.load(directory / BM25_DIR, mmap=mmap)
        except ShopsearchError as exc:
            raise IndexIntegrityError(str(exc)) from exc
        if not np.array_equal(bundle._bm25.product_ids, ids):
            raise IndexIntegrityError(
                f"{directory}: the BM25 index lists different product ids than {PRODUCTS_FILE}"
            )
    if (expect_model is not None or expect_dimension is not None) and "dense" not in bundle.systems:
        raise IndexIntegrityError(f"{directory} has no dense part to check the model or dimension against")
    if "dense" in bundle.systems:
        _load_dense(bundle, expect_model, expect_dimension, model, mmap, check_model=verify and check_model)
    return bundle


def _load_dense(
    bundle: IndexBundle,
    expect_model: str | Path | None,
    expect_dimension: int | None,
    model: str | Path | None,
    mmap: bool,
    check_model: bool,
) -> None:
    directory, d, n = bundle.directory, bundle.manifest["dense"], len(bundle.product_ids)
    dim = int(d["dimension"])
    if expect_dimension is not None and expect_dimension != dim:
        raise IndexIntegrityError(f"{directory} holds {dim}-d vectors, {expect_dimension}-d were expected")
    if check_model or expect_model is not None:
        _check_model(directory, d, expect_model, model)
    try:
        vectors = np.load(directory / VECTORS_FILE, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexIntegrityError(f"{directory}: cannot read {VECTORS_FILE}: {exc}") from exc
    if vectors.shape != (n, dim) or vectors.dtype != np.float32:
        raise IndexIntegrityError(
            f"{directory}: {VECTORS_FILE} is {vectors.dtype}{vectors.shape}, the manifest says float32({n}, {dim})"
        )
    try:
        index = read_index(directory / FAISS_FILE, mmap=mmap)
    except ShopsearchError as exc:
        raise IndexIntegrityError(f"{directory}: {exc}") from exc
    if index.d != dim or index.ntotal != n:
        raise IndexIntegrityError(
            f"{directory}: the FAISS index holds {index.ntotal} vectors of dimension {index.d}, "
            f"the manifest says {n} of dimension {dim}"
        )
    bundle._vectors, bundle._faiss = vectors, index
