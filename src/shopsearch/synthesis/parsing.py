"""Parsing an LLM's answer into candidate rewrites, robustly.

Small models answer in every format: numbered or bulleted lists, JSON, quoted strings, one line
with semicolons, a chatty preamble, an explanation after each item, or nothing usable at all. The
parser takes what it can, never raises, and reports how far the answer was from the asked format:
``format_ok`` and a ``penalty`` in [0, 1] (0 exactly when ``format_ok``), which the rewriter's
reward subtracts (METHOD.md part B, step 2: "with a format penalty").

Penalty: 1 when nothing usable came back; otherwise the share of the ``n`` asked-for candidates
missing (after dropping echoes of the query, duplicates and over-long lines), plus 0.25 when the
answer was not a list (one line split on delimiters), plus 0.25 when lines had to be thrown away
(explanations, chatter); capped at 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_WORDS = 16  # a product search query longer than this is an explanation, not a query
_NUMBERED = re.compile(
    r"^\s*(?:\(?\d{1,2}\s*[.):\]](?!\d)|\d{1,2}\s+-\s|(?:rewrite|query|option|candidate)\s*#?\s*\d{1,2}\s*[:.)\-])\s*",
    re.IGNORECASE,
)
_BULLETED = re.compile(r"^\s*(?:[-*•·–—+]|\[\s?\])\s+")
_PREAMBLE = re.compile(
    r"^(?:here (?:are|is)\b|(?:sure|okay|ok|certainly|of course|absolutely|great)[,!.]|the (?:rewrites|queries) "
    r"(?:are|is)\b|i (?:would|suggest|think|hope)\b|note:|hope this\b|let me know\b|"
    # refusals
    r"i (?:cannot|can't|can not|am unable|'m unable|am sorry|'m sorry)\b|sorry\b|as an ai\b|unfortunately\b)",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^(?:rewrite|query|search|search query|rewritten query|answer)\s*\d*\s*[:=-]\s*", re.IGNORECASE)
_EXPLANATION = re.compile(r"\s+(?:—|–|-{1,2}|:)\s+.*$|\s*\([^()]*\)\s*$")
_QUOTED = re.compile(r'"([^"\n]{1,200})"|“([^”\n]{1,200})”')
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[a-zA-Z]*")
_LETTER = re.compile(r"[^\W\d_]")
LIST_STRUCTURES = frozenset({"numbered", "bulleted", "json", "lines", "single"})


@dataclass(frozen=True)
class ParseResult:
    """Candidates found in one answer, and how well the answer kept to the format."""

    candidates: list[str]
    format_ok: bool
    penalty: float
    structure: str  # numbered | bulleted | json | lines | single | delimited | empty
    issues: tuple[str, ...] = ()


def query_key(text: str) -> str:
    """Case, punctuation and spacing removed: two rewrites with the same key are the same query."""
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


def clean_candidate(item: str) -> str:
    """One candidate from one list item: markers, labels, quotes, markdown and explanations removed."""
    s = item.strip().replace("**", "").replace("__", "").replace("`", "")
    s = _NUMBERED.sub("", s, count=1)
    s = _BULLETED.sub("", s, count=1)
    s = _LABEL.sub("", s, count=1)
    quoted = _QUOTED.match(s.strip())
    if quoted:  # '"wall anchors 50 lb" - holds a heavy mirror': the quoted part is the query
        s = quoted.group(1) or quoted.group(2) or ""
    s = _EXPLANATION.sub("", s)
    s = s.strip().strip("\"'“”‘’[]{}<>").strip()
    s = re.sub(r"\s+", " ", s)
    return s.rstrip(".,;:!").strip()


def _json_items(text: str) -> list[str] | None:
    for open_, close in (("[", "]"), ("{", "}")):
        start, end = text.find(open_), text.rfind(close)
        if start < 0 or end <= start:
            continue
        try:
            value: Any = json.loads(text[start : end + 1])
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):  # {"rewrites": [...]} or {"1": "...", "2": "..."}
            lists = [v for v in value.values() if isinstance(v, list)]
            value = lists[0] if lists else list(value.values())
        if isinstance(value, list):
            items = []
            for v in value:
                if isinstance(v, dict):  # [{"query": "..."}]
                    v = next((x for x in v.values() if isinstance(x, str)), "")
                if isinstance(v, str | int | float) and not isinstance(v, bool):
                    items.append(str(v))
            if items:
                return items
    return None


def _split_line(line: str, n: int) -> tuple[list[str], str]:
    quoted = [a or b for a, b in _QUOTED.findall(line)]
    if len(quoted) >= 2:
        return quoted, "delimited"
    for sep in (";", "|"):
        if sep in line:
            return line.split(sep), "delimited"
    parts = [p for p in line.split(",") if p.strip()]
    # commas also occur inside one query ("towel, white"): split only a list of short items
    if n > 1 and len(parts) >= 2 and all(len(p.split()) <= 6 for p in parts):
        return parts, "delimited"
    return [line], "single"


def parse_candidates(text: Any, query: str = "", n: int = 1, *, max_words: int = MAX_WORDS) -> ParseResult:
    """Up to ``n`` distinct candidate rewrites from one answer; never raises (see module docstring)."""
    n = max(1, int(n))
    raw = text if isinstance(text, str) else ""
    raw = _FENCE.sub("", _THINK.sub("", raw)).replace("\r", "\n").strip()
    issues: list[str] = []
    noisy = False
    looks_json = raw[:1] in ("[", "{") or any(m in raw for m in ('["', "['", '{"', "[{"))
    items = _json_items(raw) if looks_json else None
    if items is not None:
        structure = "json"
    else:
        lines = [ln.strip() for ln in raw.split("\n") if ln.strip()]
        marked = [ln for ln in lines if _NUMBERED.match(ln) or _BULLETED.match(ln)]
        if marked:
            structure = "numbered" if any(_NUMBERED.match(ln) for ln in marked) else "bulleted"
            others = [ln for ln in lines if ln not in marked and not _is_preamble(ln)]
            noisy = bool(others)
            items = marked
        else:
            body = [ln for ln in lines if not _is_preamble(ln)]
            if len(body) == 1:
                items, structure = _split_line(body[0], n)
            else:
                items, structure = body, ("lines" if body else "empty")
        if noisy:
            issues.append("extra_text")
    candidates: list[str] = []
    seen = {query_key(query)} if query_key(query) else set()
    for item in items or []:
        cand = clean_candidate(item)
        key = query_key(cand)
        if not key or not _LETTER.search(cand):  # "1", "..." and other debris are not queries
            continue
        if len(cand.split()) > max_words:
            issues.append("too_long")
            noisy = True
        elif query and key == query_key(query):
            issues.append("echo")
        elif key in seen:
            issues.append("duplicate")
        else:
            seen.add(key)
            candidates.append(cand)
    if len(candidates) > n:
        issues.append("extra_candidates")
        candidates = candidates[:n]
    if not candidates:
        return ParseResult([], False, 1.0, "empty" if not raw else structure, tuple(dict.fromkeys([*issues, "no_candidates"])))
    if len(candidates) < n:
        issues.append("too_few")
    penalty = (n - len(candidates)) / n
    penalty += 0.25 if structure not in LIST_STRUCTURES else 0.0
    penalty += 0.25 if noisy else 0.0
    penalty = min(1.0, penalty)
    return ParseResult(candidates, penalty == 0.0, penalty, structure, tuple(dict.fromkeys(issues)))


def parse_samples(texts: Sequence[Any], query: str = "", n: int | None = None, *,
                  max_words: int = MAX_WORDS) -> ParseResult:
    """Candidates from ``n`` separate single-rewrite answers (one candidate each, duplicates dropped).
    Penalty: the larger of the mean per-answer penalty and the share of ``n`` missing."""
    n = max(1, int(n if n is not None else len(texts)))
    candidates: list[str] = []
    seen: set[str] = set()
    penalties: list[float] = []
    issues: list[str] = []
    for text in texts:
        one = parse_candidates(text, query, 1, max_words=max_words)
        penalties.append(one.penalty)
        issues.extend(one.issues)
        for cand in one.candidates:
            if query_key(cand) in seen:
                issues.append("duplicate")
            else:
                seen.add(query_key(cand))
                candidates.append(cand)
    candidates = candidates[:n]
    if not candidates:
        return ParseResult([], False, 1.0, "empty", tuple(dict.fromkeys([*issues, "no_candidates"])))
    mean = sum(penalties) / len(penalties) if penalties else 1.0
    penalty = min(1.0, max(mean, (n - len(candidates)) / n))
    if len(candidates) < n:
        issues.append("too_few")
    return ParseResult(candidates, penalty == 0.0, penalty, "samples", tuple(dict.fromkeys(issues)))


def _is_preamble(line: str) -> bool:
    return line.endswith(":") or bool(_PREAMBLE.match(line))
