"""ONNX export and int8 dynamic quantisation of a trained encoder, and an onnxruntime query encoder.

Why not sentence-transformers' own ONNX backend (``SentenceTransformer(path, backend="onnx")``,
``export_dynamic_quantized_onnx_model``): both need ``optimum[onnxruntime]`` (now ``optimum-onnx``),
whose current release pins ``transformers<4.58`` and would downgrade the project's transformers 5.
So the export is ``torch.onnx.export`` (TorchScript tracer, ``dynamo=False``: no onnxscript needed)
and ``onnxruntime.quantization.quantize_dynamic``.

The graph takes ``input_ids`` and ``attention_mask`` (int64, dynamic batch and length) and outputs
``sentence_embedding``: the full-width, pooled, L2-normalised vector (the whole ST module stack is
traced). Matryoshka truncation to the served dim and the renormalisation after it happen in numpy,
so one graph serves any prefix dimension. Tokenisation is the model's own fast tokenizer
(``tokenizer.json``, ``tokenizers`` library) with its padding side and max length from the manifest;
queries get the model's query prefix.

int8: dynamic quantisation, int8 weights quantised per output channel (per-tensor loses ~3 points
of cosine on MiniLM), uint8 activations computed at run time, only MatMuls with constant weights.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shopsearch.artifacts import atomic_dir, write_manifest
from shopsearch.data.errors import ShopsearchError
from shopsearch.models.onnx_encoder import (
    FP32_FILE,
    INPUTS,
    INT8_FILE,
    KIND,
    OUTPUT,
    TOKENIZER_FILE,
    OnnxQueryEncoder,
    ort_session,
)
from shopsearch.retrieval.encoder import model_fingerprint, resolve_model

__all__ = ["OnnxQueryEncoder", "export_onnx"]

# Texts of different lengths, so the traced example has padding (the mask path must be in the graph).
_PROBE = [
    "cordless drill",
    "Behr Premium Plus Ultra 1 gal. Deep Base Flat Exterior Paint and Primer in One, white",
    "x",
    "outdoor led wall light with motion sensor",
]


class _Pooled(nn.Module):
    """The ST module stack as a function of (input_ids, attention_mask) -> normalised embedding."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        features: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        for module in self.model:
            features = module(features)
        return features[OUTPUT]


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the tracer's constant-folding warnings (the example batch is padded, so the mask path is
    traced; the flagged shape checks are constant for every input) and quantize_dynamic's advice."""
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        root.setLevel(max(level, logging.ERROR))
        try:
            yield
        finally:
            root.setLevel(level)


def _tokenizer_json(hf_tok: Any, out: Path) -> None:
    """The fast tokenizer as ``tokenizer.json``, truncation and padding left to the server."""
    from tokenizers import Tokenizer

    backend = getattr(hf_tok, "backend_tokenizer", None)
    if backend is None:
        raise ShopsearchError("ONNX export needs a fast (tokenizers) tokenizer; this model has a slow one")
    tok = Tokenizer.from_str(backend.to_str())
    tok.no_truncation()
    tok.no_padding()
    tok.save(str(out / TOKENIZER_FILE))


def export_onnx(
    model_dir: str | Path, out_dir: str | Path, *, quantize_int8: bool = True, opset: int = 17
) -> dict[str, Any]:
    """Export the encoder at ``model_dir`` to ``out_dir`` (replaced atomically); return the manifest.

    Writes ``model.onnx``, ``model_int8.onnx`` (when ``quantize_int8``), ``tokenizer.json`` and a
    ``manifest.json`` (kind ``onnx-encoder``: dims, prefix, padding, max length, source model
    fingerprint, checksums, and the export's own agreement with torch on probe texts).
    """
    from shopsearch.models.siamese import full_dimension, load_encoder, read_model_info

    _, src = resolve_model(model_dir)
    model = load_encoder(src, device="cpu").float().eval()
    tok = model[0].tokenizer
    if any(getattr(m, "include_prompt", True) is False for m in model):
        raise ShopsearchError(f"{src}: pooling that excludes the prompt tokens cannot be exported to ONNX")
    full_dim = full_dimension(model)
    enc = tok(_PROBE, padding=True, truncation=True, return_tensors="pt")
    example = (enc["input_ids"], enc["attention_mask"])
    wrapper = _Pooled(model).eval()
    started = time.perf_counter()
    with atomic_dir(out_dir) as tmp, _quiet_export():
        fp32 = tmp / FP32_FILE
        with torch.no_grad():
            reference = wrapper(*example).numpy()
            torch.onnx.export(
                wrapper,
                example,
                str(fp32),
                input_names=list(INPUTS),
                output_names=[OUTPUT],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    OUTPUT: {0: "batch"},
                },
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        large = fp32.stat().st_size > 1_800_000_000
        files = {"fp32": FP32_FILE}
        if quantize_int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(
                str(fp32),
                str(tmp / INT8_FILE),
                weight_type=QuantType.QInt8,
                per_channel=True,
                extra_options={"MatMulConstBOnly": True},
                use_external_data_format=large,
            )
            files["int8"] = INT8_FILE
        _tokenizer_json(tok, tmp)
        feed = {"input_ids": example[0].numpy(), "attention_mask": example[1].numpy()}
        sessions = {name: ort_session(tmp / f, 1) for name, f in files.items()}
        check = {name: float(np.min(np.sum(s.run(None, feed)[0] * reference, axis=1))) for name, s in sessions.items()}
        # Each graph's own output on one probe text, re-checked whenever the export is opened.
        probe = tok([_PROBE[0]], return_tensors="np")
        probe_feed = {k: probe[k].astype(np.int64) for k in INPUTS}
        probes = {name: s.run(None, probe_feed)[0][0].round(6).tolist() for name, s in sessions.items()}
        info = read_model_info(src) or {}
        manifest = write_manifest(
            tmp,
            KIND,
            source_model=str(src),
            source_fingerprint=model_fingerprint(src),
            files_by_precision=files,
            inputs=list(INPUTS),
            output=OUTPUT,
            dimension=full_dim,
            truncate_dim=model.truncate_dim,
            normalized=True,
            pooling=info.get("pooling") or _pooling_mode(model),
            padding_side=tok.padding_side,
            pad_token=tok.pad_token,
            pad_token_id=tok.pad_token_id,
            max_seq_length=model.max_seq_length,
            tokenizer_vocab_size=len(tok),
            query_prefix=(model.prompts or {}).get("query", ""),
            document_prefix=(model.prompts or {}).get("document", ""),
            opset=opset,
            quantization={"method": "onnxruntime.quantize_dynamic", "weight_type": "QInt8", "per_channel": True,
                          "matmul_const_b_only": True} if quantize_int8 else None,
            export_check_min_cosine_vs_torch=check,
            probe={"text": _PROBE[0], "embedding": probes},
            export_seconds=round(time.perf_counter() - started, 2),
            torch_version=torch.__version__,
            onnxruntime_version=_ort_version(),
        )  # fmt: skip
    return manifest


def _pooling_mode(model: Any) -> str | None:
    from sentence_transformers.sentence_transformer.modules import Pooling

    return next((m.pooling_mode for m in model if isinstance(m, Pooling)), None)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
