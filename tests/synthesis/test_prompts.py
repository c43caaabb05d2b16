"""Few-shot rewriting prompts per query type."""

from __future__ import annotations

import pytest

from shopsearch.synthesis.parsing import parse_candidates
from shopsearch.synthesis.prompts import FEW_SHOT, GUIDANCE, build_messages
from shopsearch.synthesis.query_types import QUERY_TYPES, tag_query


def test_every_type_has_guidance_and_examples() -> None:
    assert set(FEW_SHOT) == set(QUERY_TYPES) == set(GUIDANCE)
    for examples in FEW_SHOT.values():
        assert len(examples) >= 2 and all(len(e.rewrites) == 5 for e in examples)


@pytest.mark.parametrize("qtype", QUERY_TYPES)
def test_examples_are_of_their_type_and_parse_cleanly(qtype: str) -> None:
    for example in FEW_SHOT[qtype]:
        assert tag_query(example.query).query_type == qtype, example.query
        answer = "\n".join(f"{i}. {r}" for i, r in enumerate(example.rewrites, 1))
        parsed = parse_candidates(answer, example.query, 5)
        assert parsed.format_ok and parsed.candidates == list(example.rewrites)  # examples model the format


def test_negative_examples_keep_the_exclusion() -> None:
    for example in FEW_SHOT["negative"]:
        for rewrite in example.rewrites:
            # the exclusion survives as a positive attribute or an explicit "no"/"-free"
            assert not any(w in rewrite.split() for w in ("wood", "wool")) or "no" in rewrite.split()


def test_list_prompt_structure() -> None:
    messages = build_messages("sofa without wood legs", "negative", 4, shots=2)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "numbered list of 4" in messages[0]["content"]
    assert GUIDANCE["negative"] in messages[0]["content"]
    assert messages[-1]["content"] == "Query: sofa without wood legs\nWrite 4 rewrites."
    assert messages[2]["content"].count("\n") == 3  # each example shows n=4 rewrites
    assert messages[2]["content"].startswith("1. ")


def test_single_style_and_defaults() -> None:
    messages = build_messages("cordless drill", "plain", 5, style="single", shots=1)
    assert len(messages) == 4 and "one rewrite" in messages[0]["content"]
    assert "\n" not in messages[2]["content"]
    assert build_messages("x", "no-such-type", 3, shots=0)[0]["content"].endswith(
        "Answer with a numbered list of 3 different rewrites, one per line, and nothing else.")
    assert len(build_messages("x", "qa", 9)[2]["content"].splitlines()) == 5  # examples have 5 rewrites at most
    with pytest.raises(ValueError, match="style"):
        build_messages("x", "qa", 3, style="table")  # type: ignore[arg-type]
