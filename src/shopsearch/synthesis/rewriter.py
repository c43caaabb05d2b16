"""The multi-candidate query rewriter (METHOD.md part B, step 2), and batch rewriting of seeds.

For each seed query the rewriter asks an LLM for ``n`` rewrites, either in one numbered-list answer
(``style="list"``, the paper's multi-candidate rewriter; ``samples`` answers can be pooled) or as
``n`` samples of a single-rewrite prompt (``style="single"``), with a few-shot prompt chosen by the
seed's query type (:mod:`shopsearch.synthesis.prompts`). Answers are parsed by
:mod:`shopsearch.synthesis.parsing`: a malformed answer gives ``format_ok=False`` and a format
penalty, never an exception. SFT and GRPO training of the rewriter come later; they reuse
:meth:`MultiCandidateRewriter.messages` and the parser, so prompts and rewards see one format.

Batch rewriting (:func:`rewrite_seeds`) writes ``rewrites.parquet`` + ``manifest.json`` and is
resumable: finished batches are kept as part files, and a rerun skips seeds already done.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from shopsearch.artifacts import (
    atomic_write_parquet,
    atomic_write_text,
    read_manifest,
    sha256_file,
    write_manifest,
)
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.llm.base import LLMBackend, Message, chat_batch
from shopsearch.synthesis.parsing import MAX_WORDS, ParseResult, parse_candidates, parse_samples, query_key
from shopsearch.synthesis.prompts import PROMPT_VERSION, Style, build_messages

KIND = "synthesis-rewrites"
REWRITES_FILE = "rewrites.parquet"
RUN_FILE = "run.json"
PARTS = "parts"
SCHEMA = pa.schema([
    ("seed_query_id", pa.string()), ("seed_query", pa.string()), ("query_type", pa.string()),
    ("candidates", pa.list_(pa.string())), ("raw", pa.list_(pa.string())), ("format_ok", pa.bool_()),
    ("format_penalty", pa.float64()), ("issues", pa.list_(pa.string())), ("backend", pa.string()),
])


@dataclass(frozen=True)
class RewriteCandidates:
    """The rewrites of one seed query: parsed ``candidates`` (distinct, none an echo of the query,
    at most ``n``), the ``raw`` answers they came from, whether the answer kept to the format, its
    penalty in [0, 1] (0 exactly when ``format_ok``), what was wrong, and the backend's name."""

    seed_query_id: str
    seed_query: str
    query_type: str
    candidates: list[str]
    raw: list[str]
    format_ok: bool
    backend: str
    format_penalty: float = 0.0
    issues: tuple[str, ...] = ()

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["issues"] = list(self.issues)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RewriteCandidates:
        return cls(
            str(row["seed_query_id"]), str(row["seed_query"]), str(row["query_type"]), list(row["candidates"]),
            list(row["raw"]), bool(row["format_ok"]), str(row["backend"]), float(row["format_penalty"]),
            tuple(row["issues"]),
        )


@dataclass(frozen=True)
class RewriterConfig:
    """How rewrites are asked for.

    Args:
        n: candidates per query.
        style: ``list`` (one answer with ``n`` numbered rewrites) or ``single`` (``n`` samples).
        samples: ``list`` style only: answers per query, their candidates pooled (deduplicated,
            capped at ``n``); more answers, more usable candidates from a weak model.
        temperature / max_tokens / seed: sampling (``seed`` None: the backend's randomness).
        shots: few-shot examples per prompt. max_words: longer lines are explanations, dropped.
    """

    n: int = 5
    style: Style = "list"
    samples: int = 1
    temperature: float = 0.8
    max_tokens: int = 128
    seed: int | None = 0
    shots: int = 2
    max_words: int = MAX_WORDS

    def __post_init__(self) -> None:
        if self.n < 1 or self.samples < 1 or self.shots < 0 or self.max_tokens < 1:
            raise SynthesisError(f"invalid rewriter settings {self}: n, samples, max_tokens >= 1, shots >= 0")
        if self.style not in ("list", "single"):
            raise SynthesisError(f"style must be 'list' or 'single', got {self.style!r}")


@dataclass
class MultiCandidateRewriter:
    """``n`` candidate rewrites per query from any :class:`~shopsearch.synthesis.llm.LLMBackend`."""

    backend: LLMBackend
    config: RewriterConfig = field(default_factory=RewriterConfig)

    def messages(self, query: str, query_type: str = "plain") -> list[Message]:
        c = self.config
        return build_messages(query, query_type, c.n, style=c.style, shots=c.shots)

    def describe(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "prompt_version": PROMPT_VERSION, "backend": self.backend.describe()}

    def rewrite(self, query: str, query_type: str = "plain", seed_query_id: str = "") -> RewriteCandidates:
        return self.rewrite_many([(seed_query_id, query, query_type)])[0]

    def rewrite_many(self, rows: Sequence[tuple[str, str, str]], *, progress: tqdm | None = None) -> list[RewriteCandidates]:
        """Rewrite ``(seed_query_id, query, query_type)`` rows; concurrent where the backend allows."""
        c = self.config
        requests = [self.messages(q, t) for _, q, t in rows]
        completions = c.n if c.style == "single" else c.samples
        answers = chat_batch(
            self.backend, requests, n=completions, temperature=c.temperature, max_tokens=c.max_tokens,
            seed=c.seed, on_done=progress.update if progress is not None else None,
        )
        return [self._result(sid, q, t, raw) for (sid, q, t), raw in zip(rows, answers, strict=True)]

    def _result(self, sid: str, query: str, qtype: str, raw: list[str]) -> RewriteCandidates:
        c = self.config
        if c.style == "single":
            parsed = parse_samples(raw, query, c.n, max_words=c.max_words)
        else:
            parsed = _pool([parse_candidates(r, query, c.n, max_words=c.max_words) for r in raw], c.n)
        return RewriteCandidates(sid, query, qtype, parsed.candidates, [str(r) for r in raw], parsed.format_ok,
                                 self.backend.name, parsed.penalty, parsed.issues)


def _pool(results: list[ParseResult], n: int) -> ParseResult:
    """Candidates of several list answers, deduplicated and capped at ``n``; mean penalty."""
    if len(results) == 1:
        return results[0]
    pooled: dict[str, str] = {}
    for r in results:
        for cand in r.candidates:
            pooled.setdefault(query_key(cand), cand)
    penalty = sum(r.penalty for r in results) / len(results)
    issues = tuple(dict.fromkeys(i for r in results for i in r.issues))
    return ParseResult(list(pooled.values())[:n], penalty == 0.0, penalty, "pooled", issues)


def rewrite_seeds(
    seeds: str | Path | pd.DataFrame,
    out_dir: str | Path,
    rewriter: MultiCandidateRewriter,
    *,
    batch_size: int = 16,
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Rewrite every seed (a seeds directory, Parquet file or frame) into ``out_dir``, resumably.

    Each batch of ``batch_size`` seeds is saved as a part file once done; a rerun with the same
    rewriter settings skips seeds already rewritten (different settings: an error, unless
    ``overwrite``). When all are done, parts are merged into ``rewrites.parquet`` (in seed order)
    and ``manifest.json`` is written. ``limit`` rewrites only the first N seeds (a trial run).
    """
    from shopsearch.synthesis.seeds import read_seeds

    frame = seeds if isinstance(seeds, pd.DataFrame) else read_seeds(seeds)
    missing = [c for c in ("seed_query_id", "text") if c not in frame.columns]
    if missing:
        raise SynthesisError(f"seeds need columns seed_query_id and text; missing {missing}")
    frame = frame.head(limit) if limit is not None else frame
    out = Path(out_dir)
    run = {"prompt_version": PROMPT_VERSION, "config": asdict(rewriter.config), "backend": rewriter.backend.name}
    _prepare(out, run, overwrite)
    done = _done_ids(out)
    types = frame["query_type"] if "query_type" in frame.columns else pd.Series("plain", index=frame.index)
    todo = [(str(sid), str(text), qtype if isinstance(qtype, str) and qtype else "plain")
            for sid, text, qtype in zip(frame["seed_query_id"], frame["text"], types, strict=True)
            if str(sid) not in done]
    parts = out / PARTS
    parts.mkdir(exist_ok=True)
    first = len(list(parts.glob("part-*.parquet")))
    with tqdm(total=len(todo), desc="rewriting", unit="query", disable=not progress) as bar:
        for i, start in enumerate(range(0, len(todo), batch_size)):
            results = rewriter.rewrite_many(todo[start : start + batch_size], progress=bar)
            atomic_write_parquet(parts / f"part-{first + i:05d}.parquet", pa.Table.from_pylist([r.to_row() for r in results], schema=SCHEMA))
    return _finish(out, frame, run, rewriter, len(done))


def read_rewrites(path: str | Path) -> pd.DataFrame:
    """The rewrites of a finished rewrites directory (manifest checked) or a Parquet file."""
    path = Path(path)
    if path.is_dir():
        read_manifest(path, kind=KIND)
        path = path / REWRITES_FILE
    if not path.is_file():
        raise SynthesisError(f"{path}: no rewrites file (an unfinished run? rerun rewrite_seeds to resume it)")
    return pq.read_table(path).to_pandas()


def iter_candidates(frame: pd.DataFrame) -> Iterable[RewriteCandidates]:
    for row in frame.to_dict("records"):
        yield RewriteCandidates.from_row(row)


def _prepare(out: Path, run: dict[str, Any], overwrite: bool) -> None:
    run_file = out / RUN_FILE
    if run_file.is_file():
        before = json.loads(run_file.read_text(encoding="utf-8"))
        if before == json.loads(json.dumps(run)):
            return
        if not overwrite:
            raise SynthesisError(
                f"{out} holds rewrites made with other settings ({before}); pass overwrite=True (--overwrite) "
                "to start again, or choose another output directory"
            )
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SynthesisError(f"{out} exists and is not a rewrites run; pass overwrite=True or another directory")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_file, json.dumps(run, indent=2))


def _done_ids(out: Path) -> set[str]:
    done: set[str] = set()
    files = [*sorted((out / PARTS).glob("part-*.parquet")), out / REWRITES_FILE]
    for f in files:
        if f.is_file():
            done.update(pq.read_table(f, columns=["seed_query_id"]).column(0).to_pylist())
    return done


def _finish(out: Path, frame: pd.DataFrame, run: dict[str, Any], rewriter: MultiCandidateRewriter, resumed: int) -> Path:
    files = [*sorted((out / PARTS).glob("part-*.parquet")), out / REWRITES_FILE]
    tables = [pq.read_table(f) for f in files if f.is_file()]
    merged = pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame(columns=SCHEMA.names)
    merged = merged.drop_duplicates("seed_query_id", keep="last")
    order = {sid: i for i, sid in enumerate(frame["seed_query_id"].astype(str))}
    merged = merged[merged["seed_query_id"].isin(order)]  # rows of seeds no longer asked for are dropped
    merged = merged.sort_values("seed_query_id", key=lambda s: s.map(order)).reset_index(drop=True)
    atomic_write_parquet(out / REWRITES_FILE, pa.Table.from_pylist(merged.to_dict("records"), schema=SCHEMA))
    shutil.rmtree(out / PARTS, ignore_errors=True)
    n_cands = merged["candidates"].map(len)
    summary = {
        "seeds": len(frame), "rewritten": len(merged), "resumed_from": resumed,
        "format_ok_rate": float(merged["format_ok"].mean()) if len(merged) else 0.0,
        "mean_candidates": float(n_cands.mean()) if len(merged) else 0.0,
        "no_candidates": int((n_cands == 0).sum()),
        "by_type": {str(t): {"seeds": len(g), "format_ok_rate": float(g["format_ok"].mean())}
                    for t, g in merged.groupby("query_type")},
    }
    write_manifest(out, KIND, rewriter=rewriter.describe(), run=run, summary=summary,
                   rewrites_sha256=sha256_file(out / REWRITES_FILE))
    return out
