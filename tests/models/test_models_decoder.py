"""The LLM path on a tiny random Qwen3: last-token pooling, left padding, LoRA, checkpointing, merge on save."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from models_testdata import QUERIES, TITLES
from sentence_transformers import SentenceTransformer

from shopsearch.models import EncoderConfig, build_siamese_encoder, has_lora, read_model_info, save_encoder
from shopsearch.models.lora import gradient_checkpointing_enabled, lora_layers, trainable_parameter_names
from shopsearch.models.tiny import tiny_decoder_config_dir

TEXTS = ["drill", "a much longer product title with many words in it"]


def _embed(model, texts):
    features = model.preprocess(texts)
    return model(features)["sentence_embedding"]


def test_tiny_dir_is_seeded_and_local(tiny_dir, tmp_path):
    again = tiny_decoder_config_dir(tmp_path / "again")
    a = (tiny_dir / "model.safetensors").read_bytes()
    assert a == (again / "model.safetensors").read_bytes()
    assert tiny_decoder_config_dir(tmp_path / "other", seed=1).joinpath("model.safetensors").read_bytes() != a


def test_lasttoken_left_padding(tiny_dir):
    model = build_siamese_encoder(EncoderConfig(base_model=str(tiny_dir), device="cpu"))
    assert model[1].pooling_mode == "lasttoken"
    assert model[0].tokenizer.padding_side == "left"
    features = model.preprocess(TEXTS)
    mask = features["attention_mask"]
    assert mask[:, -1].all() and not mask[0, 0]  # the short text is padded on the left
    with torch.no_grad():
        batched = model.encode(TEXTS, convert_to_tensor=True)
        alone = model.encode(TEXTS[:1], convert_to_tensor=True)
        # The pooled vector is the unpadded sequence's last hidden state, normalised.
        ids = model[0].tokenizer(TEXTS[:1], return_tensors="pt")
        last = model[0].auto_model(**ids).last_hidden_state[:, -1]
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(alone, torch.nn.functional.normalize(last, dim=-1), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def lora_model(tiny_dir):
    config = EncoderConfig(
        base_model=str(tiny_dir), lora=True, gradient_checkpointing=True, query_prefix="Instruct: find\nQuery: ",
        matryoshka_dims=[64, 32], serve_dim=32, device="cpu",
    )  # fmt: skip
    return build_siamese_encoder(config)


def test_lora_trains_only_adapters(lora_model):
    names = trainable_parameter_names(lora_model)
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    layer = lora_layers(lora_model[0].auto_model)[0][1]
    assert layer.r["default"] == 32 and layer.scaling["default"] == 64 / 32
    assert gradient_checkpointing_enabled(lora_model)

    lora_model.train()
    before = _embed(lora_model, QUERIES).detach().clone()
    torch.manual_seed(0)
    opt = torch.optim.SGD([p for p in lora_model.parameters() if p.requires_grad], lr=0.5)
    frozen = {n: p.detach().clone() for n, p in lora_model.named_parameters() if not p.requires_grad}
    q, d = _embed(lora_model, QUERIES), _embed(lora_model, TITLES[: len(QUERIES)])
    loss = torch.nn.functional.cross_entropy(q @ d.T / 0.05, torch.arange(len(QUERIES)))
    loss.backward()  # through checkpointed layers with frozen inputs
    opt.step()
    lora_model.eval()
    with torch.no_grad():
        after = _embed(lora_model, QUERIES)
    assert (after - before).abs().max() > 1e-4
    assert all(torch.equal(p, frozen[n]) for n, p in lora_model.named_parameters() if n in frozen)


def test_save_merges_lora_and_reloads_without_peft(lora_model, tmp_path, monkeypatch):
    lora_model.eval()
    expected = lora_model.encode_query(QUERIES)
    docs = lora_model.encode(TITLES)
    out = save_encoder(lora_model, tmp_path / "merged")
    assert not (out / "adapter_config.json").exists()
    info = read_model_info(out)
    assert info["lora"]["merged"] and (info["lora"]["r"], info["lora"]["alpha"], info["lora"]["dropout"]) == (32, 64, 0.1)
    assert info["pooling"] == "lasttoken" and info["padding_side"] == "left" and info["decoder"] is True
    assert has_lora(lora_model)  # the in-memory model keeps its adapters, weights restored exactly
    np.testing.assert_array_equal(lora_model.encode_query(QUERIES), expected)

    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now fails: the directory must not need it
    plain = SentenceTransformer(str(out), device="cpu", local_files_only=True)
    assert not lora_layers(plain[0].auto_model)
    assert plain[0].tokenizer.padding_side == "left" and plain.truncate_dim == 32
    np.testing.assert_allclose(plain.encode_query(QUERIES), expected, atol=1e-5)
    np.testing.assert_allclose(plain.encode(TITLES), docs, atol=1e-5)


def test_save_unmerged_keeps_the_adapter(lora_model, tmp_path):
    out = save_encoder(lora_model, tmp_path / "adapter", merge_lora=False)
    assert (out / "adapter_config.json").is_file()
    reopened = SentenceTransformer(str(out), device="cpu", local_files_only=True)
    np.testing.assert_allclose(reopened.encode(TITLES), lora_model.encode(TITLES), atol=1e-5)
