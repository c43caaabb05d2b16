"""The BM25 logit prior (``stage1.bm25_prior``, ``stage2.bm25_prior``; CLEAR-style residual training): the
prior's values, InfoNCE and ROAR with it against float64 references, the rows' index labels of both stages,
and the config's refusals."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.training.lexical_prior import LexicalPrior, prior_labels
from shopsearch.training.losses import InfoNCELoss

IDS = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"]
TITLES = [
    "Bosch 18V cordless drill driver kit",
    "Nike red road running shoe",
    "Burr coffee grinder, stainless steel",
    "Flexible garden hose, 50 feet",
    "Claw hammer with leather grip",
    "Wool winter socks",
    "Electric kettle 1.7 l",
    "Hose reel cart",
]
ANCHORS = ["cordless drill", "red running shoes", "coffee grinder", "garden hose 50 ft"]
QUERIES = [*ANCHORS, "zzzz qqqq"]  # the last matches no title


@pytest.fixture(scope="module")
def bm25():
    return BM25Retriever(IDS, TITLES)


def test_score_matrix_agrees_with_score_candidates(bm25):
    rows = np.array([7, 0, 3, 3, 5])
    matrix = bm25.score_matrix(QUERIES + ANCHORS[:1], rows)
    expected = bm25.score_candidates(QUERIES + ANCHORS[:1], [[IDS[r] for r in rows]] * 6)
    np.testing.assert_allclose(matrix, np.stack(expected))
    assert matrix.shape == (6, 5) and (matrix[4] == 0).all() and (matrix[3, 2:4] > 0).all()
    with pytest.raises(Exception, match="catalogue rows"):
        bm25.score_matrix(ANCHORS, np.array([8]))


def test_prior_is_bm25_over_the_querys_best_score_times_the_weight(bm25):
    prior = LexicalPrior(bm25, QUERIES, weight=0.4)
    rows = torch.arange(len(IDS))
    values = prior(torch.tensor([3, 4, 0]), rows)
    scores = bm25.score_matrix([QUERIES[i] for i in (3, 4, 0)], np.arange(len(IDS)))
    assert values.dtype == torch.float32 and values.shape == (3, len(IDS))
    torch.testing.assert_close(values[0], torch.tensor(0.4 * scores[0] / scores[0].max(), dtype=torch.float32))
    assert values[0].max().item() == pytest.approx(0.4)  # the best product of the catalogue gets the whole weight
    assert values[0, 3] > values[0, 7] > 0 and values[0, 0] == 0  # garden hose: p3 first, then the hose reel
    assert (values[1] == 0).all()  # no term in the index: no prior, no division by zero
    with pytest.raises(ValueError, match="positive"):
        LexicalPrior(bm25, QUERIES, weight=0)
    assert prior_labels([2, 0], [[5, 1], [3, 3]]) == [[2, 5, 1], [0, 3, 3]]


def test_infonce_with_prior_matches_a_float64_reference(minilm_eval, bm25):
    """softmax over (cos + w * bm25 / max) / tau, candidates = all positives then all negatives."""
    model, tau = minilm_eval, 0.05
    prior = LexicalPrior(bm25, ANCHORS, weight=0.5)
    positives, negatives = [0, 1, 2, 3], [4, 5, 6, 7]
    labels = torch.tensor(prior_labels(range(4), [[p, n] for p, n in zip(positives, negatives, strict=True)]))
    features = [model.preprocess(col) for col in (ANCHORS, [TITLES[i] for i in positives], [TITLES[i] for i in negatives])]
    param = model[0].auto_model.encoder.layer[-1].output.dense.weight
    model.zero_grad()
    value = InfoNCELoss(model, tau=tau, prior=prior)(features, labels)
    value.backward()
    grad = param.grad.clone()
    # the reference: one forward per column, float64 scores plus the prior computed here from BM25
    model.zero_grad()
    q, pos, neg = (F.normalize(model(dict(f))["sentence_embedding"].double(), dim=-1) for f in features)
    bonus = torch.as_tensor(bm25.score_matrix(ANCHORS, np.array(positives + negatives)), dtype=torch.float64)
    bonus = 0.5 * bonus / bonus.max(dim=1, keepdim=True).values
    expected = F.cross_entropy((q @ torch.cat([pos, neg]).T + bonus) / tau, torch.arange(4))
    expected.backward()
    torch.testing.assert_close(value.double(), expected.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad, param.grad, rtol=1e-3, atol=1e-6)
    assert grad.abs().sum() > 0
    model.zero_grad()
    plain = InfoNCELoss(model, tau=tau)(features, None)
    assert value < plain  # the positives lead on BM25 here: the prior makes them easier
    mixed = InfoNCELoss(model, tau=tau, prior=prior, prior_share=0.25)(features, labels)
    torch.testing.assert_close(mixed, 0.75 * plain + 0.25 * value, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="prior_share"):
        InfoNCELoss(model, prior=prior, prior_share=0)
    with pytest.raises(ValueError, match="labels of shape"):
        InfoNCELoss(model, tau=tau, prior=prior)(features, None)
    with pytest.raises(ValueError, match="query_to_doc"):
        InfoNCELoss(model, prior=prior, directions=("query_to_doc", "doc_to_query"))
    assert InfoNCELoss(model, prior=prior).get_config_dict()["prior"] == 0.5


def test_stage1_rows_carry_indices_into_the_prior(esci_shop):
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.stage_data import stage1_data

    shop, texts = esci_shop
    config = TrainConfig.model_validate({"stage1": {"hard_negatives": 1, "pseudo_query_ratio": 0, "bm25_prior": 0.3}})
    rows, keys, stats, prior = stage1_data(shop, config, texts, _FirstProducts(texts))  # type: ignore[arg-type]
    assert isinstance(prior, LexicalPrior) and prior.weight == 0.3
    assert stats["lexical_prior"]["queries"] == len(prior.queries) and len(keys) == len(rows)
    ids = shop.catalog.ids
    for row in rows.select(range(min(40, len(rows)))):
        q, pos, neg = row["label"]
        assert prior.queries[q] == row["anchor"]
        assert texts[ids[pos]] == row["positive"] and texts[ids[neg]] == row["negative_1"]
    _, _, off_stats, off = stage1_data(
        shop, TrainConfig.model_validate({"stage1": {"hard_negatives": 0, "pseudo_query_ratio": 0}}), texts, None  # type: ignore[arg-type]
    )
    assert off is None and "lexical_prior" not in off_stats


def test_config_refuses_the_prior_beside_the_mask_or_other_directions():
    from pydantic import ValidationError

    from shopsearch.training.config import TrainConfig

    with pytest.raises(ValidationError, match="bm25_prior"):
        TrainConfig.model_validate({"stage1": {"bm25_prior": 0.3, "loss": "masked_infonce"}})
    with pytest.raises(ValidationError, match="bm25_prior"):
        TrainConfig.model_validate({"stage1": {"bm25_prior": 0.3, "directions": ["query_to_doc", "doc_to_query"]}})
    with pytest.raises(ValidationError):
        TrainConfig.model_validate({"stage1": {"bm25_prior": -0.1}})


class _FirstProducts:
    """A stand-in miner with seeded random vectors: mining needs some ranking, not a good one."""

    dimension, normalize, model_id, bf16 = 8, True, "random", False

    def __init__(self, texts):
        self.texts = texts

    def encode(self, texts, *, is_query=False, show_progress=False):
        rng = np.random.default_rng(len(texts) + is_query)
        vectors = rng.normal(size=(len(texts), 8)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_trainer_hands_the_prior_and_its_share_to_the_stage1_loss(bm25):
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.trainer import _loss

    prior = LexicalPrior(bm25, ANCHORS, weight=0.3)
    config = TrainConfig.model_validate({"stage1": {"bm25_prior": 0.3, "bm25_prior_share": 0.5}})
    loss = _loss(config, "1", None, prior)
    assert isinstance(loss, InfoNCELoss) and loss.prior is prior and loss.prior_share == 0.5
    assert _loss(TrainConfig(), "1", None).prior is None


# --- stage 2: the prior under the graded losses -------------------------------------------------


def test_graded_loss_with_prior_scores_the_hybrid_over_present_slots(bm25):
    """RoarLoss with a prior = its terms on cos + w * bm25 / max over the batch's present products, in
    graded_batch's order; padded slots neither enter the softmax nor read the prior."""
    from shopsearch.training.losses import RoarLoss
    from shopsearch.training.losses import functional as LF
    from shopsearch.training.losses.base import top_grade_positives

    torch.manual_seed(0)
    grades = torch.tensor([[3, 1, 0], [2, 0, -1], [3, 2, -1]])
    rows = torch.tensor([[3, 7, 0], [0, 4, 0], [2, 6, 0]])  # the padded slots' rows (0) are never read
    queries = [3, 0, 2]  # garden hose, cordless drill, coffee grinder
    labels = torch.cat([grades, torch.tensor(queries)[:, None], rows], dim=1)
    q, docs = torch.randn(3, 16), [torch.randn(3, 16) for _ in range(3)]
    prior = LexicalPrior(bm25, ANCHORS, weight=0.3)
    value = RoarLoss(None, prior=prior).compute_loss_from_embeddings([q, *docs], labels)

    # the reference in float64: present products row-major, the prior from BM25 directly
    qn = F.normalize(q.double(), dim=-1)
    dn = F.normalize(torch.stack(docs, dim=1).double(), dim=-1)
    present = grades >= 0
    candidates, cand_rows = dn[present], rows[present].numpy()
    bonus = bm25.score_matrix([ANCHORS[i] for i in queries], cand_rows)
    best = np.array([bm25.search([ANCHORS[i]], 1).scores[0, 0] for i in queries])
    scores = qn @ candidates.T + torch.as_tensor(0.3 * bonus / best[:, None])
    column = (torch.cumsum(present.flatten().long(), 0) - 1).view(3, 3).where(present, torch.tensor(-1))
    positive, exclude = top_grade_positives(column, grades)
    expected = LF.masked_infonce_scores(scores, positive, 0.02, 0.1, exclude=exclude) + 0.1 * LF.roar_alignment_scores(
        scores, column, grades, 0.01
    )
    torch.testing.assert_close(value.double(), expected, rtol=1e-4, atol=1e-5)
    plain = RoarLoss(None).compute_loss_from_embeddings([q, *docs], grades)
    mixed = RoarLoss(None, prior=prior, prior_share=0.5).compute_loss_from_embeddings([q, *docs], labels)
    torch.testing.assert_close(mixed, 0.5 * plain + 0.5 * value, rtol=1e-5, atol=1e-6)
    assert not torch.isclose(plain, value)
    with pytest.raises(ValueError, match=r"labels of shape \(batch, 7\)"):
        RoarLoss(None, prior=prior).compute_loss_from_embeddings([q, *docs], grades)
    with pytest.raises(ValueError, match="prior_share"):
        RoarLoss(None, prior=prior, prior_share=1.5)
    assert RoarLoss(None, prior=prior).get_config_dict()["prior"] == 0.3


def test_stage2_rows_carry_indices_into_the_prior(esci_shop):
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.stage_data import stage2_data

    shop, texts = esci_shop
    config = TrainConfig.model_validate({"stage2": {"hard_negatives": 0, "bm25_prior": 0.2, "max_group_size": 6}})
    rows, keys, stats, prior = stage2_data(shop, config, texts)
    assert isinstance(prior, LexicalPrior) and prior.weight == 0.2 and len(keys) == len(rows) > 0
    assert stats["lexical_prior"]["queries"] == len(prior.queries)
    ids = shop.catalog.ids
    for row in rows.select(range(min(40, len(rows)))):
        label = row["label"]
        grades, query, products = label[:6], label[6], label[7:]
        assert len(label) == 13 and prior.queries[query] == row["query"]
        for k, (grade, product) in enumerate(zip(grades, products, strict=True)):
            if grade >= 0:
                assert texts[ids[product]] == row[f"doc_{k + 1}"]
            else:
                assert row[f"doc_{k + 1}"] == ""
    assert TrainConfig().stage2.bm25_prior == 0.3  # on by default (docs/training.md)
    off_config = TrainConfig.model_validate({"stage2": {"hard_negatives": 0, "bm25_prior": 0}})
    _, _, off_stats, off = stage2_data(shop, off_config, texts)
    assert off is None and "lexical_prior" not in off_stats


def test_stage2_prior_config_and_trainer_wiring(bm25):
    from pydantic import ValidationError

    from shopsearch.training.config import TrainConfig
    from shopsearch.training.losses import RoarLoss
    from shopsearch.training.trainer import _loss

    TrainConfig.model_validate({"stage2": {"distill_weight": 0.5}})  # the prior and distillation combine
    with pytest.raises(ValidationError, match=r"teacher: cross_encoder needs stage2\.teacher_model"):
        TrainConfig.model_validate({"stage2": {"distill_weight": 0.5, "teacher": "cross_encoder"}})
    prior = LexicalPrior(bm25, ANCHORS, weight=0.3)
    config = TrainConfig.model_validate({"stage2": {"bm25_prior": 0.3, "bm25_prior_share": 0.5}})
    loss = _loss(config, "2", None, prior)
    assert isinstance(loss, RoarLoss) and loss.prior is prior and loss.prior_share == 0.5
    assert _loss(TrainConfig(), "2", None).prior is None
