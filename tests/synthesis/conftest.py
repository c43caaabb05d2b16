"""Shared set-up for the synthesis tests: offline, the ``llm`` marker, a fake backend fixture."""

from __future__ import annotations

import os

import pytest
from synthesis_fakes import FakeBackend

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


# --- the demo-shop world of the pipeline and evaluation tests (test_pipeline, test_synth_evaluation) ---
# Session-scoped: loading the bundled MiniLM and encoding the catalogue once keeps both files fast.


class SynthWorld:
    """A small demo shop with its ground truth, the real offline retriever (BM25 + bundled MiniLM), the
    general semantic judge (EmbeddingJudge), an oracle business judge (a CallableJudge standing in for the
    cross-encoder: the demo shop's own grade of any pair), long-tail seeds and their rewrites (a fake LLM
    whose rewrites name the intent's product type and attributes, plus one junk candidate)."""

    def __init__(self, tmp_dir) -> None:
        from shopsearch.data.demo.generator import DemoShopConfig, build_demo_shop
        from shopsearch.data.demo.vocabulary import product_types
        from shopsearch.retrieval.encoder import SentenceEncoder
        from shopsearch.synthesis.judges import CallableJudge, EmbeddingJudge, product_text_map
        from shopsearch.synthesis.provenance import RetrievalSettings, build_offline_retriever
        from shopsearch.synthesis.rewriter import (
            MultiCandidateRewriter,
            RewriterConfig,
            read_rewrites,
            rewrite_seeds,
        )
        from shopsearch.synthesis.seeds import SeedConfig, select_seeds

        self.shop = build_demo_shop(DemoShopConfig(
            n_products=200, n_queries=60, judged_per_query=8, knowledge_share=0.2, negation_share=0.15,
            alternative_share=0.1,
        ))
        self.dataset = self.shop.dataset
        self.texts = product_text_map(self.dataset.catalog)
        self.encoder = SentenceEncoder()
        self.retrieval = RetrievalSettings(depth=20, per_rewrite_k=8)
        ids = self.dataset.catalog.ids
        self.retriever = build_offline_retriever(ids, [self.texts[p] for p in ids], self.retrieval, encoder=self.encoder)
        qdf = self.dataset.queries.df
        self.qid_of = dict(zip(qdf["text"], qdf["query_id"], strict=True))
        self.pid_of: dict[str, str] = {}
        for pid, text in self.texts.items():
            self.pid_of.setdefault(text, pid)
        self.business = CallableJudge(self.oracle, threshold=0.9, name="business", info={"oracle": "demo grade / 3"})
        self.semantic = EmbeddingJudge(self.encoder, threshold=0.3)
        self.seeds = select_seeds(self.dataset.queries, SeedConfig(max_seeds=20)).df
        types = product_types()

        def reply(messages, i: int) -> str:
            query = messages[-1]["content"].split("\n")[0].removeprefix("Query: ")
            intent = self.shop.intents[self.qid_of[query]]
            name = types[intent.types[0]].name.lower()
            values = " ".join(v[0] for a, v in intent.require if a != "compatible_with")
            first = f"{values} {name}".strip() + (f" without {intent.exclude[0][1]}" if intent.exclude else "")
            return f"1. {first}\n2. {name}\n3. cheap stuff online"

        rewriter = MultiCandidateRewriter(FakeBackend(reply), RewriterConfig(n=3))
        self.rewrites_dir = rewrite_seeds(self.seeds, tmp_dir / "rewrites", rewriter, progress=False)
        self.rewrites = read_rewrites(self.rewrites_dir)

    def oracle(self, queries: list[str], texts: list[str]) -> list[float]:
        return [self.shop.grade(self.qid_of[q], self.pid_of[t]) / 3.0 for q, t in zip(queries, texts, strict=True)]

    def models(self):
        from shopsearch.synthesis.pipeline import PipelineModels

        return PipelineModels(self.retriever, self.business, self.semantic, self.texts)

    def pipeline_config(self, **changes):
        from shopsearch.synthesis.pipeline import PipelineConfig

        return PipelineConfig(**{"chunk_size": 4, "max_pairs_per_seed": 5, "retrieval": self.retrieval, **changes})


@pytest.fixture(scope="session")
def synth_world(tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    return SynthWorld(tmp_path_factory.mktemp("synth-world"))


@pytest.fixture(scope="session")
def synth_pipeline_models(synth_world: SynthWorld):
    """One PipelineModels for the session: the reward models and embedding caches it builds are reused."""
    return synth_world.models()


@pytest.fixture(scope="session")
def synth_pairs_run(synth_world: SynthWorld, synth_pipeline_models, tmp_path_factory: pytest.TempPathFactory):
    """The pipeline run once, uninterrupted, over every seed (the reference of the resume tests)."""
    from shopsearch.synthesis.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("synth-pairs") / "uninterrupted"
    return run_pipeline(synth_world.rewrites, out, synth_pipeline_models, synth_world.pipeline_config(), progress=False)
