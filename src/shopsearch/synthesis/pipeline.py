"""The offline pipeline from rewrites to synthetic (ORIGINAL query, product) training pairs.

METHOD.md part B, steps 3-6 (Taobao 2026): the rewrites of each long-tail seed (``rewrites.parquet`` of
:func:`~shopsearch.synthesis.rewriter.rewrite_seeds`) are scored by the rewards
(:func:`~shopsearch.synthesis.rewards.score_candidates`) and filtered; each kept rewrite retrieves
products with a strong offline retriever (BM25 + the strongest dense model, RRF); the union of a
seed's products is judged for the ORIGINAL query by the business classifier AND the general semantic
judge; pairs both accept are capped per seed and deduplicated. The output ``pairs.parquet`` has the
columns ``query, product_id`` that ``TrainConfig.extra_pairs`` reads, plus full provenance
(:mod:`shopsearch.synthesis.provenance`).

Resumable: seeds are processed in chunks of ``chunk_size`` (in the rewrites' order). Each finished
chunk is written atomically to ``chunks/chunk-NNNNN.parquet`` and then recorded in the progress
ledger ``ledger.json`` (rewritten atomically). A rerun with the same inputs and settings skips the
chunks in the ledger; a chunk whose file exists but which the ledger lacks (killed in between) is
redone and its file replaced, so no pair is ever written twice. ``run.json`` pins the inputs and
settings; different ones are an error unless ``overwrite``. When all chunks are done, the chunk files
are merged, deduplicated and written as ``pairs.parquet`` with ``manifest.json`` (counts at every filter).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from shopsearch.artifacts import atomic_write_parquet, atomic_write_text, read_manifest, write_manifest
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.judges.base import RelevanceJudge
from shopsearch.synthesis.provenance import (
    PAIR_COLUMNS,
    PAIR_SCHEMA,
    OfflineRetriever,
    RetrievalSettings,
    SelectionSettings,
    cap_per_seed,
    check_rewrites,
    dedup_pairs,
    judge_candidates,
    rewrite_types,
    score_rewrites,
    select_rewrites,
    to_table,
    union_per_seed,
)
from shopsearch.synthesis.rewards import RewardModels, RewardWeights

KIND = "synthesis-pairs"
PAIRS_FILE = "pairs.parquet"
RUN_FILE = "run.json"
LEDGER_FILE = "ledger.json"
CHUNKS = "chunks"
COUNT_KEYS: tuple[str, ...] = (
    "seeds", "seeds_with_candidates", "candidates", "rewrites_kept", "seeds_with_kept_rewrites", "retrieved",
    "unique_pairs", "accepted_business", "accepted_semantic", "accepted_both", "after_cap", "seeds_with_pairs",
)


class PipelineConfig(BaseModel):
    """Settings of :func:`run_pipeline` (see :class:`SelectionSettings` and :class:`RetrievalSettings`).

    Args:
        chunk_size: seeds per chunk: the unit of resumption and of batched model calls.
        retrieval: how :func:`~shopsearch.synthesis.provenance.build_offline_retriever` builds the
            retriever; the pipeline itself reads ``per_rewrite_k`` (depth and fusion are the built
            retriever's own, recorded in ``run.json``).
        max_pairs_per_seed: cap on the pairs kept per seed (METHOD.md part B, step 5), None: no cap.
        reward_k: top-K of a rewrite whose judged share is its goodrate reward.
        reward_weights: weights of the reward components.
        write_candidates: also keep every judged (seed, product) pair, accepted or not, as
            ``chunks/chunk-NNNNN.candidates.parquet`` (to inspect what the judges reject).
    """

    model_config = ConfigDict(extra="forbid")

    chunk_size: int = Field(64, ge=1)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    max_pairs_per_seed: int | None = Field(20, ge=1)
    reward_k: int = Field(10, ge=1)
    reward_weights: RewardWeights = Field(default_factory=RewardWeights)
    write_candidates: bool = False


@dataclass
class PipelineModels:
    """What the pipeline runs with, loaded once.

    ``business`` is the shop's relevance classifier (e.g. a calibrated
    :class:`~shopsearch.synthesis.judges.CrossEncoderJudge`), ``semantic`` the general judge (e.g.
    :class:`~shopsearch.synthesis.judges.EmbeddingJudge`); ``product_texts`` maps product_id to the text
    both judges see. ``reward_models`` defaults to the semantic judge's encoder (or the bundled one),
    the offline retriever and the business judge.
    """

    retriever: OfflineRetriever
    business: RelevanceJudge
    semantic: RelevanceJudge
    product_texts: Mapping[str, str]
    reward_models: RewardModels | None = None

    def rewards(self) -> RewardModels:
        if self.reward_models is None:
            encoder = getattr(self.semantic, "encoder", None)
            if encoder is None:
                from shopsearch.retrieval.encoder import SentenceEncoder

                encoder = SentenceEncoder()
            self.reward_models = RewardModels(encoder=encoder, retriever=self.retriever, judge=self.business,
                                              product_texts=self.product_texts)
            cache = getattr(self.semantic, "cache", None)
            if cache is not None and cache.encoder is encoder:
                # one embedding cache for rewards and the semantic judge: both embed the same seeds and
                # retrieved product texts, and encoding dominates the pipeline's cost on a CPU
                self.reward_models.cache = cache
        return self.reward_models


@dataclass
class PipelineResult:
    """The finished run: output directory, the pairs, the counts at every filter, and how many chunks
    were taken from an earlier run instead of computed (all of them when the run was already finished)."""

    path: Path
    pairs: pd.DataFrame
    summary: dict[str, Any]
    resumed_chunks: int


def process_chunk(
    chunk: pd.DataFrame,
    models: PipelineModels,
    config: PipelineConfig,
    rewards: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """One chunk of rewriter rows -> (kept pairs, every judged pair, counts and seconds per step)."""
    seconds: dict[str, float] = {}
    start = time.monotonic()
    if rewards is None:
        rewards = score_rewrites(chunk, models.rewards(), weights=config.reward_weights, k=config.reward_k)
    else:
        rewards = rewards[rewards["seed_query_id"].astype(str).isin(set(chunk["seed_query_id"].astype(str)))]
        rewards = rewards.assign(seed_query_id=rewards["seed_query_id"].astype(str))
    seconds["rewards"] = time.monotonic() - start

    kept = select_rewrites(rewards, config.selection)
    kept = kept.merge(_seed_frame(chunk), on="seed_query_id", how="left", suffixes=("_reward", ""))
    start = time.monotonic()
    hits = models.retriever.retrieve(kept["rewrite"].astype(str).tolist(), config.retrieval.per_rewrite_k)
    seconds["retrieval"] = time.monotonic() - start
    union = union_per_seed(kept, hits)
    start = time.monotonic()
    judged = judge_candidates(union, models.business, models.semantic, models.product_texts)
    seconds["judges"] = time.monotonic() - start
    both = judged[judged["business_accept"] & judged["semantic_accept"]] if len(judged) else judged
    capped = cap_per_seed(both, config.max_pairs_per_seed)
    n_cands = chunk["candidates"].map(len)
    counts = {
        "seeds": len(chunk),
        "seeds_with_candidates": int((n_cands > 0).sum()),
        "candidates": int(n_cands.sum()),
        "rewrites_kept": len(kept),
        "seeds_with_kept_rewrites": int(kept["seed_query_id"].nunique()),
        "retrieved": len(hits),
        "unique_pairs": len(judged),
        "accepted_business": int(judged["business_accept"].sum()) if len(judged) else 0,
        "accepted_semantic": int(judged["semantic_accept"].sum()) if len(judged) else 0,
        "accepted_both": len(both),
        "after_cap": len(capped),
        "seeds_with_pairs": int(capped["seed_query_id"].nunique()) if len(capped) else 0,
    }
    return capped, judged, {"counts": counts, "seconds": {k: round(v, 3) for k, v in seconds.items()}}


def run_pipeline(
    rewrites: str | Path | pd.DataFrame,
    out_dir: str | Path,
    models: PipelineModels,
    config: PipelineConfig | None = None,
    *,
    rewards: pd.DataFrame | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_chunk_done: Callable[[int, dict[str, Any]], None] | None = None,
) -> PipelineResult:
    """Synthetic pairs from rewrites into ``out_dir``, resumably (see the module docstring).

    ``rewrites``: a rewrites directory or Parquet file, or the frame. ``rewards``: precomputed
    :func:`score_rewrites` output (None: scored chunk by chunk). ``on_chunk_done(index, ledger_entry)``
    is called after each chunk is recorded (progress reporting; tests interrupt runs there).
    """
    from shopsearch.synthesis.rewriter import read_rewrites

    config = config or PipelineConfig()
    frame = rewrites if isinstance(rewrites, pd.DataFrame) else read_rewrites(rewrites)
    check_rewrites(frame)
    frame = frame.reset_index(drop=True).assign(seed_query_id=frame["seed_query_id"].astype(str).to_numpy())
    if frame["seed_query_id"].duplicated().any():
        dupes = frame.loc[frame["seed_query_id"].duplicated(), "seed_query_id"].head(3).tolist()
        raise SynthesisError(f"rewrites: seed_query_id must be unique; repeated: {dupes}")
    out = Path(out_dir)
    run = _run_record(frame, rewards, models, config)
    _prepare(out, run, overwrite)
    if (out / PAIRS_FILE).is_file() and (out / "manifest.json").is_file():
        manifest = read_manifest(out, kind=KIND)
        return PipelineResult(out, read_pairs(out), manifest["summary"], resumed_chunks=len(manifest["chunks"]))

    ledger = _read_ledger(out)
    n_chunks = -(-len(frame) // config.chunk_size)
    resumed = sum(1 for i in range(n_chunks) if str(i) in ledger and (out / ledger[str(i)]["file"]).is_file())
    (out / CHUNKS).mkdir(exist_ok=True)
    done_seeds = sum(ledger[str(i)]["counts"]["seeds"] for i in range(n_chunks) if str(i) in ledger)
    with tqdm(total=len(frame), initial=done_seeds, desc="synthetic pairs", unit="seed", disable=not progress) as bar:
        for i in range(n_chunks):
            entry = ledger.get(str(i))
            if entry is not None and (out / entry["file"]).is_file():
                continue
            chunk = frame.iloc[i * config.chunk_size : (i + 1) * config.chunk_size]
            kept, judged, info = process_chunk(chunk, models, config, rewards)
            name = f"{CHUNKS}/chunk-{i:05d}.parquet"
            atomic_write_parquet(out / name, to_table(kept.assign(chunk=i)))
            if config.write_candidates:
                atomic_write_parquet(out / name.replace(".parquet", ".candidates.parquet"), to_table(judged.assign(chunk=i)))
            # the ledger is updated only once the chunk file is in place: a chunk is done iff listed
            ledger[str(i)] = {"file": name, "seed_ids_sha256": _sha(chunk["seed_query_id"].tolist()), **info}
            atomic_write_text(out / LEDGER_FILE, json.dumps({"chunks": ledger}, indent=2))
            bar.update(len(chunk))
            bar.set_postfix(pairs=sum(e["counts"]["after_cap"] for e in ledger.values()))
            if on_chunk_done is not None:
                on_chunk_done(i, ledger[str(i)])
    result = _finish(out, frame, ledger, n_chunks, run, resumed)
    if progress:
        tqdm.write(format_summary(result.summary))
    return result


def read_pairs(path: str | Path) -> pd.DataFrame:
    """The pairs of a finished pipeline directory (manifest checked) or of a pairs Parquet file."""
    path = Path(path)
    if path.is_dir():
        read_manifest(path, kind=KIND)
        path = path / PAIRS_FILE
    if not path.is_file():
        raise SynthesisError(f"{path}: no pairs file (an unfinished run? rerun run_pipeline to resume it)")
    return _to_frame(pq.read_table(path))


def _to_frame(table: pa.Table) -> pd.DataFrame:
    # ranks stay integers with gaps (a product absent from one component list) rather than floats
    return table.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype()}.get)


def format_summary(summary: Mapping[str, Any]) -> str:
    """The counts at every filter as an aligned text table (printed at the end of a run)."""
    c = summary["counts"]
    lines = [
        ("seeds", c["seeds"], f"{c['seeds_with_candidates']} with candidates"),
        ("rewrite candidates", c["candidates"], ""),
        ("rewrites kept", c["rewrites_kept"], f"{c['seeds_with_kept_rewrites']} seeds"),
        ("candidates retrieved", c["retrieved"], "(rewrite, product) hits"),
        ("unique (seed, product) pairs", c["unique_pairs"], ""),
        ("accepted by business judge", c["accepted_business"], ""),
        ("accepted by semantic judge", c["accepted_semantic"], ""),
        ("accepted by both", c["accepted_both"], ""),
        ("after cap", c["after_cap"], f"max {summary.get('max_pairs_per_seed')} per seed"),
        ("after dedup", c["after_dedup"], f"{c['seeds_with_pairs']} seeds with pairs"),
    ]
    width = max(len(name) for name, _, _ in lines)
    return "\n".join(f"{name:<{width}}  {value:>9,}  {note}".rstrip() for name, value, note in lines)


# ---------------------------------------------------------------------------------------------
# Run record, ledger and files.
# ---------------------------------------------------------------------------------------------


def _seed_frame(chunk: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"seed_query_id": chunk["seed_query_id"].astype(str).to_numpy(),
                         "query": chunk["seed_query"].astype(str).to_numpy(),
                         "query_type": rewrite_types(chunk).to_numpy()})


def _sha(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _run_record(frame: pd.DataFrame, rewards: pd.DataFrame | None, models: PipelineModels,
                config: PipelineConfig) -> dict[str, Any]:
    """What pins a run: the inputs (content hashes), the settings, the judges and the retriever."""
    cols = [c for c in ("seed_query_id", "seed_query", "query_type", "format_ok", "format_penalty") if c in frame]
    rows = [[*(str(frame[c].iloc[i]) for c in cols), list(map(str, frame["candidates"].iloc[i]))]
            for i in range(len(frame))]
    record = {
        "config": config.model_dump(mode="json"),
        "rewrites_sha256": _sha(rows),
        "rewards_sha256": None if rewards is None else _sha(rewards.astype(str).to_numpy().tolist()),
        "business_judge": models.business.describe(),
        "semantic_judge": models.semantic.describe(),
        "retriever": models.retriever.describe(),
        "product_texts_sha256": _sha(sorted(models.product_texts.items())),
    }
    return json.loads(json.dumps(record, default=str))


def _prepare(out: Path, run: dict[str, Any], overwrite: bool) -> None:
    run_file = out / RUN_FILE
    if run_file.is_file():
        before = json.loads(run_file.read_text(encoding="utf-8"))
        if before == run:
            return
        if not overwrite:
            changed = sorted(k for k in set(before) | set(run) if before.get(k) != run.get(k))
            raise SynthesisError(f"{out} holds a pipeline run with other inputs or settings (differs in {changed}); "
                                 "pass overwrite=True to start again, or choose another output directory")
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SynthesisError(f"{out} exists and is not a pipeline run; pass overwrite=True or another directory")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_file, json.dumps(run, indent=2))


def _read_ledger(out: Path) -> dict[str, Any]:
    path = out / LEDGER_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))["chunks"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SynthesisError(f"{path} is not a pipeline ledger ({exc}); delete it to redo every chunk") from None


def _finish(out: Path, frame: pd.DataFrame, ledger: dict[str, Any], n_chunks: int, run: dict[str, Any],
            resumed: int) -> PipelineResult:
    files = [out / ledger[str(i)]["file"] for i in range(n_chunks)]
    tables = [pq.read_table(f) for f in files]
    merged = _to_frame(pa.concat_tables(tables) if tables else PAIR_SCHEMA.empty_table())
    pairs = dedup_pairs(merged)[list(PAIR_COLUMNS)]
    atomic_write_parquet(out / PAIRS_FILE, to_table(pairs))
    counts = {k: int(sum(ledger[str(i)]["counts"][k] for i in range(n_chunks))) for k in COUNT_KEYS}
    counts["after_dedup"] = len(pairs)
    counts["seeds_with_pairs"] = int(pairs["seed_query_id"].nunique()) if len(pairs) else 0
    seconds = {k: round(sum(ledger[str(i)]["seconds"].get(k, 0.0) for i in range(n_chunks)), 1)
               for k in ("rewards", "retrieval", "judges")}
    types = rewrite_types(frame)
    by_type = {
        str(t): {"seeds": int((types == t).sum()),
                 "pairs": int((pairs["query_type"] == t).sum()) if len(pairs) else 0,
                 "seeds_with_pairs": int(pairs.loc[pairs["query_type"] == t, "seed_query_id"].nunique())
                 if len(pairs) else 0}
        for t in sorted(types.unique())
    }
    sources = pairs["source"].value_counts().to_dict() if len(pairs) else {}
    summary = {
        "counts": counts, "by_type": by_type, "sources": {str(k): int(v) for k, v in sources.items()},
        "max_pairs_per_seed": run["config"]["max_pairs_per_seed"], "seconds": seconds,
        "chunks": n_chunks, "resumed_chunks": resumed,
    }
    write_manifest(out, KIND, summary=summary, run=run, chunks={str(i): ledger[str(i)] for i in range(n_chunks)},
                   columns=list(PAIR_COLUMNS),
                   notes=["query is the ORIGINAL seed query (METHOD.md part B, step 6); read by TrainConfig.extra_pairs"])
    return PipelineResult(out, pairs, summary, resumed_chunks=resumed)
