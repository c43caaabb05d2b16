"""Best-of-n rejection sampling of rewriter outputs into an SFT set (METHOD.md part B, step 2).

The paper trains its multi-candidate rewriter first by SFT on good rewrites, then by RL. The good
rewrites come from sampling the (untuned or larger) rewriter and keeping the best by reward. Here:
per seed query, its scored candidates (:func:`shopsearch.synthesis.rewards.score_candidates`) are
ranked by reward; the seed is kept only if its best candidate's reward reaches ``min_reward``, and
its target is

- ``style="list"``: the top ``m`` candidates (each at least ``min_candidate_reward``), best first, as
  the numbered list the rewriter prompt asks for; the prompt asks for exactly that many rewrites, so
  every target parses with no format penalty (:mod:`shopsearch.synthesis.parsing`);
- ``style="single"``: the best candidate alone, for the single-rewrite prompt.

The prompt is the rewriter's own chat prompt (:func:`shopsearch.synthesis.prompts.build_messages`).
Examples are TRL's conversational prompt-completion format (``prompt``: messages, ``completion``:
one assistant message), so SFTTrainer computes the loss on the answer only. The set is written as
JSONL or Parquet with a manifest holding the settings and the counts of every kind of drop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shopsearch.artifacts import atomic_dir, read_manifest, write_manifest
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.llm.base import Message
from shopsearch.synthesis.parsing import clean_candidate, parse_candidates, query_key
from shopsearch.synthesis.prompts import PROMPT_VERSION, build_messages
from shopsearch.synthesis.rewards import RewardModels, RewardWeights, score_candidates
from shopsearch.synthesis.rewriter_training.config import PromptSettings, RewriterTrainConfig

KIND = "synthesis-rewriter-sft"
FILES = {"jsonl": "sft.jsonl", "parquet": "sft.parquet"}
COLUMNS = ["seed_query_id", "seed_query", "query_type", "n", "prompt", "completion", "targets",
           "target_rewards", "best_reward", "candidates_scored"]


@dataclass
class SelectionCounts:
    """What best-of-n selection kept and why it dropped the rest (written into the manifest)."""

    seeds: int = 0
    kept: int = 0
    no_candidates: int = 0  # nothing usable was generated (or every candidate was malformed)
    below_threshold: int = 0  # best reward < min_reward
    too_few_candidates: int = 0  # fewer than min_candidates above min_candidate_reward
    unparseable_target: int = 0  # the formatted target did not parse back to its candidates
    candidates_scored: int = 0
    candidates_unusable: int = 0  # empty, an echo, a duplicate, too long, or changed by the parser's cleaning
    mean_best_reward_kept: float = 0.0
    mean_targets: float = 0.0
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompt_messages(query: str, query_type: str, n: int, prompt: PromptSettings) -> list[Message]:
    """The rewriter's chat prompt asking for ``n`` rewrites (the same as ``MultiCandidateRewriter``'s)."""
    return build_messages(query, query_type, n, style=prompt.style, shots=prompt.shots)


def format_target(candidates: Sequence[str], style: Literal["list", "single"] = "list") -> str:
    """The answer the rewriter prompt asks for: a numbered list, or one line."""
    if style == "single":
        return candidates[0]
    return "\n".join(f"{i}. {c}" for i, c in enumerate(candidates, start=1))


def score_rewrites(
    rewrites: pd.DataFrame, models: RewardModels, *, weights: RewardWeights | None = None, k: int = 10
) -> pd.DataFrame:
    """:func:`score_candidates` over a rewrites table (``read_rewrites``), with ``seed_query_id`` and
    ``query_type`` attached to each candidate row, ready for :func:`build_sft_examples`."""
    _require(rewrites, ["seed_query_id", "seed_query", "candidates"], "rewrites")
    scores = score_candidates(
        rewrites["seed_query"].astype(str).tolist(), [list(c) for c in rewrites["candidates"]], models,
        format_ok=rewrites["format_ok"].astype(bool).tolist() if "format_ok" in rewrites else None,
        format_penalty=rewrites["format_penalty"].astype(float).tolist() if "format_penalty" in rewrites else None,
        weights=weights, k=k,
    )
    return _attach_seeds(scores, rewrites)


def build_sft_examples(
    scores: pd.DataFrame, config: RewriterTrainConfig, rewrites: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, SelectionCounts]:
    """Best-of-n selection: one SFT example per kept seed (columns :data:`COLUMNS`), and the counts.

    ``scores`` is :func:`score_candidates` output (one row per candidate: seed_id, seed_query,
    rewrite, reward). Seeds are keyed by a ``seed_query_id`` column when it has one
    (:func:`score_rewrites`), else ``rewrites`` must be the table that was scored, row ``i`` being
    ``seed_id`` ``i``; ``query_type`` comes from whichever has it (default ``plain``).
    """
    _require(scores, ["seed_id", "seed_query", "rewrite", "reward"], "scores")
    if "seed_query_id" not in scores.columns:
        if rewrites is None:
            raise SynthesisError("scores have no seed_query_id column: pass the rewrites table that was scored "
                                 "(row i is seed_id i), or score with score_rewrites()")
        scores = _attach_seeds(scores, rewrites)
    if "query_type" not in scores.columns:
        scores = scores.assign(query_type="plain")
    sel, prompt = config.selection, config.prompt
    m = config.top_m()
    counts = SelectionCounts()
    rows: list[dict[str, Any]] = []
    for sid, group in scores.groupby("seed_query_id", sort=False):
        query, qtype = str(group["seed_query"].iloc[0]), str(group["query_type"].iloc[0] or "plain")
        counts.seeds += 1
        tally = counts.by_type.setdefault(qtype, {"seeds": 0, "kept": 0})
        tally["seeds"] += 1
        usable = _usable(group, query, prompt.max_words)
        counts.candidates_scored += int((group["rewrite"].astype(str).str.len() > 0).sum())
        counts.candidates_unusable += int(len(group) - len(usable) - (group["rewrite"].astype(str) == "").sum())
        if usable.empty:
            counts.no_candidates += 1
            continue
        best = float(usable["reward"].iloc[0])
        if best < sel.min_reward:
            counts.below_threshold += 1
            continue
        chosen = usable if sel.min_candidate_reward is None else usable[usable["reward"] >= sel.min_candidate_reward]
        chosen = chosen.head(m)
        if len(chosen) < sel.min_candidates:
            counts.too_few_candidates += 1
            continue
        targets = chosen["rewrite"].astype(str).tolist()
        n = len(targets)
        answer = format_target(targets, prompt.style)
        parsed = parse_candidates(answer, query, n, max_words=prompt.max_words)
        if parsed.candidates != targets or not parsed.format_ok:  # guards the SFT target against parser drift
            counts.unparseable_target += 1
            continue
        rows.append({
            "seed_query_id": str(sid), "seed_query": query, "query_type": qtype, "n": n,
            "prompt": prompt_messages(query, qtype, n, prompt),
            "completion": [{"role": "assistant", "content": answer}],
            "targets": targets, "target_rewards": chosen["reward"].astype(float).tolist(),
            "best_reward": best, "candidates_scored": len(group),
        })
        counts.kept += 1
        tally["kept"] += 1
    examples = pd.DataFrame(rows, columns=COLUMNS)
    if len(examples):
        counts.mean_best_reward_kept = float(examples["best_reward"].mean())
        counts.mean_targets = float(examples["n"].mean())
    return examples, counts


def write_sft_set(
    examples: pd.DataFrame,
    counts: SelectionCounts,
    out_dir: str | Path,
    config: RewriterTrainConfig,
    *,
    fmt: Literal["jsonl", "parquet"] = "jsonl",
    overwrite: bool = True,
    **info: Any,
) -> Path:
    """Write the SFT set (``sft.jsonl`` or ``sft.parquet``) and ``manifest.json`` (settings, counts,
    ``info``) to ``out_dir``, atomically."""
    if fmt not in FILES:
        raise SynthesisError(f"fmt must be one of {sorted(FILES)}, got {fmt!r}")
    if examples.empty:
        raise SynthesisError(
            f"no seed passed the selection ({counts.as_dict()}): lower selection.min_reward "
            f"({config.selection.min_reward}) or min_candidates, or generate more candidates per seed"
        )
    records = examples[COLUMNS].to_dict("records")
    out = Path(out_dir)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        if fmt == "jsonl":
            text = "".join(json.dumps(_jsonable(r), ensure_ascii=False) + "\n" for r in records)
            (tmp / FILES[fmt]).write_text(text, encoding="utf-8")
        else:
            pq.write_table(pa.Table.from_pylist([_jsonable(r) for r in records]), tmp / FILES[fmt])
        write_manifest(
            tmp, KIND, file=FILES[fmt], counts=counts.as_dict(), prompt_version=PROMPT_VERSION,
            prompt=config.prompt.model_dump(), selection=config.selection.model_dump(), top_m=config.top_m(), **info,
        )
    return out


def read_sft_set(path: str | Path) -> pd.DataFrame:
    """An SFT set written by :func:`write_sft_set` (its directory, manifest checked), or a bare
    ``.jsonl`` / ``.parquet`` file of the same columns."""
    path = Path(path)
    if path.is_dir():
        manifest = read_manifest(path, kind=KIND)
        path = path / str(manifest.get("file", FILES["jsonl"]))
    if not path.is_file():
        raise SynthesisError(f"{path}: no SFT set here; build one with build_sft_examples + write_sft_set")
    if path.suffix == ".parquet":
        frame = pq.read_table(path).to_pandas()
        for col in ("prompt", "completion", "targets", "target_rewards"):  # numpy arrays back to lists
            if col in frame:
                frame[col] = frame[col].map(_to_list)
        return frame
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        return pd.DataFrame([json.loads(line) for line in lines if line.strip()])
    except json.JSONDecodeError as exc:
        raise SynthesisError(f"{path}: not JSON lines ({exc})") from None


def _usable(group: pd.DataFrame, query: str, max_words: int) -> pd.DataFrame:
    """The group's candidates a target may hold, best reward first (stable: earlier candidate wins ties).

    Dropped: empty rewrites, echoes of the query, duplicates (the better-rewarded copy stays), lines
    over ``max_words``, and text the parser would change (an SFT target must parse back to itself)."""
    frame = group.assign(rewrite=group["rewrite"].astype(str).str.strip())
    frame = frame[frame["rewrite"].str.len() > 0]
    qkey = query_key(query)
    ok = [clean_candidate(r) == r and len(r.split()) <= max_words and query_key(r) != qkey for r in frame["rewrite"]]
    frame = frame[np.array(ok, dtype=bool)]  # a bool array, not a list: an empty list would select columns
    frame = frame.assign(_key=frame["rewrite"].map(query_key), _order=range(len(frame)))
    frame = frame.sort_values(["reward", "_order"], ascending=[False, True], kind="stable")
    return frame.drop_duplicates("_key", keep="first").drop(columns=["_key", "_order"])


def _attach_seeds(scores: pd.DataFrame, rewrites: pd.DataFrame) -> pd.DataFrame:
    """seed_query_id and query_type of rewrites row ``seed_id`` onto each candidate row, checked."""
    _require(rewrites, ["seed_query_id", "seed_query"], "rewrites")
    ids = scores["seed_id"].to_numpy()
    if len(scores) and (ids.min() < 0 or ids.max() >= len(rewrites)):
        raise SynthesisError(f"scores refer to seed_id {ids.max()} but the rewrites table has {len(rewrites)} rows: "
                             "pass the same table that was scored")
    base = rewrites.reset_index(drop=True)
    mismatch = base["seed_query"].astype(str).to_numpy()[ids] != scores["seed_query"].astype(str).to_numpy()
    if mismatch.any():
        raise SynthesisError(f"{int(mismatch.sum())} scored rows name another seed query than the rewrites row of "
                             "their seed_id: pass the same table, in the same order, that was scored")
    types = base["query_type"] if "query_type" in base else pd.Series("plain", index=base.index)
    return scores.assign(seed_query_id=base["seed_query_id"].astype(str).to_numpy()[ids],
                         query_type=types.fillna("plain").astype(str).to_numpy()[ids])


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SynthesisError(f"the {what} table lacks columns {missing} (has {list(frame.columns)})")


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: _to_list(v) if k in ("prompt", "completion", "targets", "target_rewards") else
            (v.item() if hasattr(v, "item") else v) for k, v in record.items()}


def _to_list(value: Any) -> Any:
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list):
        return [dict(v) if isinstance(v, dict) else v for v in value]
    return value
