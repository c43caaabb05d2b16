"""Gradient caching: on the real bundled all-MiniLM-L6-v2, the cached loss and its gradients equal the
plain loss's for the stage-1 losses (with and without the BM25 logit prior) and for ROAR, across
mini-batch sizes; the trainer wraps stage 1 when ``stage1.mini_batch_size`` is set."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from shopsearch.training.losses import CachedGradientLoss, InfoNCELoss, MaskedInfoNCELoss, RoarLoss

QUERIES = ["angle bracket", "deck paint", "led bulb", "pvc pipe", "cordless drill with battery", "door knob"]
TITLES = [
    "Simpson Strong-Tie 12-Gauge Angle",
    "BEHR Premium Textured DeckOver 1-gal. #SC-141 Tugboat Wood and Concrete Coating",
    "Philips 60W Equivalent Soft White A19 LED Light Bulb (4-Pack)",
    "Charlotte Pipe 1/2 in. x 10 ft. PVC Schedule 40 Plain-End Pipe",
    "Ryobi ONE+ 18V Cordless 3/8 in. Drill/Driver Kit with 1.3 Ah Battery and Charger",
    "Kwikset Tylo Satin Nickel Entry Knob",
]
NEGATIVES = ["Hampton Bay 4 ft. LED Shop Light", "Pine", "Rust-Oleum 1 qt. Deck Stain",
             "Everbilt 3 in. Zinc-Plated Corner Brace (4-Pack)", "DEWALT 20-Volt MAX Combo Kit", "Door Stop"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _loss_and_grad(model, loss_fn, columns, labels=None):
    model.zero_grad()
    features = [dict(model.preprocess(list(col))) for col in columns]  # fresh: the model writes into them
    loss = loss_fn(features, labels)
    loss.backward()
    return loss.detach(), model[0].auto_model.encoder.layer[-1].output.dense.weight.grad.detach().clone()


def _prior(query_index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return 0.05 * ((query_index[:, None] + rows[None, :]) % 3).float()


@pytest.mark.parametrize("mini_batch_size", [1, 4, 64])
@pytest.mark.parametrize("kind", ["infonce", "masked", "prior"])
def test_cached_stage1_losses_equal_the_plain_ones(minilm_eval, mini_batch_size, kind):
    m = minilm_eval
    labels = None
    if kind == "infonce":
        plain = InfoNCELoss(m, tau=0.05, bucket_rows=None)
    elif kind == "masked":
        plain = MaskedInfoNCELoss(m, tau=0.05, delta=0.1, bucket_rows=None)
    else:
        plain = InfoNCELoss(m, tau=0.05, bucket_rows=None, prior=_prior)
        n = len(QUERIES)
        labels = torch.stack([torch.arange(n), torch.arange(n) + 10, torch.arange(n) + 20], dim=1)
    expected = _loss_and_grad(m, plain, (QUERIES, TITLES, NEGATIVES), labels)
    cached = CachedGradientLoss(plain, mini_batch_size=mini_batch_size)
    got = _loss_and_grad(m, cached, (QUERIES, TITLES, NEGATIVES), labels)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-3, atol=1e-6)
    assert got[1].abs().sum() > 0


def test_cached_roar_equals_plain_roar_and_keeps_its_components(minilm_eval):
    m = minilm_eval
    docs = [[TITLES[i], NEGATIVES[i], ""] for i in range(len(QUERIES))]
    grades = torch.tensor([[3, 0, -1]] * len(QUERIES))
    columns = (QUERIES, *zip(*docs, strict=True))
    expected = _loss_and_grad(m, RoarLoss(m, bucket_rows=None), columns, grades)
    cached = CachedGradientLoss(RoarLoss(m, bucket_rows=None), mini_batch_size=2)
    got = _loss_and_grad(m, cached, columns, grades)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-3, atol=1e-6)
    assert set(cached.last_components) >= {"contrast"}
    assert cached.get_config_dict()["mini_batch_size"] == 2 and "Gao" in cached.citation


def test_the_trainer_caches_stage1_only_when_asked():
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.trainer import _loss

    assert isinstance(_loss(TrainConfig.model_validate({"stage1": {"mini_batch_size": 32}}), "1", None),
                      CachedGradientLoss)
    assert isinstance(_loss(TrainConfig(), "1", None), InfoNCELoss)
    with pytest.raises(ValueError, match="mini_batch_size"):
        CachedGradientLoss(InfoNCELoss(None), mini_batch_size=0)
    with pytest.raises(TypeError, match="compute_loss_from_embeddings"):
        CachedGradientLoss(torch.nn.Linear(2, 2))
