"""The multi-candidate rewriter and resumable batch rewriting, on a scripted fake backend."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from synthesis_fakes import FakeBackend

from shopsearch.artifacts import read_manifest
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.llm.base import LLMBackend, LLMError
from shopsearch.synthesis.rewriter import (
    MultiCandidateRewriter,
    RewriteCandidates,
    RewriterConfig,
    iter_candidates,
    read_rewrites,
    rewrite_seeds,
)

ANSWERS = {
    "what do I need to hang a heavy mirror": "1. heavy duty picture hanging kit\n2. wall anchors 50 lb\n3. mirror hooks",
    "sofa without wood legs": "Sure! Here you go:\n- sofa with metal legs\n- sofa without wood legs\n- sofa with metal legs",
    "cheaper alternative to a dyson": "I cannot help with that.",
    "cordless drill": '["20v cordless drill", "cordless drill driver kit", "brushless drill"]',
}


def scripted(messages, i: int) -> str:
    query = messages[-1]["content"].split("\n")[0].removeprefix("Query: ")
    return ANSWERS.get(query, f"1. {query} a\n2. {query} b\n3. {query} c")


def test_fake_backend_satisfies_the_protocol() -> None:
    assert isinstance(FakeBackend(), LLMBackend)


def test_rewrite_list_style() -> None:
    backend = FakeBackend(scripted)
    rw = MultiCandidateRewriter(backend, RewriterConfig(n=3, seed=7, temperature=0.5))
    rc = rw.rewrite("what do I need to hang a heavy mirror", "qa", "q1")
    assert isinstance(rc, RewriteCandidates)
    assert rc.candidates == ["heavy duty picture hanging kit", "wall anchors 50 lb", "mirror hooks"]
    assert rc.format_ok and rc.format_penalty == 0.0 and rc.backend == "fake"
    assert rc.raw == [ANSWERS["what do I need to hang a heavy mirror"]]
    call = backend.calls[0]
    assert call["n"] == 1 and call["seed"] == 7 and call["temperature"] == 0.5
    assert "rewrite it into the products that answer it" in call["messages"][0]["content"]  # the qa prompt


def test_malformed_answers_give_a_penalty_not_an_exception() -> None:
    rw = MultiCandidateRewriter(FakeBackend(scripted), RewriterConfig(n=3))
    neg = rw.rewrite("sofa without wood legs", "negative", "q2")
    assert neg.candidates == ["sofa with metal legs"]  # echo and duplicate dropped
    assert not neg.format_ok and neg.format_penalty == pytest.approx(2 / 3)
    assert {"echo", "duplicate"} <= set(neg.issues)
    refusal = rw.rewrite("cheaper alternative to a dyson", "alternative", "q3")
    assert refusal.candidates == [] and refusal.format_penalty == 1.0 and not refusal.format_ok
    assert refusal.raw == ["I cannot help with that."]


def test_single_style_samples_n_times() -> None:
    answers = iter(["wall anchors", "Rewrite: picture hanging kit.", "wall anchors"])
    backend = FakeBackend(lambda m, i: next(answers))
    rc = MultiCandidateRewriter(backend, RewriterConfig(n=3, style="single")).rewrite("hang a heavy mirror", "qa")
    assert backend.calls[0]["n"] == 3
    assert rc.candidates == ["wall anchors", "picture hanging kit"] and not rc.format_ok
    assert "one rewrite" in backend.calls[0]["messages"][0]["content"]


def test_list_style_pools_several_answers() -> None:
    answers = iter(["1. a one\n2. b two", "1. b two\n2. c three"])
    backend = FakeBackend(lambda m, i: next(answers))
    rc = MultiCandidateRewriter(backend, RewriterConfig(n=3, samples=2)).rewrite("query", "plain")
    assert rc.candidates == ["a one", "b two", "c three"] and len(rc.raw) == 2
    assert rc.format_penalty == pytest.approx(1 / 3)  # each answer had 2 of 3


def test_invalid_settings() -> None:
    with pytest.raises(SynthesisError):
        RewriterConfig(n=0)
    with pytest.raises(SynthesisError):
        RewriterConfig(style="table")  # type: ignore[arg-type]


def _seeds(k: int) -> pd.DataFrame:
    texts = list(ANSWERS) + [f"query number {i}" for i in range(k - len(ANSWERS))]
    return pd.DataFrame({"seed_query_id": [f"s{i}" for i in range(k)], "text": texts[:k],
                         "query_type": ["qa", "negative", "alternative", "plain"] + ["plain"] * (k - 4)})


def test_rewrite_seeds_writes_parquet_and_manifest(tmp_path) -> None:
    seeds = _seeds(10)
    out = rewrite_seeds(seeds, tmp_path / "rw", MultiCandidateRewriter(FakeBackend(scripted), RewriterConfig(n=3)),
                        batch_size=4, progress=False)
    df = read_rewrites(out)
    assert df["seed_query_id"].tolist() == seeds["seed_query_id"].tolist()
    assert list(df.columns) == ["seed_query_id", "seed_query", "query_type", "candidates", "raw", "format_ok",
                                "format_penalty", "issues", "backend"]
    manifest = read_manifest(out, kind="synthesis-rewrites")
    assert manifest["summary"]["rewritten"] == 10 and manifest["summary"]["no_candidates"] == 1
    assert manifest["summary"]["format_ok_rate"] == pytest.approx(8 / 10)
    assert manifest["rewriter"]["prompt_version"] and manifest["rewriter"]["backend"]["name"] == "fake"
    assert not (out / "parts").exists()
    items = list(iter_candidates(df))
    assert items[0].candidates == ["heavy duty picture hanging kit", "wall anchors 50 lb", "mirror hooks"]
    assert items[2].candidates == [] and items[2].issues == ("no_candidates",)


class Crashing(FakeBackend):
    """Fails on its k-th call, like a server going away mid-run."""

    def __init__(self, fail_at: int) -> None:
        super().__init__(scripted)
        self.fail_at = fail_at

    def chat(self, messages, **kw):
        if len(self.calls) + 1 == self.fail_at:
            self.calls.append({"failed": True})
            raise LLMError("server went away")
        return super().chat(messages, **kw)


def test_rewrite_seeds_resumes_after_a_crash(tmp_path) -> None:
    seeds, out = _seeds(10), tmp_path / "rw"
    crashing = Crashing(fail_at=6)
    with pytest.raises(LLMError):
        rewrite_seeds(seeds, out, MultiCandidateRewriter(crashing, RewriterConfig(n=3)), batch_size=4, progress=False)
    assert len(list((out / "parts").glob("part-*.parquet"))) == 1  # the first batch of 4 was saved
    assert not (out / "manifest.json").exists()
    backend = FakeBackend(scripted)
    rewrite_seeds(seeds, out, MultiCandidateRewriter(backend, RewriterConfig(n=3)), batch_size=4, progress=False)
    assert len(backend.calls) == 6  # only the seeds not done
    df = read_rewrites(out)
    assert df["seed_query_id"].tolist() == seeds["seed_query_id"].tolist()
    assert read_manifest(out)["summary"]["resumed_from"] == 4
    # a finished run reruns as a no-op
    again = FakeBackend(scripted)
    rewrite_seeds(seeds, out, MultiCandidateRewriter(again, RewriterConfig(n=3)), batch_size=4, progress=False)
    assert again.calls == [] and len(read_rewrites(out)) == 10


def test_other_settings_refuse_to_mix(tmp_path) -> None:
    seeds, out = _seeds(5), tmp_path / "rw"
    rewrite_seeds(seeds, out, MultiCandidateRewriter(FakeBackend(scripted), RewriterConfig(n=3)), progress=False)
    other = MultiCandidateRewriter(FakeBackend(scripted), RewriterConfig(n=4))
    with pytest.raises(SynthesisError, match="other settings"):
        rewrite_seeds(seeds, out, other, progress=False)
    rewrite_seeds(seeds, out, other, overwrite=True, progress=False)
    assert json.loads((out / "run.json").read_text())["config"]["n"] == 4
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(SynthesisError, match="not a rewrites run"):
        rewrite_seeds(seeds, tmp_path / "junk", other, progress=False)


def test_rewrite_seeds_reads_a_seeds_directory_and_limit(tmp_path) -> None:
    from shopsearch.data.schema import Queries
    from shopsearch.synthesis.seeds import SeedConfig, select_seeds

    queries = Queries(pd.DataFrame({"query_id": list("abcd"), "text": ["rug not wool", "drill", "gift for a 5 year old",
                                                                          "tape"], "traffic": [1.0, 1.0, 1.0, 1.0]}))
    seeds_dir = select_seeds(queries, SeedConfig()).write(tmp_path / "seeds")
    backend = FakeBackend(scripted)
    out = rewrite_seeds(seeds_dir, tmp_path / "rw", MultiCandidateRewriter(backend, RewriterConfig(n=3)),
                        limit=2, progress=False)
    df = read_rewrites(out)
    assert df["seed_query_id"].tolist() == ["a", "b"] and df["query_type"].tolist() == ["negative", "plain"]
    assert "exclusion" in backend.calls[0]["messages"][0]["content"]  # the negative prompt for "rug not wool"
