"""Length-bucketed forwards: the same embeddings, losses and gradients as one padded forward, on the
real bundled all-MiniLM-L6-v2 and real Home Depot-style titles; each chunk trimmed to its own rows;
left padding trimmed on the left; Matryoshka and the stage-2 losses unchanged by it."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss
from torch import nn

from shopsearch.training.losses import InfoNCELoss, MaskedInfoNCELoss, RoarLoss
from shopsearch.training.losses.length_buckets import bucketed_forward, embed_bucketed

QUERIES = ["angle bracket", "deck paint", "led bulb", "pvc pipe", "drill", "door knob"]
TITLES = [
    "Simpson Strong-Tie 12-Gauge Angle",
    "BEHR Premium Textured DeckOver 1-gal. #SC-141 Tugboat Wood and Concrete Coating",
    "Philips 60W Equivalent Soft White A19 LED Light Bulb (4-Pack)",
    "Charlotte Pipe 1/2 in. x 10 ft. PVC Schedule 40 Plain-End Pipe",
    "Ryobi ONE+ 18V Cordless 3/8 in. Drill/Driver Kit with 1.3 Ah Battery and Charger",
    "Kwikset Tylo Satin Nickel Entry Knob",
]
NEGATIVES = [
    "Hampton Bay 4 ft. LED Shop Light",
    "Glacier Bay Single-Handle Pull-Down Sprayer Kitchen Faucet in Stainless Steel",
    "Pine",
    "DEWALT 20-Volt MAX Lithium-Ion Cordless Combo Kit (2-Tool) with Battery 2Ah, Charger and Bag",
    "Everbilt 3 in. Zinc-Plated Corner Brace (4-Pack)",
    "Rust-Oleum 1 qt. Deck Stain",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _columns(model, *columns):
    """Fresh tokenised columns per call: the model writes its outputs into the dicts it is given."""
    return [dict(model.preprocess(list(col))) for col in columns]


def _loss_and_grad(model, loss_fn, features, labels=None):
    model.zero_grad()
    loss = loss_fn(features, labels)
    loss.backward()
    return loss.detach(), model[0].auto_model.encoder.layer[-1].output.dense.weight.grad.detach().clone()


@pytest.mark.parametrize("rows", [1, 2, 4, 5])
def test_bucketed_forward_equals_one_padded_forward(minilm_eval, rows):
    m = minilm_eval
    features = m.preprocess(TITLES + NEGATIVES)
    with torch.no_grad():
        expected = m(dict(features))["sentence_embedding"]
        got = bucketed_forward(m, dict(features), rows)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("loss_cls", [InfoNCELoss, MaskedInfoNCELoss])
def test_pair_losses_and_gradients_match_without_buckets(minilm_eval, loss_cls):
    m = minilm_eval
    texts = (QUERIES, TITLES, NEGATIVES)
    bucketed = _loss_and_grad(m, loss_cls(m, bucket_rows=4), _columns(m, *texts))
    padded = _loss_and_grad(m, loss_cls(m, bucket_rows=None), _columns(m, *texts))
    torch.testing.assert_close(bucketed[0], padded[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bucketed[1], padded[1], rtol=1e-3, atol=1e-6)


def test_roar_with_buckets_matches_without(minilm_eval):
    m = minilm_eval
    docs = [[TITLES[i], NEGATIVES[i], ""] for i in range(len(QUERIES))]
    grades = torch.tensor([[3, 0, -1]] * len(QUERIES))
    texts = (QUERIES, *zip(*docs, strict=True))
    bucketed = _loss_and_grad(m, RoarLoss(m, bucket_rows=3), _columns(m, *texts), grades)
    padded = _loss_and_grad(m, RoarLoss(m, bucket_rows=None), _columns(m, *texts), grades)
    torch.testing.assert_close(bucketed[0], padded[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bucketed[1], padded[1], rtol=1e-3, atol=1e-6)


def test_matryoshka_replays_bucketed_chunks(minilm_eval):
    m = minilm_eval
    texts = (QUERIES, TITLES, NEGATIVES)
    dims = [384, 64]
    bucketed = MatryoshkaLoss(m, InfoNCELoss(m, bucket_rows=4), dims)(_columns(m, *texts), None)
    padded = MatryoshkaLoss(m, InfoNCELoss(m, bucket_rows=None), dims)(_columns(m, *texts), None)
    torch.testing.assert_close(bucketed.detach(), padded.detach(), rtol=1e-5, atol=1e-6)


class _RecordingEncoder(nn.Module):
    """Embeds a row as the sum of its real token ids (padding-blind), recording each call's input."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, torch.Tensor]] = []
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, features):
        self.calls.append({k: v.clone() for k, v in features.items() if torch.is_tensor(v)})
        ids, mask = features["input_ids"].float(), features["attention_mask"].float()
        total = (ids * mask).sum(dim=1, keepdim=True) * self.scale
        return {"sentence_embedding": torch.cat([total, mask.sum(dim=1, keepdim=True)], dim=1)}


def _padded(lengths, *, left: bool):
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        cols = slice(width - n, width) if left else slice(0, n)
        ids[i, cols] = torch.arange(1, n + 1) + 100 * i
        mask[i, cols] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


@pytest.mark.parametrize("left", [False, True])
def test_chunks_are_length_sorted_and_trimmed_on_the_padded_side(left):
    lengths = [9, 2, 7, 3, 12, 2, 5, 4]
    features = _padded(lengths, left=left)
    encoder = _RecordingEncoder()
    got = bucketed_forward(encoder, features, rows=3)
    expected = encoder(features)["sentence_embedding"]
    torch.testing.assert_close(got, expected)  # every row back in its place
    calls = encoder.calls[:-1]
    assert [c["attention_mask"].sum(dim=1).tolist() for c in calls] == [[2, 2, 3], [4, 5, 7], [9, 12]]
    for call in calls:
        mask = call["attention_mask"]
        assert mask.shape[1] == int(mask.sum(dim=1).max())  # no all-padding column left
        assert call["input_ids"].shape == mask.shape == call["token_type_ids"].shape
        edge = mask[:, 0] if left else mask[:, -1]
        assert edge.any()  # the trimmed side is the padded one


def test_gradients_flow_to_every_chunk():
    encoder = _RecordingEncoder()
    out = bucketed_forward(encoder, _padded([3, 1, 4, 1, 5], left=False), rows=2)
    out[:, 0].sum().backward()
    assert encoder.scale.grad is not None and float(encoder.scale.grad) == float(out[:, 0].sum().detach())


def test_small_batches_and_none_run_one_forward():
    features = _padded([3, 1, 4], left=False)
    for rows in (None, 3, 8):
        encoder = _RecordingEncoder()
        bucketed_forward(encoder, features, rows)
        assert len(encoder.calls) == 1 and encoder.calls[0]["input_ids"].shape == (3, 4)


def test_doc_columns_are_bucketed_together():
    encoder = _RecordingEncoder()
    columns = [_padded([2, 3], left=False), _padded([6, 1], left=False), _padded([2, 5], left=False)]
    out = embed_bucketed(encoder, columns, rows=2)
    assert len(out) == 3 and all(o.shape == (2, 2) for o in out)
    # anchor alone (2 rows: one call), then the 4 doc rows merged: two chunks of 2
    assert [c["input_ids"].shape[0] for c in encoder.calls] == [2, 2, 2]
    assert out[2][:, 1].tolist() == [2.0, 5.0]


def test_rows_must_be_positive():
    with pytest.raises(ValueError, match="rows must be >= 1"):
        bucketed_forward(_RecordingEncoder(), _padded([3, 1, 4], left=False), rows=0)
