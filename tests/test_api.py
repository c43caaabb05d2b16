"""The public API (``import shopsearch``): Index build/save/load/search, evaluate over retrievers,
runs, Judgments or a qrels mapping, and the README's Python example, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import shopsearch
from shopsearch.data.errors import ShopsearchError

ROOT = Path(__file__).resolve().parents[1]
HOME_DEPOT = ROOT.parent / "shared" / "data" / "home-depot" / "products.csv"


@pytest.fixture(scope="module")
def products_csv(tmp_path_factory) -> Path:
    """120 real Home Depot titles (drills first), ids renamed P1..P120 as the README's example uses."""
    if not HOME_DEPOT.is_file():
        pytest.skip(f"{HOME_DEPOT} not found (../shared beside the checkout)")
    titles = pd.read_csv(HOME_DEPOT, nrows=5000, encoding="latin-1")["title"].astype(str)
    drills = titles[titles.str.contains("Cordless Drill", case=False)].head(20)
    rest = titles[~titles.index.isin(drills.index)].head(120 - len(drills))
    chosen = pd.concat([drills, rest]).tolist()
    path = tmp_path_factory.mktemp("shop") / "products.csv"
    pd.DataFrame({"product_id": [f"P{i + 1}" for i in range(len(chosen))], "title": chosen}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def index(products_csv) -> shopsearch.Index:
    return shopsearch.Index.build(products_csv, show_progress=False)


def test_the_public_names_resolve_from_the_package():
    for name in shopsearch.__all__:
        assert getattr(shopsearch, name) is not None
    with pytest.raises(AttributeError):
        shopsearch.no_such_name  # noqa: B018


def test_an_index_searches_saves_and_loads(index, tmp_path):
    assert len(index) == 120 and index.parts == ["bm25", "dense"]
    hits = index.search("cordless drill", k=5)
    assert list(hits.columns[:4]) == ["rank", "product_id", "score", "title"]
    assert hits["rank"].tolist() == [1, 2, 3, 4, 5]
    assert hits["title"].str.contains("Drill", case=False).sum() >= 4
    saved = index.save(tmp_path / "saved")
    assert saved.path == tmp_path / "saved"
    again = shopsearch.Index.load(tmp_path / "saved")
    pd.testing.assert_frame_equal(again.search("cordless drill", k=5), hits)
    both = again.search(["cordless drill", "drill"], k=3, system="bm25")
    assert len(both) == 2 and all(len(f) == 3 for f in both)


def test_the_system_grammar_names_a_retriever(index):
    bm25 = index.retriever("bm25").search(["drill"], k=3)
    spelled = index.retriever("bm25+spell").search(["drilll"], k=3)  # a word no product uses
    assert list(spelled.ids[0]) == list(bm25.ids[0])
    with pytest.raises(ShopsearchError, match="unknown system"):
        index.retriever("bm26")


def test_evaluate_takes_retrievers_or_runs_and_a_qrels_mapping(index):
    qrels = {"q1": {"P1": 2, "P2": 1, "P50": 0}, "q2": {"P60": 1}}
    queries = {"q1": "cordless drill", "q2": index.products.loc[59, "title"]}
    report = shopsearch.evaluate({"bm25": index.retriever("bm25"), "hybrid": index.retriever("hybrid")}, qrels,
                                 queries=queries, show_progress=False, n_resamples=200)
    assert report.grade_scheme["relevant_min"] == 1 and report.baseline == "bm25"
    ndcg = report.systems["bm25"]["metrics"]["ndcg@10"]
    assert 0 < ndcg <= 1
    runs = {"bm25": {q: [(p, s) for p, s in hits] for q, hits in report.runs["bm25"].items()}}
    from_runs = shopsearch.evaluate(runs, qrels, n_resamples=200)
    assert from_runs.systems["bm25"]["metrics"]["ndcg@10"] == pytest.approx(ndcg)
    with pytest.raises(ShopsearchError, match="not both"):
        shopsearch.evaluate({"a": runs["bm25"], "b": index.retriever("bm25")}, qrels, queries=queries)
    with pytest.raises(ShopsearchError, match="query texts"):
        shopsearch.evaluate({"b": index.retriever("bm25")}, qrels)
    with pytest.raises(ShopsearchError, match=">= 0"):
        shopsearch.evaluate(runs, {"q1": {"P1": -1}})


def test_the_readme_python_example_runs_as_written(products_csv, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Quick start in Python\s+```python\n(.*?)```", readme, re.S)
    assert code, "README lost its Python example"
    monkeypatch.chdir(products_csv.parent)
    exec(compile(code.group(1), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "product_id" in out and "ndcg@10" in out.lower()
    assert (products_csv.parent / "index" / "shop" / "manifest.json").is_file()
