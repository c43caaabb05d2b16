"""ONNX export and int8 dynamic quantisation of a cross-encoder re-ranker (served by
:class:`shopsearch.retrieval.rerank_onnx.OnnxCrossEncoder`).

The same route as the encoder export (:mod:`shopsearch.models.export`, which says why not optimum):
``torch.onnx.export`` with the TorchScript tracer and ``onnxruntime.quantization.quantize_dynamic``
with int8 weights per output channel. The graph is the classifier itself (``*ForSequenceClassification``)
from the tokenizer's inputs to its one raw logit per pair; the tokenizer travels as ``tokenizer.json``,
whose post-processor makes the pair encoding, so serving needs neither torch nor transformers.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shopsearch.artifacts import atomic_dir, write_manifest
from shopsearch.data.errors import ShopsearchError
from shopsearch.models.export import _ort_version, _quiet_export, _tokenizer_json
from shopsearch.retrieval.encoder import model_fingerprint
from shopsearch.retrieval.onnx_session import ort_session
from shopsearch.retrieval.rerank import FUSION_FILE, JUDGE_FILE
from shopsearch.retrieval.rerank_onnx import FP32_FILE, INT8_FILE, KIND, OUTPUT

__all__ = ["export_cross_encoder_onnx", "is_cross_encoder_dir"]

# Pairs of different lengths, so the traced example is padded (the mask path must be in the graph).
_PROBE_PAIRS = [
    ("cordless drill", "DEWALT 20-Volt MAX Lithium-Ion Cordless 1/2 in. Drill/Driver Kit"),
    ("white exterior paint", "Behr Premium Plus Ultra 1 gal. Deep Base Flat Exterior Paint and Primer in One"),
    ("x", "y"),
    ("outdoor led wall light with motion sensor", "Hampton Bay Black Motion Sensing Outdoor Wall Lantern"),
]


def is_cross_encoder_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a one-label sequence classifier (a sentence-transformers CrossEncoder)."""
    import json

    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        info = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(str(a).endswith("ForSequenceClassification") for a in info.get("architectures") or [])


class _Logit(nn.Module):
    """The classifier as a function of its tokenizer's inputs -> one raw logit per pair."""

    def __init__(self, model: Any, names: list[str]) -> None:
        super().__init__()
        self.model: Any = model
        self.names = names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs, strict=True))).logits


def export_cross_encoder_onnx(model_dir: str | Path, out_dir: str | Path, *, quantize_int8: bool = True,
                              opset: int = 17) -> dict[str, Any]:
    """Export the cross-encoder at ``model_dir`` to ``out_dir`` (replaced atomically); return the manifest.

    Writes ``model.onnx``, ``model_int8.onnx`` (when ``quantize_int8``), ``tokenizer.json``, the
    model's settings files when it has them (fusion weight and text fields, judge threshold), and ``manifest.json`` (kind ``onnx-cross-encoder``:
    inputs, max length, source fingerprint, checksums, the largest |logit| difference from torch on
    the probe pairs, and each graph's probe logits, re-checked whenever the export is opened).
    """
    from sentence_transformers.cross_encoder import CrossEncoder

    src = Path(model_dir)
    if not is_cross_encoder_dir(src):
        raise ShopsearchError(f"{src} is not a cross-encoder directory (no *ForSequenceClassification config.json)")
    ce = CrossEncoder(str(src), device="cpu", local_files_only=True)
    if getattr(ce, "num_labels", 1) != 1:
        raise ShopsearchError(f"{src} has {ce.num_labels} outputs; a re-ranker has one")
    hf_model = ce.model.float().eval()
    tok = ce.tokenizer
    max_length = int(ce.max_length or tok.model_max_length)
    enc = tok([q for q, _ in _PROBE_PAIRS], [t for _, t in _PROBE_PAIRS], padding=True, truncation=True,
              max_length=max_length, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]
    example = tuple(enc[n] for n in names)
    wrapper = _Logit(hf_model, names).eval()
    started = time.perf_counter()
    with atomic_dir(out_dir) as tmp, _quiet_export():
        fp32 = tmp / FP32_FILE
        with torch.no_grad():
            reference = wrapper(*example).numpy().reshape(-1)
            torch.onnx.export(
                wrapper, example, str(fp32), input_names=names, output_names=[OUTPUT],
                dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, OUTPUT: {0: "batch"}},
                opset_version=opset, do_constant_folding=True, dynamo=False,
            )
        files = {"fp32": FP32_FILE}
        if quantize_int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32), str(tmp / INT8_FILE), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"MatMulConstBOnly": True})
            files["int8"] = INT8_FILE
        _tokenizer_json(tok, tmp)
        for settings in (FUSION_FILE, JUDGE_FILE):  # fusion weight, text fields; judge threshold
            if (src / settings).is_file():
                shutil.copy2(src / settings, tmp / settings)
        feed = {n: t.numpy() for n, t in zip(names, example, strict=True)}
        logits = {p: ort_session(tmp / f, 1).run(None, feed)[0].reshape(-1) for p, f in files.items()}
        manifest = write_manifest(
            tmp, KIND,
            source_model=str(src), source_fingerprint=model_fingerprint(src),
            files_by_precision=files, inputs=names, output=OUTPUT,
            max_length=max_length, pad_token=tok.pad_token, pad_token_id=tok.pad_token_id,
            tokenizer_vocab_size=len(tok), opset=opset,
            quantization={"method": "onnxruntime.quantize_dynamic", "weight_type": "QInt8", "per_channel": True,
                          "matmul_const_b_only": True} if quantize_int8 else None,
            export_check_max_abs_logit_diff_vs_torch={p: round(float(np.abs(v - reference).max()), 6)
                                                      for p, v in logits.items()},
            probe={"pairs": [list(p) for p in _PROBE_PAIRS],
                   "logits": {p: v.round(6).tolist() for p, v in logits.items()}},
            export_seconds=round(time.perf_counter() - started, 2),
            torch_version=torch.__version__, onnxruntime_version=_ort_version(),
        )  # fmt: skip
    return manifest
