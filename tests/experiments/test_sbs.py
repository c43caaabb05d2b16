"""Side-by-side: blinding, the durable verdict store, and GSB unblinded from the recorded sides."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from shopsearch.experiments import SbsStore, SbsVerdict, blind_pair, gsb, gsb_all


def test_blind_pair_is_seeded_and_balanced():
    pairs = [blind_pair(f"query {i}", "bm25", "hybrid", seed=1) for i in range(2000)]
    assert pairs[5] == blind_pair("query 5", "bm25", "hybrid", seed=1)
    assert all({p.left, p.right} == {"bm25", "hybrid"} and (p.left == "hybrid") == p.swapped for p in pairs)
    assert stats.binomtest(sum(p.swapped for p in pairs), len(pairs), 0.5).pvalue > 0.001
    assert [p.swapped for p in pairs[:50]] != [blind_pair(f"query {i}", "bm25", "hybrid", seed=2).swapped
                                                for i in range(50)]
    with pytest.raises(ValueError, match="two different systems"):
        blind_pair("q", "bm25", "bm25")


def test_verdicts_validate():
    v = SbsVerdict(query="q", left_system="a", right_system="b", verdict=" LEFT ", rater="ann")
    assert v.verdict == "left" and v.preferred() == "a" and v.timestamp.tzinfo is not None
    for bad in ({"verdict": "better"}, {"right_system": "a"}, {"rater": ""}):
        with pytest.raises(ValueError):
            SbsVerdict(**{"query": "q", "left_system": "a", "right_system": "b", "verdict": "same", "rater": "r"} | bad)


def test_store_round_trip(tmp_path):
    pair = blind_pair("lamp", "bm25", "hybrid")
    verdicts = [SbsVerdict.from_pair(pair, "left", rater="ann", query_id="Q1"),
                SbsVerdict(query="sofa", left_system="dense", right_system="bm25", verdict="same", rater="bob")]
    with SbsStore(tmp_path / "sbs.db") as store:
        assert store.record(verdicts) == 2 and store.record(verdicts[0]) == 0
        assert store._db.pragma("journal_mode") == "wal"
    with SbsStore(tmp_path / "sbs.db") as store:  # reopened
        assert store.verdicts() == verdicts
        assert store.verdicts(system="dense") == verdicts[1:] and store.verdicts(rater="ann") == verdicts[:1]


def _verdicts(good: int, same: int, bad: int, a: str = "new", b: str = "old") -> list[SbsVerdict]:
    """G verdicts for a, S ties, B for b, alternating which system was shown left."""
    out = []
    for i, outcome in enumerate(["g"] * good + ["s"] * same + ["b"] * bad):
        left, right = (a, b) if i % 2 == 0 else (b, a)
        verdict = "same" if outcome == "s" else ("left" if (left == a) == (outcome == "g") else "right")
        out.append(SbsVerdict(query=f"q{i % 40}", left_system=left, right_system=right, verdict=verdict, rater="r",
                              swapped=left == b))
    return out


def test_gsb_unblinds_the_sides():
    verdicts = _verdicts(30, 50, 20)
    r = gsb(verdicts, "new", "old", n_resamples=2000)
    assert (r.good, r.same, r.bad, r.n, r.queries) == (30, 50, 20, 100, 40)
    assert r.gsb == pytest.approx((30 - 20) / 100)
    assert r.ci[0] < r.gsb < r.ci[1]
    assert r.p_value == pytest.approx(stats.binomtest(30, 50, 0.5).pvalue)
    flipped = gsb(verdicts, "old", "new", n_resamples=2000)
    assert flipped.gsb == pytest.approx(-r.gsb) and (flipped.good, flipped.bad) == (20, 30)
    other_pair = [SbsVerdict(query="x", left_system="new", right_system="third", verdict="left", rater="r")]
    assert gsb(verdicts + other_pair, "new", "old", n_resamples=2000).n == 100
    assert {(x.system_a, x.system_b) for x in gsb_all(verdicts + other_pair, n_resamples=500)} == {
        ("new", "old"), ("new", "third")}
    assert np.isnan(gsb([], "new", "old").gsb)


def test_position_bias_is_visible_and_cancelled_by_blinding():
    rng = np.random.default_rng(0)
    verdicts = []
    for i in range(400):  # raters who always prefer the left page, on blinded pairs
        pair = blind_pair(f"q{i}", "new", "old", seed=3)
        verdicts.append(SbsVerdict.from_pair(pair, "left" if rng.random() < 0.9 else "same", rater="lazy"))
    r = gsb(verdicts, "new", "old", n_resamples=1000)
    assert r.position_p_value < 1e-10 and r.right_wins == 0
    assert abs(r.gsb) < 0.15 and r.ci[0] < 0 < r.ci[1]  # the systems themselves are not told apart


def test_a_recorded_verdict_survives_sigkill(tmp_path):
    code = textwrap.dedent("""
        import os, signal, sys
        from shopsearch.experiments import SbsStore, SbsVerdict
        SbsStore(sys.argv[1]).record(SbsVerdict(query="q", left_system="a", right_system="b", verdict="right",
                                                rater="r", verdict_id="v1"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sbs.db")], env=os.environ | {"OMP_NUM_THREADS": "1"},
                          timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with SbsStore(tmp_path / "sbs.db") as store:
        assert [v.verdict_id for v in store.verdicts()] == ["v1"]
