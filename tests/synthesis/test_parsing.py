"""Candidate parsing: every answer format small models produce, and properties on arbitrary text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.synthesis.parsing import (
    MAX_WORDS,
    clean_candidate,
    parse_candidates,
    parse_samples,
    query_key,
)

Q = "what do I need to hang a heavy mirror"
WANT = ["heavy duty picture hanging kit", "wall anchors 50 lb", "mirror hanging hooks"]


@pytest.mark.parametrize("answer", [
    "1. heavy duty picture hanging kit\n2. wall anchors 50 lb\n3. mirror hanging hooks",
    "1) heavy duty picture hanging kit\n2) wall anchors 50 lb\n3) mirror hanging hooks",
    "(1) heavy duty picture hanging kit\n(2) wall anchors 50 lb\n(3) mirror hanging hooks",
    "Rewrite 1: heavy duty picture hanging kit\nRewrite 2: wall anchors 50 lb\nRewrite 3: mirror hanging hooks",
    "- heavy duty picture hanging kit\n- wall anchors 50 lb\n- mirror hanging hooks",
    "* Heavy duty picture hanging kit.\n* Wall anchors 50 lb.\n* Mirror hanging hooks.",
    "• heavy duty picture hanging kit\n• wall anchors 50 lb\n• mirror hanging hooks",
    '1. "heavy duty picture hanging kit"\n2. "wall anchors 50 lb"\n3. "mirror hanging hooks"',
    "1. **heavy duty picture hanging kit**\n2. **wall anchors 50 lb**\n3. **mirror hanging hooks**",
    '["heavy duty picture hanging kit", "wall anchors 50 lb", "mirror hanging hooks"]',
    '```json\n{"rewrites": ["heavy duty picture hanging kit", "wall anchors 50 lb", "mirror hanging hooks"]}\n```',
    '[{"query": "heavy duty picture hanging kit"}, {"query": "wall anchors 50 lb"}, {"query": "mirror hanging hooks"}]',
    "Here are 3 rewrites:\n1. heavy duty picture hanging kit\n2. wall anchors 50 lb\n3. mirror hanging hooks",
    "heavy duty picture hanging kit\nwall anchors 50 lb\nmirror hanging hooks",
    "\n\n1. heavy duty picture hanging kit\n\n2. wall anchors 50 lb\n\n\n3. mirror hanging hooks\n",
    "<think>the user wants hardware</think>\n1. heavy duty picture hanging kit\n2. wall anchors 50 lb\n3. mirror hanging hooks",
    "1. heavy duty picture hanging kit\n2. wall anchors 50 lb\n3. mirror hanging hooks\n4. picture wire",
])
def test_well_formed_answers(answer: str) -> None:
    result = parse_candidates(answer, Q, 3)
    assert [c.lower() for c in result.candidates] == WANT
    assert result.format_ok and result.penalty == 0.0


def test_echoes_duplicates_and_explanations_are_removed() -> None:
    answer = (
        "1. What do I need to hang a heavy mirror?\n"
        "2. heavy duty picture hanging kit - holds mirrors up to 50 lb\n"
        "3. Heavy-duty picture hanging kit\n"
        "4. wall anchors 50 lb (for drywall)\n"
        "5. heavy duty picture hanging kit"
    )
    result = parse_candidates(answer, Q, 3)
    assert result.candidates == ["heavy duty picture hanging kit", "wall anchors 50 lb"]
    assert {"echo", "duplicate", "too_few"} <= set(result.issues)
    assert not result.format_ok
    assert result.penalty == pytest.approx(1 / 3)


def test_delimited_and_prose_answers_are_penalised() -> None:
    semi = parse_candidates("heavy duty picture hanging kit; wall anchors 50 lb; mirror hanging hooks", Q, 3)
    assert semi.candidates == WANT and semi.structure == "delimited"
    assert not semi.format_ok and semi.penalty == 0.25
    commas = parse_candidates('"heavy duty picture hanging kit", "wall anchors 50 lb", "mirror hanging hooks"', Q, 3)
    assert commas.candidates == WANT and not commas.format_ok
    chatty = parse_candidates("1. wall anchors 50 lb\nThese hold heavy things.\n2. mirror hanging hooks", Q, 2)
    assert chatty.candidates == ["wall anchors 50 lb", "mirror hanging hooks"]
    assert "extra_text" in chatty.issues and chatty.penalty == 0.25
    prose = parse_candidates(
        "You will want to find the studs in your wall and then use strong screws or anchors rated for the weight", Q, 3)
    assert prose.candidates == [] and prose.penalty == 1.0 and not prose.format_ok


@pytest.mark.parametrize("answer", ["", "   \n\n ", None, 42, "1.\n2.\n3.", "[]", "{}", "```", "- \n- \n", "...", "[1,"])
def test_empty_or_broken_answers_never_crash(answer: object) -> None:
    result = parse_candidates(answer, Q, 3)
    assert result.candidates == [] and not result.format_ok and result.penalty == 1.0
    assert "no_candidates" in result.issues


def test_a_single_rewrite_with_commas_is_not_split() -> None:
    assert parse_candidates("bath towel, white, cotton", "towel", 1).candidates == ["bath towel, white, cotton"]
    assert parse_candidates("2.5 inch deck screws", "screws", 1).candidates == ["2.5 inch deck screws"]


def test_parse_samples_one_candidate_per_answer() -> None:
    result = parse_samples(["wall anchors 50 lb", "Rewrite: mirror hanging hooks.", "wall anchors 50 lb"], Q, 3)
    assert result.candidates == ["wall anchors 50 lb", "mirror hanging hooks"]
    assert not result.format_ok and result.penalty == pytest.approx(1 / 3)
    ok = parse_samples(["wall anchors 50 lb", "mirror hanging hooks"], Q, 2)
    assert ok.format_ok and ok.penalty == 0.0
    assert parse_samples([], Q, 2).penalty == 1.0


def test_clean_candidate() -> None:
    assert clean_candidate('3. **"Wall anchors 50 lb."**') == "Wall anchors 50 lb"
    assert clean_candidate("Query: sofa with metal legs") == "sofa with metal legs"
    assert clean_candidate("- sofa with metal legs — keeps the no-wood constraint") == "sofa with metal legs"


# --- properties on arbitrary text ------------------------------------------------------------

_queries = st.text(max_size=40)
_n = st.integers(min_value=1, max_value=8)
_word = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
_candidate = st.lists(_word, min_size=1, max_size=6).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=400), st.text(alphabet="0123456789.-*•()[]{}\"':;,| \nabc", max_size=200)),
       query=_queries, n=_n)
def test_parser_invariants_on_arbitrary_text(text: str, query: str, n: int) -> None:
    result = parse_candidates(text, query, n)
    assert 0.0 <= result.penalty <= 1.0
    assert result.format_ok == (result.penalty == 0.0)
    assert len(result.candidates) <= n
    keys = [query_key(c) for c in result.candidates]
    assert all(keys) and len(set(keys)) == len(keys)
    assert query_key(query) not in keys or not query_key(query)
    for cand in result.candidates:
        assert cand == cand.strip() and "\n" not in cand and len(cand.split()) <= MAX_WORDS
    if result.format_ok:
        assert len(result.candidates) == n


@settings(max_examples=200, deadline=None)
@given(cands=st.lists(_candidate, min_size=1, max_size=6, unique_by=query_key), style=st.sampled_from(
    ["numbered", "paren", "bulleted", "json", "lines"]))
def test_formatted_lists_round_trip(cands: list[str], style: str) -> None:
    if style == "numbered":
        text = "\n".join(f"{i}. {c}" for i, c in enumerate(cands, 1))
    elif style == "paren":
        text = "\n".join(f"{i}) {c}" for i, c in enumerate(cands, 1))
    elif style == "bulleted":
        text = "\n".join(f"- {c}" for c in cands)
    elif style == "json":
        text = json.dumps(cands)
    else:
        text = "\n".join(cands)
    result = parse_candidates(text, "zz original query zz", len(cands))
    if style == "lines" and len(cands) == 1 and "," in text:
        return
    assert result.candidates == cands
    assert result.format_ok


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(st.text(max_size=80), max_size=6), query=_queries)
def test_parse_samples_invariants(texts: list[str], query: str) -> None:
    result = parse_samples(texts, query, max(1, len(texts)))
    assert 0.0 <= result.penalty <= 1.0 and result.format_ok == (result.penalty == 0.0)
    keys = [query_key(c) for c in result.candidates]
    assert len(set(keys)) == len(keys) and len(keys) <= max(1, len(texts))
