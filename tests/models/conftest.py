"""Shared, session-scoped models for the shopsearch.models tests (each built once: loading is the cost)."""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from models_testdata import PREFIX

from shopsearch.models import EncoderConfig, build_siamese_encoder, export_onnx, save_encoder
from shopsearch.models.tiny import tiny_decoder_config_dir


@pytest.fixture(scope="session")
def minilm():
    """The bundled MiniLM as a Siamese encoder with a query prefix and a Matryoshka serve dim."""
    config = EncoderConfig(
        query_prefix=PREFIX, matryoshka_dims=[384, 256, 128], serve_dim=128, max_seq_length=64, device="cpu"
    )
    return build_siamese_encoder(config)


@pytest.fixture(scope="session")
def minilm_dir(minilm, tmp_path_factory):
    return save_encoder(minilm, tmp_path_factory.mktemp("models") / "minilm", metadata={"run": "test"})


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tiny_decoder_config_dir(tmp_path_factory.mktemp("models") / "tiny-qwen3")


@pytest.fixture(scope="session")
def minilm_onnx(minilm_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "minilm"
    export_onnx(minilm_dir, out)
    return out
