"""Listwise distillation from the hybrid teacher: the KL term against a float64 reference (values and
gradients), its edge cases, the teacher's fusion, the label layout, the loss module on the bundled
MiniLM, and a stage-2 run that distils on a tiny demo shop."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd
import pytest
import torch

from shopsearch.training.groups import groups_to_columns
from shopsearch.training.losses.distillation import listwise_kl
from shopsearch.training.teacher import hybrid_teacher_scores


def _reference_kl(student: np.ndarray, teacher: np.ndarray, present: np.ndarray) -> float:
    rows = []
    for s, t, p in zip(student, teacher, present, strict=True):
        if p.sum() < 2:
            continue
        s, t = s[p].astype(np.float64), t[p].astype(np.float64)
        ps = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
        pt = np.exp(t - t.max()) / np.exp(t - t.max()).sum()
        rows.append(float((pt * (np.log(pt) - np.log(ps))).sum()))
    return float(np.mean(rows)) if rows else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_listwise_kl_matches_a_float64_reference(seed):
    rng = np.random.default_rng(seed)
    student, teacher = rng.normal(0, 5, (6, 5)), rng.normal(0, 5, (6, 5))
    present = rng.random((6, 5)) > 0.3
    present[0] = False  # a row of padding only
    present[1] = [True, False, False, False, False]  # one product: nothing to order
    got = listwise_kl(torch.tensor(student), torch.tensor(teacher), torch.tensor(present))
    assert got.item() == pytest.approx(_reference_kl(student, teacher, present), rel=1e-9, abs=1e-12)
    s = torch.tensor(student, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: listwise_kl(x, torch.tensor(teacher), torch.tensor(present)), (s,))


def test_listwise_kl_is_zero_for_the_teachers_own_order_and_finite_at_extremes():
    logits = torch.tensor([[3.0, 1.0, -2.0], [0.5, 0.5, 9.0]])
    present = torch.ones(2, 3, dtype=torch.bool)
    assert listwise_kl(logits, logits, present).item() == pytest.approx(0.0, abs=1e-7)
    huge = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    value = listwise_kl(huge, torch.tensor([[-1e4, 1e4, 0.0]]), torch.ones(1, 3, dtype=torch.bool))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(huge.grad).all()
    nothing = torch.zeros(2, 3, requires_grad=True)
    zero = listwise_kl(nothing, nothing.detach(), torch.zeros(2, 3, dtype=torch.bool))
    assert zero.item() == 0.0 and zero.requires_grad  # attached: a batch without pairs still backprops


class _FixedScorer:
    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table = table

    def score_candidates(self, queries, candidates):
        return [np.array([self.table[(q, p)] for p in cands]) for q, cands in zip(queries, candidates, strict=True)]


def test_the_teacher_averages_min_max_normalised_scorers_per_group():
    bm25 = _FixedScorer({("q1", "a"): 10.0, ("q1", "b"): 0.0, ("q1", "c"): 5.0, ("q2", "a"): 2.0, ("q2", "d"): 2.0})
    dense = _FixedScorer({("q1", "a"): 0.2, ("q1", "b"): 0.6, ("q1", "c"): 0.4, ("q2", "a"): 0.9, ("q2", "d"): 0.1})
    scores = hybrid_teacher_scores(["q1", "q2"], [["a", "b", "c"], ["a", "d"]], [bm25, dense], batch_size=1)
    np.testing.assert_allclose(scores[0], [(1 + 0) / 2, (0 + 1) / 2, (0.5 + 0.5) / 2])
    np.testing.assert_allclose(scores[1], [(1 + 1) / 2, (1 + 0) / 2])  # equal BM25 scores count 1 each
    with pytest.raises(ValueError, match="product lists"):
        hybrid_teacher_scores(["q1"], [], [bm25])


def test_teacher_scores_follow_the_grades_in_the_labels():
    groups = pd.DataFrame({"query": ["q1", "q2"], "product_ids": [["a", "b"], ["c"]], "grades": [[3, 0], [2]]})
    text = {"a": "A", "b": "B", "c": "C"}
    data = groups_to_columns(groups, text, size=3, teacher=[[0.9, 0.1], [0.5]])
    assert data["label"] == [[3.0, 0.0, -1.0, 0.9, 0.1, 0.0], [2.0, -1.0, -1.0, 0.5, 0.0, 0.0]]
    assert groups_to_columns(groups, text, size=3)["label"] == [[3, 0, -1], [2, -1, -1]]
    with pytest.raises(ValueError, match="one score per product"):
        groups_to_columns(groups, text, size=3, teacher=[[0.9], [0.5]])


def test_the_loss_adds_gamma_times_the_group_kl_to_the_stage2_loss():
    from sentence_transformers import SentenceTransformer

    from shopsearch.retrieval.encoder import default_model_path
    from shopsearch.training.losses import ListwiseDistillationLoss, RoarLoss

    torch.manual_seed(0)
    model = SentenceTransformer(str(default_model_path()), device="cpu")
    model.eval()
    queries = ["cordless drill", "red running shoes"]
    docs = [["Bosch 18V cordless drill", "drill bit set", "wool socks"], ["Nike red running shoe", "Adidas sneaker", ""]]
    grades = torch.tensor([[3, 1, 0], [3, 2, -1]])
    teacher = torch.tensor([[0.2, 0.9, 0.1], [1.0, 0.0, 0.0]])
    features = [model.preprocess(list(col)) for col in [queries, *zip(*docs, strict=True)]]
    loss_fn = ListwiseDistillationLoss(model, RoarLoss(model), gamma=0.5, tau_student=0.05, tau_teacher=0.1)
    loss = loss_fn(features, torch.cat([grades.float(), teacher], dim=1))
    loss.backward()
    base = RoarLoss(model)(features, grades).detach()
    with torch.no_grad():
        q = model.encode(queries, convert_to_tensor=True, normalize_embeddings=True)
        d = torch.stack([model.encode(row, convert_to_tensor=True, normalize_embeddings=True) for row in docs])
    student = (torch.einsum("bd,bgd->bg", q, d) / 0.05).numpy()
    expected = _reference_kl(student, (teacher / 0.1).numpy(), (grades >= 0).numpy())
    assert loss_fn.last_components["distill"].item() == pytest.approx(expected, rel=1e-3)
    assert loss.item() == pytest.approx(base.item() + 0.5 * expected, rel=1e-3)
    assert set(loss_fn.last_components) == {"contrast", "align", "distill"} and "RocketQAv2" in loss_fn.citation
    with pytest.raises(ValueError, match="teacher scores"):
        loss_fn(features, grades)

    # with a logit prior the base loss reads the prior's indices after the teacher scores; the KL does not
    def prior(query_index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return 0.01 * rows.float()[None, :] + 0.1 * query_index.float()[:, None]

    indices = torch.tensor([[0, 4, 7, 9], [1, 3, 5, 0]])
    with_prior = ListwiseDistillationLoss(model, RoarLoss(model, prior=prior), gamma=0.5, tau_student=0.05,
                                          tau_teacher=0.1)
    loss = with_prior(features, torch.cat([grades.float(), teacher, indices.float()], dim=1))
    base = RoarLoss(model, prior=prior)(features, torch.cat([grades, indices], dim=1)).detach()
    assert base.item() != pytest.approx(RoarLoss(model)(features, grades).item(), rel=1e-3)  # the prior counts
    assert loss.item() == pytest.approx(base.item() + 0.5 * expected, rel=1e-3)
    # a distillation-only product (-2) joins the KL and stays out of the base loss
    only = torch.tensor([[3, 1, -2], [3, 2, -1]])
    loss = loss_fn(features, torch.cat([only.float(), teacher], dim=1))
    base = RoarLoss(model)(features, only.masked_fill(only == -2, -1)).detach()
    expected_kl = _reference_kl(student, (teacher / 0.1).numpy(), (only != -1).numpy())
    assert loss_fn.last_components["distill"].item() == pytest.approx(expected_kl, rel=1e-3)
    assert loss.item() == pytest.approx(base.item() + 0.5 * expected_kl, rel=1e-3)
    with pytest.raises(ValueError, match="prior's 4 indices"):
        with_prior(features, torch.cat([grades.float(), teacher], dim=1))


def test_stage2_distils_the_hybrid_on_a_tiny_shop(tmp_path):
    from shopsearch.cli.train_cmd import split_by_query
    from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.trainer import train

    shop = generate_demo_shop(DemoShopConfig(n_products=200, n_queries=40, seed=5))
    train_set, dev_set = split_by_query(shop, 0.25, seed=0)
    config = TrainConfig.model_validate({
        "seed": 1, "stage": "2",
        "stage2": {"batch_size": 4, "max_group_size": 4, "hard_negatives": 1, "mining_top_k": 10, "distill_weight": 1.0,
                   "bm25_prior": 0},
        "dev": {"pool_size": None}, "save_steps": 10, "logging_steps": 1, "max_steps": 2,
    })
    train(train_set, config, tmp_path / "run", dev_set=dev_set, show_progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    teacher = manifest["stages"]["2"]["data"]["teacher"]
    assert teacher["kind"].startswith("hybrid") and 0 < teacher["mean_score"] < 1
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(np.isfinite(r.get("loss", np.nan)) for r in log)
