"""Serving an exported encoder: onnxruntime session + fast tokenizer, no torch at run time.

See :mod:`shopsearch.models.export` for what the export contains. The graph outputs the full-width
normalised embedding; the served (Matryoshka) dimension is cut and renormalised here in numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.artifacts import ArtifactError, read_manifest
from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.onnx_session import ort_session

KIND = "onnx-encoder"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "sentence_embedding"


class OnnxQueryEncoder:
    """Encode texts with an exported encoder on onnxruntime (CPU), no torch needed at run time.

    Duck-compatible with :class:`shopsearch.retrieval.encoder.SentenceEncoder` for
    ``DenseRetriever`` (``dimension``, ``normalize``, ``model_id``, ``encode(texts, is_query=...)``).
    ``max_seq_length`` may only shorten the exported limit. The directory is refused (ArtifactError)
    when its manifest is missing, of another kind, fails a checksum, or disagrees with the graph or
    tokenizer it describes.
    """

    normalize = True

    def __init__(
        self,
        onnx_dir: str | Path,
        *,
        int8: bool = True,
        max_seq_length: int | None = None,
        intra_op_threads: int | None = None,
        batch_size: int = 64,
        verify: bool = True,
    ) -> None:
        from tokenizers import Tokenizer

        self.onnx_dir = Path(onnx_dir)
        if not self.onnx_dir.is_dir():
            raise ArtifactError(f"{self.onnx_dir} is not a directory: expected an ONNX export of an encoder")
        self.manifest = m = read_manifest(self.onnx_dir, kind=KIND, verify=verify)
        precision = "int8" if int8 else "fp32"
        name = m.get("files_by_precision", {}).get(precision)
        if name is None:
            raise ArtifactError(f"{self.onnx_dir} has no {precision} model (exported without it?)")
        self.precision = precision
        self.model_id = f"onnx-{precision}:{m.get('source_model')}"
        self.batch_size = int(batch_size)
        self.query_prefix: str = m.get("query_prefix", "")
        self.document_prefix: str = m.get("document_prefix", "")
        self.full_dimension = int(m["dimension"])
        self.dimension = int(m.get("truncate_dim") or self.full_dimension)
        exported_max = m.get("max_seq_length")
        if max_seq_length is not None and exported_max is not None and max_seq_length > exported_max:
            raise ShopsearchError(f"max_seq_length {max_seq_length} exceeds the exported model's {exported_max}")
        self.max_seq_length = max_seq_length or exported_max
        try:
            self.ort_session = ort_session(self.onnx_dir / name, intra_op_threads)
            self._tok = Tokenizer.from_file(str(self.onnx_dir / TOKENIZER_FILE))
        except Exception as exc:
            raise ArtifactError(f"{self.onnx_dir}: could not open the ONNX model or tokenizer: {exc}") from exc
        self._check_consistency()
        if self.max_seq_length:
            self._tok.enable_truncation(max_length=int(self.max_seq_length))
        self._tok.enable_padding(
            direction=m.get("padding_side") or "right",
            pad_id=int(m.get("pad_token_id") or 0),
            pad_token=m.get("pad_token") or "[PAD]",
        )

    def _check_consistency(self) -> None:
        m, where = self.manifest, self.onnx_dir
        inputs = [i.name for i in self.ort_session.get_inputs()]
        if inputs != m.get("inputs") or [o.name for o in self.ort_session.get_outputs()] != [m.get("output")]:
            raise ArtifactError(f"{where}: the ONNX graph's inputs/outputs {inputs} do not match the manifest")
        if self.dimension > self.full_dimension:
            raise ArtifactError(f"{where}: truncate_dim {self.dimension} exceeds dimension {self.full_dimension}")
        vocab = self._tok.get_vocab_size(with_added_tokens=True)
        if m.get("tokenizer_vocab_size") is not None and vocab != m["tokenizer_vocab_size"]:
            raise ArtifactError(
                f"{where}: tokenizer.json has {vocab} tokens but the model was exported with "
                f"{m['tokenizer_vocab_size']}: mismatched tokenizer"
            )
        # The probe text through this tokenizer and graph must give what the export recorded.
        probe = m.get("probe") or {}
        expected = (probe.get("embedding") or {}).get(self.precision)
        if expected is None:
            raise ArtifactError(f"{where}: the manifest records no probe embedding for {self.precision}")
        e = self._tok.encode(probe["text"])
        feed = {"input_ids": np.asarray([e.ids], dtype=np.int64), "attention_mask": np.asarray([e.attention_mask], dtype=np.int64)}
        got = self.ort_session.run(None, feed)[0][0]
        want = np.asarray(expected, dtype=np.float32)
        if got.shape != want.shape or got.shape[0] != self.full_dimension:
            raise ArtifactError(
                f"{where}: the ONNX graph outputs {got.shape[0]}-d vectors, the manifest {self.full_dimension}-d "
                f"({want.shape[0]} in its probe): mismatched model files"
            )
        # Cosine, not equality: int8 kernels differ a little between CPUs (VNNI or not).
        cos = float(got @ want / max(float(np.linalg.norm(got) * np.linalg.norm(want)), 1e-12))
        if cos < (0.9999 if self.precision == "fp32" else 0.99):
            raise ArtifactError(
                f"{where}: the probe text no longer encodes as recorded at export: mismatched model or tokenizer files"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "onnx_dir": str(self.onnx_dir),
            "precision": self.precision,
            "dimension": self.dimension,
            "normalize": True,
            "max_seq_length": self.max_seq_length,
            "query_prefix": self.query_prefix,
            "source_fingerprint": self.manifest.get("source_fingerprint"),
        }

    def encode(self, texts: Sequence[str], *, is_query: bool = True, show_progress: bool = False) -> np.ndarray:
        """L2-normalised float32 ``(n, dimension)`` vectors, in input order; queries get the prefix."""
        prefix = self.query_prefix if is_query else self.document_prefix
        texts = [prefix + str(t) for t in texts]
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        # Longest first, like sentence-transformers, so each batch carries little padding.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for a in range(0, len(texts), self.batch_size):
            idx = order[a : a + self.batch_size]
            encs = self._tok.encode_batch([texts[i] for i in idx])
            feed = {
                "input_ids": np.asarray([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encs], dtype=np.int64),
            }
            vecs = self.ort_session.run(None, feed)[0][:, : self.dimension]
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            out[idx] = vecs / np.maximum(norms, 1e-12)
        return out
