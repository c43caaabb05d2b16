"""The evaluator reproduces the Home Depot reference figures (bm25_dev run) to 1e-6, overall and per query."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopsearch.data.schema import HOME_DEPOT, Judgments, Queries
from shopsearch.eval import evaluate_runs, per_query_metrics, read_trec_run

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "home-depot"
if not DATA.exists():  # the tree may sit elsewhere; the shared data lives at /work/shared
    DATA = Path("/work/shared/data/home-depot")
RUN = DATA / "reference" / "bm25_dev.run.gz"
REF = DATA / "reference" / "bm25_dev_metrics.json"
JUDGMENTS = DATA / "judgments_dev.csv"

pytestmark = [
    pytest.mark.homedepot,
    pytest.mark.skipif(not (RUN.exists() and REF.exists() and JUDGMENTS.exists()), reason="Home Depot data absent"),
]
TOL = 1e-6


@pytest.fixture(scope="module")
def judged() -> pd.DataFrame:
    df = pd.read_csv(JUDGMENTS, dtype={"query_id": str, "product_id": str})
    df["grade"] = np.round(3 * (df["relevance"] - 1)).astype(int)
    return df


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REF.read_text())


def _qrels(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for q, p, g in zip(df["query_id"], df["product_id"], df["grade"], strict=True):
        out.setdefault(q, {})[p] = int(g)
    return out


def test_reference_metrics_overall_and_per_query(judged, reference):
    run = read_trec_run(RUN)
    keys = list(reference["metrics"])
    frame = per_query_metrics(run, _qrels(judged), HOME_DEPOT, keys)
    assert len(frame) == reference["queries"] == 1152
    assert int(frame["recall@100"].notna().sum()) == reference["queries_with_relevant"] == 935
    for key, value in reference["metrics"].items():
        assert abs(frame[key].mean() - value) <= TOL, key
    assert set(reference["per_query"]) == set(frame.index)
    for qid, figures in reference["per_query"].items():
        row = frame.loc[qid]
        for key in keys:
            if key in figures:
                assert abs(row[key] - figures[key]) <= TOL, (qid, key)
            else:  # no relevant product: left out of binary metrics
                assert np.isnan(row[key]), (qid, key)


def test_reference_through_the_report(judged, reference, tmp_path):
    """The same figures come out of evaluate_runs and its JSON (the path the CLI takes)."""
    judgments = Judgments(judged[["query_id", "product_id", "grade"]], HOME_DEPOT)
    queries = Queries(judged.drop_duplicates("query_id").rename(columns={"query": "text"})[["query_id", "text"]])
    report = evaluate_runs({"bm25": read_trec_run(RUN)}, queries, judgments, metrics=list(reference["metrics"]),
                           n_resamples=200, dataset_info={"name": "home-depot", "split": "dev", "products": 54667})
    out = json.loads(report.write_json(tmp_path / "r.json").read_text())
    system = out["systems"]["bm25"]
    for key, value in reference["metrics"].items():
        assert abs(system["metrics"][key] - value) <= TOL
    for qid, figures in reference["per_query"].items():
        assert set(system["per_query"][qid]) == set(figures)
        for key, value in figures.items():
            assert abs(system["per_query"][qid][key] - value) <= TOL
    assert out["counts"]["queries_without_relevant_left_out_of_binary_metrics"] == 1152 - 935
    assert out["strata_method"]["frequency"]["method"] == "proxy:length"  # Home Depot has no traffic counts
