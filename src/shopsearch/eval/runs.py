"""TREC run files: ``query_id Q0 product_id rank score tag``, plain or gzip."""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from shopsearch.artifacts import atomic_write_text
from shopsearch.data.errors import DataError


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def read_trec_run_scored(path: str | Path) -> dict[str, list[tuple[str, float]]]:
    """query_id -> [(product_id, score), ...] ordered by the ``rank`` column (file order breaks rank ties).

    Scores are kept as written; the ranking is never re-sorted by score (tied scores keep their ranks).
    Raises ``DataError`` naming the file and line on a malformed row.
    """
    path = Path(path)
    rows: dict[str, list[tuple[int, int, str, float]]] = {}
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) < 5:
                raise DataError(
                    f"{path}:{lineno}: expected 'query_id Q0 product_id rank score [tag]', got {line.strip()!r}"
                )
            qid, _, pid, rank, score = parts[:5]
            try:
                rank_i, score_f = int(rank), float(score)
            except ValueError:
                raise DataError(f"{path}:{lineno}: rank {rank!r} / score {score!r} are not numbers") from None
            rows.setdefault(qid, []).append((rank_i, lineno, pid, score_f))
    return {qid: [(pid, score) for _, _, pid, score in sorted(items)] for qid, items in rows.items()}


def read_trec_run(path: str | Path) -> dict[str, list[str]]:
    """query_id -> product ids in the order of the file's ``rank`` column (gzip detected by content)."""
    return {qid: [pid for pid, _ in items] for qid, items in read_trec_run_scored(path).items()}


def write_trec_run(
    run_with_scores: Mapping[str, Sequence[tuple[str, float]] | Sequence[str]],
    path: str | Path,
    tag: str = "shopsearch",
) -> Path:
    """Write a run in TREC format (ranks from 1 in the given order); ``.gz`` paths are gzipped.

    Entries may be ``(product_id, score)`` pairs or bare ids (then score = -rank, so order is kept by
    tools that sort by score). Empty ids (padding) are skipped. Written atomically.
    """
    path = Path(path)
    tag = str(tag).replace(" ", "_") or "shopsearch"
    lines = []
    for qid, items in run_with_scores.items():
        rank = 0
        for item in items:
            if isinstance(item, tuple | list):
                pid, score = str(item[0]), float(item[1])
            else:
                pid, score = str(item), float(-(rank + 1))
            if pid == "":
                continue
            rank += 1
            if math.isnan(score):
                score = float("-inf")
            lines.append(f"{qid} Q0 {pid} {rank} {score:.6f} {tag}\n")
    text = "".join(lines)
    if path.suffix == ".gz":
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            fh.write(text)
        tmp.replace(path)
    else:
        atomic_write_text(path, text)
    return path
