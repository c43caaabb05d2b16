"""The demo synthesis pass (``shopsearch.synthesis.demo``) on a tiny demo shop with a scripted fake LLM:
counts at every filter, the pairs file ``TrainConfig.extra_pairs`` reads, no seed label used to build it,
the rule-based fallback when no local LLM loads."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from synthesis_fakes import FakeBackend

from shopsearch.data.demo import DemoShopConfig, build_demo_shop
from shopsearch.synthesis import demo
from shopsearch.synthesis.llm import LLMError
from shopsearch.synthesis.parsing import parse_candidates
from shopsearch.synthesis.rewards import lost_negations


@pytest.fixture(scope="module")
def shop():
    return build_demo_shop(DemoShopConfig(n_products=200, n_queries=80, judged_per_query=8, seed=7,
                                          knowledge_share=0.2, negation_share=0.15, alternative_share=0.1))


@pytest.fixture(scope="module")
def result(shop, tmp_path_factory):
    """One pass with a fake LLM answering with the rule rewrites plus one junk line per prompt."""
    def reply(messages, i: int) -> str:
        rules = demo.RuleBasedBackend().chat(messages)[0]
        return f"{rules}\n4. cheap stuff online"

    from shopsearch.data.render import ProductTextRenderer
    from shopsearch.retrieval.store import build_index

    out = tmp_path_factory.mktemp("demo-synth")
    # as the demo runs it: over the index it has already built (vectors, BM25 and text rendering reused)
    index = build_index(shop.dataset.catalog, out / "index", renderer=ProductTextRenderer(fields=demo.DEMO_TEXT_FIELDS))
    summary = demo.run_demo_synthesis(shop.dataset, out / "synthesis", backend=FakeBackend(reply), max_seeds=6,
                                      index_dir=index, progress=False)
    return summary, out / "synthesis"


def test_the_pass_reports_every_filter_and_writes_pairs(result):
    summary, out = result
    c = summary["counts"]
    assert summary["backend"]["kind"] == "given" and summary["backend"]["name"] == "fake"
    assert 0 < summary["seeds"] <= 6 and set(summary["seed_types"]) <= set(demo.DEMO_TYPES)
    assert c["seeds"] == summary["seeds"] and c["candidates"] == summary["rewrites"]["candidates"]
    assert c["candidates"] >= c["rewrites_kept"] > 0
    assert c["unique_pairs"] >= max(c["accepted_business"], c["accepted_semantic"]) >= c["accepted_both"]
    assert c["accepted_both"] >= c["after_cap"] >= c["after_dedup"] == summary["pairs"]
    pairs = pd.read_parquet(summary["pairs_file"])
    assert {"query", "product_id", "seed_query_id", "rewrite"} <= set(pairs.columns) and len(pairs) == summary["pairs"]
    assert json.loads((out / "summary.json").read_text())["counts"] == c
    assert set(summary["seconds"]) == {"seeds_and_rewrites", "index", "judges", "pipeline"}


def test_judges_are_fitted_without_seed_labels(result, shop):
    summary, out = result
    business = summary["judges"]["business"]
    assert business["calibration"]["target_precision"] == demo.BUSINESS_PRECISION
    assert set(business["coefficients"]) == set(demo.FEATURES)
    seeds = pd.read_parquet(out / "seeds" / "seeds.parquet")
    judged = shop.dataset.judgments.df
    non_seed_pairs = (~judged["query_id"].isin(set(seeds["seed_query_id"]))).sum()
    # fitted on 70% of the non-seed queries' judged pairs plus one sampled product per query
    assert 0 < business["fit_pairs"] < non_seed_pairs + len(shop.dataset.queries)
    assert summary["audit"]["note"].startswith("seed labels read only here")


def test_without_an_index_the_catalogue_is_rendered_and_encoded_here(shop):
    bm25, dense, texts = demo._retrievers(shop.dataset, None, ("title",))
    assert list(dense.product_ids) == list(shop.dataset.catalog.ids) == list(texts)
    assert dense.vectors.shape == (len(texts), dense.encoder.dimension)
    assert bm25.search(["sofa"], 3).ids.shape == (1, 3)


def test_the_default_backend_falls_back_to_rules_and_says_why(monkeypatch):
    import shopsearch.synthesis.llm as llm

    def refuse(kind: str, **options: object) -> None:
        raise LLMError("the llama_cpp backend needs llama-cpp-python: `pip install llama-cpp-python`")

    monkeypatch.setattr(llm, "build_backend", refuse)
    backend, info = demo.default_backend()
    assert isinstance(backend, demo.RuleBasedBackend)
    assert info["kind"] == "rule-based fallback" and "llama-cpp-python" in info["reason"]


@pytest.mark.parametrize(("query", "qtype"), [
    ("sneakers that aren't leather", "negative"), ("frying pan not aluminium", "negative"),
    ("down free mummy sleeping bag", "negative"), ("cushion without feathers", "negative"),
])
def test_rule_rewrites_keep_every_negation(query: str, qtype: str):
    rewrites = demo.rule_rewrites(query, qtype)
    assert len(rewrites) == 3
    assert all(not lost_negations(query, r) for r in rewrites)


def test_rule_rewrites_drop_the_brand_of_an_alternative_query():
    assert demo.rule_rewrites("cheaper phone case than armorly", "alternative")[0] == "phone case"
    assert demo.rule_rewrites("whirlo vacuum filter dupe", "alternative")[0] == "vacuum filter"


def test_rule_based_backend_answers_the_rewriter_prompt_deterministically():
    from shopsearch.synthesis.prompts import build_messages

    messages = build_messages("what drill do i need for brick", "qa", n=3)
    backend = demo.RuleBasedBackend()
    first, second = backend.chat(messages, n=2)
    assert first == second == backend.chat(messages)[0]
    parsed = parse_candidates(first, "what drill do i need for brick", 3)
    assert parsed.candidates[0] == "drill brick" and parsed.structure == "numbered"
