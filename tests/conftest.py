"""Fixtures shared across test packages."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """The bundled MiniLM body with a seeded one-logit head, saved as a CrossEncoder directory (``RUN/model``)."""
    import torch

    from shopsearch.training.cross_encoder import new_cross_encoder

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ce") / "model"
    new_cross_encoder(max_length=32).save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_cross_encoder_onnx(tiny_cross_encoder, tmp_path_factory) -> Path:
    """That cross-encoder exported to ONNX, fp32 and int8."""
    from shopsearch.models import export_cross_encoder_onnx

    out = tmp_path_factory.mktemp("ce-onnx") / "ce-onnx"
    export_cross_encoder_onnx(tiny_cross_encoder, out)
    return out
