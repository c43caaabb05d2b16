"""Trainable encoders: the Siamese dual encoder (MiniLM on CPU, decoder LLMs with LoRA on GPU), its
persistence in the sentence-transformers format, and ONNX export for serving.

Heavy imports (torch, sentence-transformers, onnxruntime) happen on first use of a name.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EncoderConfig": "shopsearch.models.encoder_config",
    "QWEN3_QUERY_PREFIX": "shopsearch.models.encoder_config",
    "build_siamese_encoder": "shopsearch.models.siamese",
    "save_encoder": "shopsearch.models.siamese",
    "load_encoder": "shopsearch.models.siamese",
    "read_model_info": "shopsearch.models.siamese",
    "describe_encoder": "shopsearch.models.siamese",
    "full_dimension": "shopsearch.models.siamese",
    "is_decoder_config": "shopsearch.models.siamese",
    "tiny_decoder_config_dir": "shopsearch.models.tiny",
    "has_lora": "shopsearch.models.lora",
    "merged_lora": "shopsearch.models.lora",
    "merge_lora_": "shopsearch.models.lora",
    "trainable_parameter_names": "shopsearch.models.lora",
    "export_onnx": "shopsearch.models.export",
    "OnnxQueryEncoder": "shopsearch.models.export",
    "export_cross_encoder_onnx": "shopsearch.models.cross_encoder_export",
    "is_cross_encoder_dir": "shopsearch.models.cross_encoder_export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shopsearch.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
