"""Scoring (query, product) pairs with an exported cross-encoder on onnxruntime: no torch at run time.

The export (:func:`shopsearch.models.export_cross_encoder_onnx`) writes the classifier's graph
(``input_ids``, ``attention_mask`` and, for BERT-style models, ``token_type_ids`` -> one raw logit per
pair), its int8 dynamic quantisation, the fast tokenizer (``tokenizer.json``, whose post-processor
builds the ``[CLS] q [SEP] p [SEP]`` pair encoding), the fusion weight ``train-reranker`` stored
with the model, and a manifest (kind ``onnx-cross-encoder``) with each graph's logits on probe pairs.

Why its own scorer rather than sentence-transformers' ``CrossEncoder(backend="onnx")``: that backend
needs ``optimum``, whose releases pin an older transformers (see :mod:`shopsearch.models.export`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.artifacts import ArtifactError, read_manifest
from shopsearch.data.errors import ShopsearchError

KIND = "onnx-cross-encoder"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
OUTPUT = "logits"


def is_onnx_cross_encoder(path: str | Path) -> bool:
    """Whether ``path`` holds a cross-encoder ONNX export (its manifest says so)."""
    import json

    manifest = Path(path) / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError):
        return False


class OnnxCrossEncoder:
    """Relevance logits of (query, product text) pairs from a cross-encoder ONNX export.

    The same interface as :class:`shopsearch.retrieval.rerank.CrossEncoderReranker` (``score``,
    ``fusion_weight``, ``text_fields``, ``name``, ``describe``). All pairs of a call are sorted by length and run in
    batches of ``batch_size``, so a query's whole head is usually one ``run`` call. The directory is
    refused (ArtifactError) when its manifest is missing, of another kind, fails a checksum, or its
    graph no longer gives the recorded logits on the probe pairs.

    Args:
        onnx_dir: the export directory.
        int8: score with the int8 graph (default) or the fp32 one.
        max_length: truncate each pair to this many tokens (at most the exported limit).
        intra_op_threads: onnxruntime threads (None: all cores).
        batch_size: pairs per ``run`` call.
    """

    def __init__(self, onnx_dir: str | Path, *, int8: bool = True, max_length: int | None = None,
                 intra_op_threads: int | None = None, batch_size: int = 64, verify: bool = True) -> None:
        from tokenizers import Tokenizer

        from shopsearch.retrieval.onnx_session import ort_session
        from shopsearch.retrieval.rerank import read_fusion_weight, reranker_text_fields

        self.path = Path(onnx_dir)
        if not self.path.is_dir():
            raise ArtifactError(f"{self.path} is not a directory: expected a cross-encoder ONNX export")
        self.manifest = m = read_manifest(self.path, kind=KIND, verify=verify)
        self.precision = "int8" if int8 else "fp32"
        name = m.get("files_by_precision", {}).get(self.precision)
        if name is None:
            raise ArtifactError(f"{self.path} has no {self.precision} model (exported without it?)")
        exported_max = int(m.get("max_length") or 512)
        if max_length is not None and max_length > exported_max:
            raise ShopsearchError(f"max_length {max_length} exceeds the exported re-ranker's {exported_max}")
        self.max_length = int(max_length or exported_max)
        self.inputs: list[str] = list(m.get("inputs") or [])
        self.batch_size = int(batch_size)
        self.fusion_weight = read_fusion_weight(self.path)
        self.text_fields = reranker_text_fields(self.path)
        try:
            self.ort_session = ort_session(self.path / name, intra_op_threads)
            self._tok = Tokenizer.from_file(str(self.path / TOKENIZER_FILE))
        except Exception as exc:
            raise ArtifactError(f"{self.path}: could not open the ONNX model or tokenizer: {exc}") from exc
        self._tok.enable_truncation(max_length=self.max_length, strategy="longest_first")
        self._tok.enable_padding(pad_id=int(m.get("pad_token_id") or 0), pad_token=m.get("pad_token") or "[PAD]")
        self._check_probe()

    def _check_probe(self) -> None:
        graph_inputs = [i.name for i in self.ort_session.get_inputs()]
        if graph_inputs != self.inputs:
            raise ArtifactError(f"{self.path}: the graph's inputs {graph_inputs} do not match the manifest's {self.inputs}")
        probe = self.manifest.get("probe") or {}
        want = np.asarray((probe.get("logits") or {}).get(self.precision, []), dtype=np.float32)
        pairs = probe.get("pairs") or []
        if not len(want) or len(want) != len(pairs):
            raise ArtifactError(f"{self.path}: the manifest records no probe logits for {self.precision}")
        got = self._run([p[0] for p in pairs], [p[1] for p in pairs])
        # int8 kernels differ a little between CPUs (VNNI or not): a tolerance, not equality.
        tolerance = 1e-3 if self.precision == "fp32" else 0.05 * max(1.0, float(np.abs(want).max()))
        if float(np.abs(got - want).max()) > tolerance:
            raise ArtifactError(f"{self.path}: the probe pairs no longer score as recorded at export "
                                f"(got {got.round(4).tolist()}, recorded {want.round(4).tolist()}): "
                                "mismatched model or tokenizer files")

    @property
    def name(self) -> str:
        return self.path.name

    def _run(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        encs = self._tok.encode_batch(list(zip(queries, texts, strict=True)))
        feed = {
            "input_ids": np.asarray([e.ids for e in encs], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in encs], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in encs], dtype=np.int64),
        }
        return np.asarray(self.ort_session.run(None, {k: feed[k] for k in self.inputs})[0], dtype=np.float32).reshape(-1)

    def score(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Raw logits, float32, one per pair (higher = more relevant)."""
        if len(queries) != len(texts):
            raise ValueError(f"{len(queries)} queries for {len(texts)} product texts")
        out = np.zeros(len(queries), dtype=np.float32)
        # Longest first, like CrossEncoder.predict, so each batch carries little padding.
        order = np.argsort([-(len(q) + len(t)) for q, t in zip(queries, texts, strict=True)], kind="stable")
        for a in range(0, len(order), self.batch_size):
            idx = order[a:a + self.batch_size]
            out[idx] = self._run([queries[i] for i in idx], [texts[i] for i in idx])
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": KIND, "path": str(self.path.resolve()), "precision": self.precision,
                "batch_size": self.batch_size, "max_length": self.max_length, "fusion_weight": self.fusion_weight,
                "source_fingerprint": self.manifest.get("source_fingerprint")}
