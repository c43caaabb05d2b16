"""The synthetic-pairs pipeline (METHOD.md part B, steps 3-6) on the demo shop: real rewriter parsing
(fake LLM), real rewards, BM25 + bundled MiniLM retrieval, the embedding judge and an oracle business
judge; counts at every filter, provenance, and resumption after an interruption."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from shopsearch.artifacts import read_manifest
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.pipeline import (
    KIND,
    LEDGER_FILE,
    format_summary,
    read_pairs,
    run_pipeline,
)
from shopsearch.synthesis.provenance import (
    PAIR_COLUMNS,
    SelectionSettings,
    cap_per_seed,
    dedup_pairs,
    select_rewrites,
)
from shopsearch.training.stage_data import read_pair_file


class Interrupt(RuntimeError):
    """Stands in for a kill: raised from the chunk callback after N chunks."""


def interrupt_after(n: int):
    def callback(index: int, entry: dict) -> None:
        if index + 1 >= n:
            raise Interrupt(f"stopped after chunk {index}")
    return callback


def same_pairs(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Identical pairs and provenance; judge and reward scores equal up to float noise (a resumed run
    encodes some texts in other batches than an uninterrupted one)."""
    assert list(a.columns) == list(b.columns) == list(PAIR_COLUMNS)
    floats = [c for c in a.columns if a[c].dtype.kind == "f"]
    others = [c for c in a.columns if c not in floats]
    pd.testing.assert_frame_equal(a[others].reset_index(drop=True), b[others].reset_index(drop=True))
    np.testing.assert_allclose(a[floats].to_numpy(float), b[floats].to_numpy(float), atol=1e-5)


def test_pipeline_counts_provenance_and_output(synth_world, synth_pairs_run) -> None:
    result, world = synth_pairs_run, synth_world
    pairs, c = result.pairs, result.summary["counts"]
    seeds = world.rewrites
    assert c["seeds"] == len(seeds) == 20 and c["candidates"] == int(seeds["candidates"].map(len).sum())
    # every filter only removes
    chain = ["candidates", "rewrites_kept"]
    assert all(c[a] >= c[b] for a, b in pairwise(chain))
    chain = ["retrieved", "unique_pairs", "accepted_business", "accepted_both", "after_cap", "after_dedup"]
    assert all(c[a] >= c[b] for a, b in pairwise(chain))
    assert c["accepted_semantic"] >= c["accepted_both"] and c["after_dedup"] == len(pairs) > 0
    assert c["rewrites_kept"] < c["candidates"]  # the junk candidate falls to the relevance filter
    assert not pairs["rewrite"].eq("cheap stuff online").any()

    # both judges accepted every pair, judged for the ORIGINAL query (the oracle: Exact only)
    assert pairs["business_accept"].all() and pairs["semantic_accept"].all()
    assert (pairs["semantic_score"] >= world.semantic.threshold - 1e-6).all()
    assert world.oracle(pairs["query"].tolist(), [world.texts[p] for p in pairs["product_id"]]) == [1.0] * len(pairs)
    text_of = dict(zip(seeds["seed_query_id"], seeds["seed_query"], strict=True))
    assert (pairs["query"] == pairs["seed_query_id"].map(text_of)).all()
    cands = dict(zip(seeds["seed_query_id"], seeds["candidates"].map(list), strict=True))
    assert all(r == cands[s][i] for s, r, i in zip(pairs["seed_query_id"], pairs["rewrite"], pairs["candidate_id"],
                                                   strict=True))
    # source and ranks agree; cap and dedup hold
    assert set(pairs["source"]) <= {"bm25", "dense", "both"}
    assert (pairs["bm25_rank"].notna() == pairs["source"].isin(["bm25", "both"])).all()
    assert (pairs["dense_rank"].notna() == pairs["source"].isin(["dense", "both"])).all()
    assert pairs["rank"].between(1, world.retrieval.per_rewrite_k).all() and (pairs["n_rewrites"] >= 1).all()
    assert pairs.groupby("seed_query_id").size().max() <= 5
    assert not pairs.duplicated(["query", "product_id"]).any()
    assert pairs["reward"].notna().all() and pairs["query_type"].isin(
        ["qa", "negative", "alternative", "knowledge", "plain"]).all()

    # manifest, summary by type, and the file training reads as extra pairs
    manifest = read_manifest(result.path, kind=KIND)
    assert manifest["summary"]["counts"] == c
    assert sum(t["pairs"] for t in result.summary["by_type"].values()) == len(pairs)
    extra = read_pair_file(result.path / "pairs.parquet")
    assert extra[["query", "product_id"]].equals(pairs[["query", "product_id"]].astype({"product_id": str}))
    table = format_summary(result.summary)
    for label in ("seeds", "rewrites kept", "candidates retrieved", "accepted by business judge",
                  "accepted by semantic judge", "accepted by both", "after cap", "after dedup"):
        assert label in table


def test_summary_is_printed(synth_world, synth_pipeline_models, synth_pairs_run, tmp_path, capsys) -> None:
    # a finished run directory is not recomputed; the summary goes to the terminal
    again = run_pipeline(synth_world.rewrites, synth_pairs_run.path, synth_pipeline_models,
                         synth_world.pipeline_config(), progress=False)
    same_pairs(again.pairs, synth_pairs_run.pairs)
    few = synth_world.rewrites.head(3)
    run_pipeline(few, tmp_path / "printed", synth_pipeline_models, synth_world.pipeline_config(), progress=True)
    captured = capsys.readouterr()
    assert "accepted by both" in captured.out and "after dedup" in captured.out


def test_resume_after_interruption_equals_uninterrupted_run(synth_world, synth_pipeline_models, synth_pairs_run,
                                                            tmp_path) -> None:
    out, config = tmp_path / "resumed", synth_world.pipeline_config()
    with pytest.raises(Interrupt):
        run_pipeline(synth_world.rewrites, out, synth_pipeline_models, config, progress=False,
                     on_chunk_done=interrupt_after(2))
    ledger = json.loads((out / LEDGER_FILE).read_text())["chunks"]
    assert sorted(ledger) == ["0", "1"] and not (out / "pairs.parquet").exists()
    seen: list[int] = []
    resumed = run_pipeline(synth_world.rewrites, out, synth_pipeline_models, config, progress=False,
                           on_chunk_done=lambda i, entry: seen.append(i))
    assert seen == [2, 3, 4] and resumed.resumed_chunks == 2  # done chunks are not redone
    same_pairs(resumed.pairs, synth_pairs_run.pairs)
    assert resumed.summary["counts"] == synth_pairs_run.summary["counts"]
    same_pairs(read_pairs(out), synth_pairs_run.pairs)


def test_chunk_file_without_ledger_entry_is_redone_not_duplicated(synth_world, synth_pipeline_models,
                                                                  synth_pairs_run, tmp_path) -> None:
    # killed after chunk 2's file was renamed into place but before the ledger recorded it
    out, config = tmp_path / "half", synth_world.pipeline_config()
    with pytest.raises(Interrupt):
        run_pipeline(synth_world.rewrites, out, synth_pipeline_models, config, progress=False,
                     on_chunk_done=interrupt_after(3))
    ledger = json.loads((out / LEDGER_FILE).read_text())
    del ledger["chunks"]["2"]
    (out / LEDGER_FILE).write_text(json.dumps(ledger))
    assert (out / "chunks" / "chunk-00002.parquet").is_file()
    seen: list[int] = []
    resumed = run_pipeline(synth_world.rewrites, out, synth_pipeline_models, config, progress=False,
                           on_chunk_done=lambda i, entry: seen.append(i))
    assert seen == [2, 3, 4]
    same_pairs(resumed.pairs, synth_pairs_run.pairs)


def test_other_settings_do_not_resume_silently(synth_world, synth_pipeline_models, tmp_path) -> None:
    few = synth_world.rewrites.head(4)
    out = tmp_path / "run"
    run_pipeline(few, out, synth_pipeline_models, synth_world.pipeline_config(), progress=False)
    with pytest.raises(SynthesisError, match=r"other inputs or settings.*config"):
        run_pipeline(few, out, synth_pipeline_models, synth_world.pipeline_config(max_pairs_per_seed=2), progress=False)
    redone = run_pipeline(few, out, synth_pipeline_models, synth_world.pipeline_config(max_pairs_per_seed=2),
                          progress=False, overwrite=True)
    assert redone.pairs.groupby("seed_query_id").size().max() <= 2


def test_precomputed_rewards_and_write_candidates(synth_world, synth_pipeline_models, synth_pairs_run,
                                                  tmp_path) -> None:
    from shopsearch.synthesis.provenance import score_rewrites

    few = synth_world.rewrites.head(8)
    rewards = score_rewrites(few, synth_pipeline_models.rewards())
    assert set(rewards["seed_query_id"]) == set(few["seed_query_id"])
    result = run_pipeline(few, tmp_path / "pre", synth_pipeline_models,
                          synth_world.pipeline_config(write_candidates=True), rewards=rewards, progress=False)
    reference = synth_pairs_run.pairs
    same_pairs(result.pairs, reference[reference["seed_query_id"].isin(few["seed_query_id"])])
    judged = pd.concat([pd.read_parquet(f) for f in sorted((result.path / "chunks").glob("*.candidates.parquet"))])
    assert len(judged) == result.summary["counts"]["unique_pairs"]
    assert (~judged["business_accept"]).any()  # rejected pairs are kept for inspection


def test_bad_rewrites_are_reported_with_the_field(synth_pipeline_models, tmp_path) -> None:
    with pytest.raises(SynthesisError, match="missing \\['candidates'\\]"):
        run_pipeline(pd.DataFrame({"seed_query_id": ["a"], "seed_query": ["x"]}), tmp_path / "x",
                     synth_pipeline_models, progress=False)
    bad = pd.DataFrame({"seed_query_id": ["a", "b"], "seed_query": ["x", "y"], "candidates": [["x y"], "oops"]})
    with pytest.raises(SynthesisError, match=r"row 1 .*'b'.*candidates"):
        run_pipeline(bad, tmp_path / "y", synth_pipeline_models, progress=False)


# --- the per-seed steps -------------------------------------------------------------------------


def rewards_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "seed_query_id": ["s1"] * 4 + ["s2"] * 2,
        "candidate_id": [0, 1, 2, 3, 0, 1],
        "rewrite": ["a", "b", "", "d", "e", "f"],
        "reward": [1.0, 2.0, 3.0, 0.5, 0.2, 0.9],
        "relevance": [0.8, 0.9, 0.0, 0.1, 0.7, 0.6],
        "negation_lost": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    })


def test_select_rewrites_by_threshold_relevance_negation_and_top_n() -> None:
    frame = rewards_frame()
    kept = select_rewrites(frame, SelectionSettings(min_relevance=0.3, top_n=None))
    assert list(zip(kept["seed_query_id"], kept["rewrite"], strict=True)) == [("s1", "b"), ("s1", "a"), ("s2", "e")]
    kept = select_rewrites(frame, SelectionSettings(min_relevance=None, drop_lost_negations=False, top_n=1))
    assert kept["rewrite"].tolist() == ["b", "f"]  # the empty rewrite never counts, whatever its reward
    kept = select_rewrites(frame, SelectionSettings(min_reward=0.95, min_relevance=None, top_n=None))
    assert kept["rewrite"].tolist() == ["b", "a"]
    with pytest.raises(SynthesisError, match="lacks column"):
        select_rewrites(frame.drop(columns="reward"), SelectionSettings())


def test_cap_keeps_best_business_scores_and_dedup_uses_normalised_text() -> None:
    pairs = pd.DataFrame({
        "seed_query_id": ["s1", "s1", "s1", "s2", "s3"],
        "query": ["Sofa  bed", "Sofa  bed", "Sofa  bed", "sofa bed", "rug"],
        "product_id": ["p1", "p2", "p3", "p2", "p1"],
        "business_score": [0.91, 0.99, 0.95, 0.99, 0.95],
        "semantic_score": [0.5, 0.4, 0.6, 0.5, 0.5],
        "rank": [1, 3, 2, 1, 1],
    })
    capped = cap_per_seed(pairs, 2)
    assert capped["product_id"].tolist() == ["p2", "p3", "p2", "p1"]
    deduped = dedup_pairs(capped)  # s2's text is s1's up to case and spacing: (s2, p2) repeats (s1, p2)
    assert list(zip(deduped["seed_query_id"], deduped["product_id"], strict=True)) == [
        ("s1", "p2"), ("s1", "p3"), ("s3", "p1")]


def test_offline_retriever_labels_sources_from_component_lists(synth_world) -> None:
    retriever = synth_world.retriever
    queries = ["black laptop", "non leather sofa", "zzzz qqqq"]
    hits = retriever.retrieve(queries, 8)
    for row, query in enumerate(queries):
        mine = hits[hits["row"] == row]
        assert mine["rank"].tolist() == list(range(1, len(mine) + 1))
        assert mine["product_id"].tolist() == [p for p in retriever.search([query], 8).ids[0] if p]
        for name in ("bm25", "dense"):
            ids = [p for p in retriever.components[name].search([query], retriever.depth).ids[0] if p]
            for pid, rank in zip(mine["product_id"], mine[f"{name}_rank"], strict=True):
                assert (pd.isna(rank) and pid not in ids) or ids[int(rank) - 1] == pid
    assert set(hits.loc[hits["row"] == 2, "source"]) == {"dense"}  # no BM25 term matches gibberish
