"""The sentence-transformers loss modules on the real bundled all-MiniLM-L6-v2: equality with ST's
MultipleNegativesRankingLoss, agreement with the functional losses, the stage-2 composition,
MatryoshkaLoss wrapping, and one SentenceTransformerTrainer step with graded labels."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

from shopsearch.retrieval.encoder import default_model_path
from shopsearch.training.losses import (
    BradleyTerryLoss,
    InfoNCELoss,
    ListMLELoss,
    MaskedInfoNCELoss,
    RoarLoss,
)
from shopsearch.training.losses import functional as LF
from shopsearch.training.losses.base import graded_batch, top_grade_positives

ANCHORS = ["cordless drill", "red running shoes", "coffee grinder", "garden hose 50 ft"]
POSITIVES = [
    "Bosch 18V cordless drill driver kit",
    "Nike red road running shoe",
    "Burr coffee grinder, stainless steel",
    "Flexible garden hose, 50 feet",
]
NEGATIVES = ["Claw hammer with leather grip", "Wool winter socks", "Electric kettle 1.7 l", "Hose reel cart"]

QUERIES = ["cordless drill", "red running shoes", "coffee grinder"]
DOCS = [  # (query, doc_1..doc_4); "" = padding
    ["Bosch 18V cordless drill", "Makita impact driver", "drill bit set", "wool socks"],
    ["Nike red running shoe", "Adidas red sneaker", "", ""],
    ["Burr coffee grinder", "", "", ""],
]
GRADES = torch.tensor([[3, 2, 1, 0], [3, 3, -1, -1], [3, -1, -1, -1]])


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(minilm_eval):
    return minilm_eval


def _features(model, *columns):
    return [model.preprocess(list(col)) for col in columns]


def _encode(model, texts):
    with torch.no_grad():
        return model.encode(list(texts), convert_to_tensor=True, normalize_embeddings=True)


def _param(model):
    return model[0].auto_model.encoder.layer[-1].output.dense.weight


def _loss_and_grad(model, loss_fn, features, labels=None):
    model.zero_grad()
    loss = loss_fn(features, labels)
    loss.backward()
    return loss.detach(), _param(model).grad.detach().clone()


@pytest.mark.parametrize("tau", [0.05, 0.02])
def test_infonce_equals_multiple_negatives_ranking_loss(model, tau):
    features = _features(model, ANCHORS, POSITIVES, NEGATIVES)
    ours, ours_grad = _loss_and_grad(model, InfoNCELoss(model, tau=tau), features)
    theirs, theirs_grad = _loss_and_grad(model, MultipleNegativesRankingLoss(model, scale=1 / tau), features)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-4, atol=1e-7)


def test_symmetric_infonce_matches_a_float64_reference(model):
    """doc_to_query (per direction): the mean of the query->products and positive->queries
    cross-entropies, computed here directly in float64 from the same embeddings."""
    tau = 0.05
    features = _features(model, ANCHORS, POSITIVES, NEGATIVES)
    loss = InfoNCELoss(model, tau=tau, directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")
    value, grad = _loss_and_grad(model, loss, features)
    q = _encode(model, ANCHORS).double()
    p, n = _encode(model, POSITIVES).double(), _encode(model, NEGATIVES).double()
    target = torch.arange(len(ANCHORS))
    forward = F.cross_entropy(q @ torch.cat([p, n]).T / tau, target)
    backward = F.cross_entropy(p @ q.T / tau, target)
    torch.testing.assert_close(value.double(), (forward + backward) / 2, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    plain = InfoNCELoss(model, tau=tau)(features, None)
    assert not torch.isclose(value, plain)  # the backward term changes the loss
    assert loss.get_config_dict()["directions"] == ["query_to_doc", "doc_to_query"]


def test_infonce_directions_are_validated_by_the_library(model):
    with pytest.raises(ValueError, match="per_direction"):
        InfoNCELoss(model, directions=("query_to_doc", "query_to_query"), partition_mode="per_direction")


def test_masked_infonce_module_matches_functional(model):
    features = _features(model, ANCHORS, POSITIVES, NEGATIVES)
    loss, grad = _loss_and_grad(model, MaskedInfoNCELoss(model), features)
    q, c = _encode(model, ANCHORS), _encode(model, POSITIVES + NEGATIVES)
    expected = LF.masked_infonce(q, c, torch.arange(len(ANCHORS)), tau=0.02, delta=0.1)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # delta=None is plain InfoNCE at the same temperature
    unmasked = MaskedInfoNCELoss(model, delta=None)(features, None)
    torch.testing.assert_close(unmasked, InfoNCELoss(model, tau=0.02)(features, None))


def test_graded_batch_drops_padding_and_picks_first_top_grade():
    docs = torch.arange(3 * 4 * 2, dtype=torch.float32).view(3, 4, 2)
    candidates, group_index, grades = graded_batch(docs[:, 0], docs, GRADES, gather=False)
    assert group_index.tolist() == [[0, 1, 2, 3], [4, 5, -1, -1], [6, -1, -1, -1]]
    torch.testing.assert_close(candidates, docs.reshape(-1, 2)[(GRADES >= 0).flatten()])
    positive, exclude = top_grade_positives(group_index, grades)
    assert positive.tolist() == [0, 4, 6]
    assert exclude.tolist() == [[-1, -1, -1, -1], [-1, 5, -1, -1], [-1, -1, -1, -1]]  # the other Exact
    positive, _ = top_grade_positives(group_index, grades.clamp(max=2), min_positive_grade=3)
    assert positive.tolist() == [-1, -1, -1]


def _stage2_reference(model, loss_fn_name, **kwargs):
    """Stage-2 loss by hand: padded docs removed, functional terms on encoded embeddings."""
    q = _encode(model, QUERIES)
    flat = [
        d
        for row, g in zip(DOCS, GRADES.tolist(), strict=True)
        for d, gr in zip(row, g, strict=True)
        if gr >= 0
    ]
    c = _encode(model, flat)
    group_index = torch.tensor([[0, 1, 2, 3], [4, 5, -1, -1], [6, -1, -1, -1]])
    scores = q @ c.T
    contrast = LF.masked_infonce_scores(
        scores, torch.tensor([0, 4, 6]), 0.02, 0.1, exclude=torch.tensor([[-1], [5], [-1]])
    )
    s_groups = scores.gather(1, group_index.clamp(min=0))
    ranking = {
        "roar": lambda: LF.roar_alignment_scores(scores, group_index, GRADES, 0.01),
        "bt": lambda: LF.bradley_terry(s_groups, GRADES, 0.05),
        "listmle": lambda: LF.listmle(s_groups, GRADES, 0.05),
    }[loss_fn_name]()
    return contrast, ranking


@pytest.mark.parametrize(
    ("cls", "name", "key"),
    [
        (RoarLoss, "roar", "align"),
        (BradleyTerryLoss, "bt", "bradley_terry"),
        (ListMLELoss, "listmle", "listmle"),
    ],
)
def test_stage2_losses_on_minilm(model, cls, name, key):
    columns = [QUERIES, *zip(*DOCS, strict=True)]
    features = _features(model, *columns)
    loss_fn = cls(model)
    loss, grad = _loss_and_grad(model, loss_fn, features, GRADES)
    contrast, ranking = _stage2_reference(model, name)
    assert set(loss_fn.last_components) == {"contrast", key}
    torch.testing.assert_close(loss_fn.last_components["contrast"], contrast, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss_fn.last_components[key], ranking, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss, contrast + 0.1 * ranking, rtol=1e-4, atol=1e-5)
    assert ranking > 0 and torch.isfinite(grad).all() and grad.abs().sum() > 0
    parts = cls(model, return_components=True)(features, GRADES)
    torch.testing.assert_close(parts["contrast"] + parts[key], loss, rtol=1e-5, atol=1e-6)
    assert loss_fn.get_config_dict()["beta"] == 0.1 and "2606.01504" in loss_fn.citation


def test_stage2_label_errors(model):
    features = _features(model, QUERIES, *zip(*DOCS, strict=True))
    with pytest.raises(ValueError, match="labels"):
        RoarLoss(model)(features, None)
    with pytest.raises(ValueError, match="labels must be"):
        RoarLoss(model)(features, GRADES[:, :3])


def test_matryoshka_wraps_masked_infonce(model):
    dims = [384, 128, 64]
    features = _features(model, ANCHORS, POSITIVES, NEGATIVES)
    model.zero_grad()
    loss = MatryoshkaLoss(model, MaskedInfoNCELoss(model), dims)(features, None)
    loss.backward()
    assert torch.isfinite(_param(model).grad).all()
    # the wrapped loss sees MatryoshkaLoss's truncated, re-normalised embeddings
    q, c = _encode(model, ANCHORS), _encode(model, POSITIVES + NEGATIVES)
    expected = sum(
        LF.masked_infonce(F.normalize(q[:, :d], dim=-1), F.normalize(c[:, :d], dim=-1), torch.arange(4))
        for d in dims
    )
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-4, atol=1e-5)


def test_matryoshka_wraps_roar(model):
    features = _features(model, QUERIES, *zip(*DOCS, strict=True))
    loss = MatryoshkaLoss(model, RoarLoss(model), [384, 64])(features, GRADES)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0


def test_trainer_step_with_graded_labels(tmp_path):
    datasets = pytest.importorskip("datasets")
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    model = SentenceTransformer(str(default_model_path()), device="cpu")
    data = {"query": QUERIES, **{f"doc_{k + 1}": [row[k] for row in DOCS] for k in range(4)}}
    data["label"] = GRADES.tolist()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    loss = RoarLoss(model)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=datasets.Dataset.from_dict(data), loss=loss
    )
    trainer.train()
    assert set(loss.last_components) == {"contrast", "align"}
    assert all(torch.isfinite(v) for v in loss.last_components.values())
