"""Dev figures during training are float32 figures, the ones the saved model reproduces."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

TEXTS = [
    "cordless drill 18v with two batteries",
    "white vinyl privacy fence panel 6 ft",
    "led flood light outdoor motion sensor",
    "stainless steel kitchen faucet pull down sprayer",
    "pressure treated lumber 2x4 8 ft",
    "garden hose 50 ft",
]


def test_model_encoder_is_float32_on_a_model_accelerate_prepared_for_bf16():
    """``Accelerator.prepare`` under bf16 wraps the model's ``forward`` in its own autocast, which an
    outer ``autocast(enabled=False)`` does not reach; the trainer's model is prepared that way, so
    its dev encoder must step around the wrapper (and put it back for training)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from sentence_transformers import SentenceTransformer

    from shopsearch.retrieval.encoder import default_model_path
    from shopsearch.training.dev_eval import ModelEncoder

    model = SentenceTransformer(str(default_model_path()), device="cpu")
    model.eval()
    expected = ModelEncoder(model).encode(TEXTS)
    AcceleratorState._reset_state(reset_partial_state=True)  # an earlier test's trainer may have set another precision
    try:
        accelerator = Accelerator(mixed_precision="bf16", cpu=True)
        if not accelerator.native_amp:
            pytest.skip("accelerate has no native bf16 autocast on this CPU")
        accelerator.prepare_model(model)
        wrapped = model.__dict__["forward"]
        as_prepared = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
        assert np.abs(as_prepared - expected).max() > 1e-4  # bf16: what the dev figures used to be

        np.testing.assert_allclose(ModelEncoder(model).encode(TEXTS), expected, rtol=0, atol=1e-6)
        assert model.__dict__["forward"] is wrapped  # training goes on under the wrapper
        assert np.abs(ModelEncoder(model, bf16=True).encode(TEXTS) - expected).max() > 1e-4  # mining may use bf16
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)

