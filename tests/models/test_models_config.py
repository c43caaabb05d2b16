"""EncoderConfig validation: paper defaults, Matryoshka dims, serve_dim, strictness."""

from __future__ import annotations

import pydantic
import pytest

from shopsearch.data.errors import ShopsearchError
from shopsearch.models import EncoderConfig, build_siamese_encoder


def test_paper_lora_defaults_and_strictness():
    c = EncoderConfig()
    assert (c.lora, c.lora_r, c.lora_alpha, c.lora_dropout) == (False, 32, 64, 0.1)
    assert c.base_model is None and c.pooling is None and c.query_prefix == "" and c.dtype == "float32"
    with pytest.raises(pydantic.ValidationError):
        EncoderConfig(lora_rank=8)  # extra="forbid": a typo is an error, not a silent default
    with pytest.raises(pydantic.ValidationError):
        EncoderConfig(pooling="max")


def test_matryoshka_dims_sorted_and_serve_dim_checked():
    assert EncoderConfig(matryoshka_dims=[64, 384, 128]).matryoshka_dims == [384, 128, 64]
    assert EncoderConfig(matryoshka_dims=[384, 256], serve_dim=256).serve_dim == 256
    with pytest.raises(pydantic.ValidationError, match="not one of"):
        EncoderConfig(matryoshka_dims=[384, 256], serve_dim=200)
    with pytest.raises(pydantic.ValidationError, match="duplicates"):
        EncoderConfig(matryoshka_dims=[128, 128])
    with pytest.raises(pydantic.ValidationError):
        EncoderConfig(matryoshka_dims=[])
    EncoderConfig(serve_dim=100).check_dims(384)
    with pytest.raises(ShopsearchError, match="exceed"):
        EncoderConfig(matryoshka_dims=[512, 256]).check_dims(384)
    with pytest.raises(ShopsearchError, match="exceeds"):
        EncoderConfig(serve_dim=512).check_dims(384)


def test_bf16_refused_on_cpu_and_hub_names_refused():
    with pytest.raises(ShopsearchError, match="bfloat16"):
        build_siamese_encoder(EncoderConfig(dtype="bfloat16", device="cpu"))
    with pytest.raises(ShopsearchError, match="does not download"):
        build_siamese_encoder(EncoderConfig(base_model="Qwen/Qwen3-Embedding-0.6B"))
