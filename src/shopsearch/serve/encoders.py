"""The service's query encoder: ONNX Runtime when an export matches the index, else torch.

``encoder: auto`` (the default) looks for an ONNX export written by
:func:`shopsearch.models.export_onnx`, in this order: the ``--onnx`` directory, ``INDEX/onnx``,
``INDEX/../onnx``, and ``onnx`` beside the model directory the index was built with (``RUN/onnx``
next to ``RUN/model``). The first one whose source-model fingerprint, dimension and query prefix
match the index is used, int8 unless ``int8: false``; anything else falls back to the
sentence-transformers model the index names. ``encoder: onnx`` makes a missing export an error.

The encoder is opened once, for the first index with a dense part, and kept across reloads: an
index built with another model, dimension, normalisation or prefix is refused
(:class:`IndexMismatchError`) instead of being queried with vectors from the wrong space.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.store import IndexBundle, IndexIntegrityError
from shopsearch.serve.settings import ServeSettings

log = logging.getLogger("shopsearch.serve")


class IndexMismatchError(IndexIntegrityError):
    """A sound index that the serving encoder cannot query: another model, dimension or prefix."""


@dataclass(frozen=True)
class EncoderIdentity:
    """What the serving encoder computes, to compare against each index's manifest."""

    kind: str  # "onnx-int8" | "onnx-fp32" | "torch"
    model_id: str
    fingerprint: str | None
    dimension: int
    normalize: bool
    query_prefix: str
    location: str

    def describe(self) -> dict[str, Any]:
        return asdict(self)


class _SerialisedEncoder:
    """A sentence-transformers encoder behind a lock.

    Hugging Face fast tokenizers re-set truncation/padding on every call and raise "Already
    borrowed" when two threads do that at once, so concurrent requests take turns here. The ONNX
    path needs no lock: its tokenizer is configured once and onnxruntime sessions are thread-safe.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.dimension: int = inner.dimension
        self.normalize: bool = inner.normalize
        self.model_id: str = inner.model_id

    def encode(self, texts: Sequence[str], *, is_query: bool = False, show_progress: bool = False) -> np.ndarray:
        with self._lock:
            return self._inner.encode(texts, is_query=is_query, show_progress=show_progress)


def onnx_candidates(bundle: IndexBundle, settings: ServeSettings) -> list[Path]:
    """Where an ONNX export for this index may be, most specific first."""
    if settings.onnx is not None:
        return [Path(settings.onnx)]
    directory = Path(bundle.directory)
    found = [directory / "onnx", directory.parent / "onnx"]
    model_path = (bundle.manifest.get("dense") or {}).get("model_path")
    if model_path:
        found.append(Path(model_path).parent / "onnx")
    return list(dict.fromkeys(p.resolve() for p in found))


def check_compatible(identity: EncoderIdentity, bundle: IndexBundle) -> None:
    """Refuse (:class:`IndexMismatchError`) an index whose vectors the encoder did not make."""
    d, where = bundle.manifest["dense"], bundle.directory
    serving = f"the serving encoder ({identity.kind}, {identity.model_id})"
    if int(d["dimension"]) != identity.dimension:
        raise IndexMismatchError(f"{where} holds {d['dimension']}-d vectors but {serving} gives {identity.dimension}-d")
    index_fp = d.get("model_fingerprint")
    if identity.fingerprint and index_fp:
        if index_fp != identity.fingerprint:
            raise IndexMismatchError(
                f"{where} was built with model {d['model_id']!r} (fingerprint {index_fp[:12]}…), but {serving} "
                f"has fingerprint {identity.fingerprint[:12]}…: its vectors live in another space"
            )
    elif d["model_id"] != identity.model_id:
        raise IndexMismatchError(f"{where} was built with model {d['model_id']!r}, not {serving}")
    if bool(d.get("normalize", True)) != identity.normalize:
        raise IndexMismatchError(f"{where}: normalize={d.get('normalize')} differs from {serving}")
    prefix = d.get("query_prefix") or ""
    if (prefix or identity.kind == "torch") and prefix != identity.query_prefix:
        raise IndexMismatchError(
            f"{where} expects the query prefix {prefix!r}; {serving} adds {identity.query_prefix!r}"
        )


def _open_onnx(path: Path, bundle: IndexBundle, settings: ServeSettings) -> tuple[Any, EncoderIdentity]:
    from shopsearch.models.onnx_encoder import OnnxQueryEncoder

    enc = OnnxQueryEncoder(path, int8=settings.int8, intra_op_threads=settings.resolved_encoder_threads())
    identity = EncoderIdentity(
        kind=f"onnx-{enc.precision}",
        model_id=str(bundle.manifest["dense"]["model_id"]),
        fingerprint=enc.manifest.get("source_fingerprint"),
        dimension=enc.dimension,
        normalize=True,
        query_prefix=enc.query_prefix,
        location=str(path),
    )
    check_compatible(identity, bundle)
    return enc, identity


def open_query_encoder(bundle: IndexBundle, settings: ServeSettings) -> tuple[Any, EncoderIdentity]:
    """The encoder to serve ``bundle`` with, and its identity (see the module docstring)."""
    d = bundle.manifest["dense"]
    if settings.encoder != "torch":
        problems = []
        for path in onnx_candidates(bundle, settings):
            if not (path / "manifest.json").is_file():
                problems.append(f"{path}: no ONNX export there")
                continue
            try:
                return _open_onnx(path, bundle, settings)
            except ShopsearchError as exc:  # corrupt export, or one of another model
                problems.append(f"{path}: {exc}")
                log.warning("not using the ONNX export at %s: %s", path, exc)
        if settings.encoder == "onnx" or settings.onnx is not None:
            raise ShopsearchError(
                "no usable ONNX export for this index (export one with shopsearch.models.export_onnx, or "
                "serve with --encoder torch): " + "; ".join(problems)
            )
    inner = bundle.encoder()  # the index's own model and settings; its dimension is checked there
    identity = EncoderIdentity(
        kind="torch",
        model_id=str(d["model_id"]),
        fingerprint=d.get("model_fingerprint"),
        dimension=int(inner.dimension),
        normalize=bool(inner.normalize),
        query_prefix=str(d.get("query_prefix") or ""),
        location=str(inner.model_path),
    )
    return _SerialisedEncoder(inner), identity
