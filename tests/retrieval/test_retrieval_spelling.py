"""Query spelling correction: real Home Depot titles as the vocabulary, real misspelt shopper queries,
a hypothesis property over seeded one-edit typos, and the ``+spell`` systems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from retrieval_catalog import PRODUCTS
from symspellpy.editdistance import DistanceAlgorithm, EditDistance

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.bm25 import BM25Retriever
from shopsearch.retrieval.spelling import CatalogSpellCorrector, SpellCorrectedRetriever
from shopsearch.retrieval.systems import SystemSpec, build_systems, parse_system
from shopsearch.training.typos import misspell

HD_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "home-depot"
OSA = EditDistance(DistanceAlgorithm.DAMERAU_OSA)  # SymSpell's own distance: a swap is one edit
needs_hd = pytest.mark.skipif(not (HD_DIR / "products.csv").is_file(), reason="needs ../shared/data/home-depot")


@pytest.fixture(scope="module")
def hd_corrector() -> CatalogSpellCorrector:
    titles = pd.read_csv(HD_DIR / "products.csv", dtype=str)["title"].fillna("").tolist()
    return CatalogSpellCorrector(titles)


@needs_hd
@pytest.mark.parametrize(
    ("typed", "expected"),
    [  # queries as Home Depot shoppers typed them (`dev` and `train`)
        ("kitchenaid refrigerator bottom frrezer", "kitchenaid refrigerator bottom freezer"),
        ("exteriorpaint", "exterior paint"),
        ("rat or mice poision", "rat or mice poison"),
        ("light swith insulation", "light switch insulation"),  # 'with' is as close; 'switch' keeps the 's'
        ("meld wen interior french doors", "jeld wen interior french doors"),  # 'jeld wen' is a catalogue bigram
    ],
)
def test_real_misspelt_queries_are_corrected(hd_corrector, typed, expected):
    assert hd_corrector.correct(typed) == expected


@needs_hd
def test_words_that_must_stay_stay(hd_corrector):
    # catalogue words, short words, model numbers and sizes, common English words the titles never use
    for query in ["cordless drill", "qtr round", "moen 7570 faucet", '1/2" x 10 ft. pvc', "inches"]:
        assert hd_corrector.explain(query).changes == ()
        assert hd_corrector.correct(query) == query


@needs_hd
def test_explain_keeps_the_text_between_words_and_names_each_change(hd_corrector):
    c = hd_corrector.explain('1/2" Sheetrok SCREWS, galvanaized')
    assert c.corrected == '1/2" sheetrock SCREWS, galvanized'
    assert c.changes == (("Sheetrok", "sheetrock"), ("galvanaized", "galvanized"))
    assert c.changed and c.original == '1/2" Sheetrok SCREWS, galvanaized'


@needs_hd
def test_most_one_edit_typos_of_catalogue_words_are_undone(hd_corrector):
    """Seeded typos (the training augmentation's edits) of catalogue words of 6 letters or more: the
    corrector recovers the word for 90% or more of them."""
    rng = np.random.default_rng(0)
    words = sorted(w for w in hd_corrector.counts if w.isalpha() and len(w) >= 6)
    sample = rng.choice(words, size=400, replace=False)
    recovered = total = 0
    for word in sample:
        typo, edit = misspell(str(word), rng, edits=("delete", "insert", "substitute", "swap"))
        if edit and typo not in hd_corrector.counts:
            total += 1
            recovered += hd_corrector.correct(typo) == word
    assert total > 300
    assert recovered / total >= 0.9


@needs_hd
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_changed_word_becomes_catalogue_words_within_the_edit_budget(hd_corrector, data):
    words = sorted(w for w in hd_corrector.counts if w.isalpha() and len(w) >= 4)
    word = data.draw(st.sampled_from(words))
    seed = data.draw(st.integers(0, 2**16))
    typo, _ = misspell(word, np.random.default_rng(seed), edits=("delete", "insert", "substitute", "swap"))
    corrected = hd_corrector.explain(typo)
    for typed, replacement in corrected.changes:
        assert typed not in hd_corrector.counts and len(typed) >= hd_corrector.min_length
        parts = replacement.split(" ")
        assert all(p in hd_corrector.counts for p in parts)
        if len(parts) == 1:  # an edit: within one edit under 6 letters, two above
            budget = 1 if len(typed) < 6 else 2
            assert 0 < OSA.compare(typed.lower(), replacement, budget) <= budget
        else:  # a split: the same letters
            assert "".join(parts) == typed.lower()


def test_context_breaks_ties_between_equally_close_words():
    titles = ["Weld Kit"] * 5 + ["Jeld Wen Door"]
    c = CatalogSpellCorrector(titles, english_min_count=None)
    assert c.correct("meld wen") == "jeld wen"  # 'weld' is commoner, 'jeld wen' is in the catalogue
    assert c.correct("meld") == "weld"  # no context: the commoner word


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="min_length"):
        CatalogSpellCorrector(["a"], min_length=0)
    with pytest.raises(ValueError, match="max_edit_distance"):
        CatalogSpellCorrector(["a"], max_edit_distance=5)


def test_bm25_with_spelling_finds_what_the_misspelt_query_misses():
    ids = np.array([f"p{i}" for i in range(len(PRODUCTS))], dtype=object)
    texts = [p[0] for p in PRODUCTS]
    bm25 = BM25Retriever(ids, texts)
    spelled = SpellCorrectedRetriever(bm25, CatalogSpellCorrector(texts))
    assert spelled.name == "bm25+spell"
    query = ["cordlss circulr"]
    plain_ids, _ = bm25.search(query, 3).row(0)
    fixed_ids, _ = spelled.search(query, 3).row(0)
    assert plain_ids == []  # no word of the query is a catalogue word
    assert fixed_ids[0] == "p1"  # the DeWalt circular saw
    # candidate scoring (AUC, re-ranking) sees the corrected query too
    plain_scores, fixed_scores = bm25.score_candidates(query, [["p1", "p0"]]), spelled.score_candidates(query, [["p1", "p0"]])
    assert plain_scores[0].tolist() == [0.0, 0.0] and fixed_scores[0][0] > fixed_scores[0][1]
    assert not hasattr(SpellCorrectedRetriever(_SearchOnly(), spelled.corrector), "score_candidates")


class _SearchOnly:
    name = "search-only"

    def search(self, queries, k):
        raise NotImplementedError


def test_spell_suffix_parses_onto_any_system():
    assert parse_system("hybrid+spell") == SystemSpec("hybrid", spell=True)
    assert parse_system("hybrid:rrf+spell").name == "hybrid:rrf+spell"
    assert parse_system("dense:runs/x/model+spell") == SystemSpec("dense", model="runs/x/model", spell=True)
    assert parse_system("dense:runs/x/model+spell").name == "dense:x+spell"
    assert parse_system("bm25+spell").base == SystemSpec("bm25")
    with pytest.raises(ShopsearchError, match=r"\+spell"):
        parse_system("bm26+spell")


def test_build_systems_shares_one_retriever_between_a_system_and_its_spelled_twin():
    ids = np.array([f"p{i}" for i in range(len(PRODUCTS))], dtype=object)
    texts = [p[0] for p in PRODUCTS]
    systems = build_systems(["bm25", "bm25+spell"], ids, texts, show_progress=False)
    assert list(systems) == ["bm25", "bm25+spell"]
    spelled = systems["bm25+spell"]
    assert isinstance(spelled, SpellCorrectedRetriever) and spelled.inner is systems["bm25"]
    with pytest.raises(ShopsearchError, match="given twice"):
        build_systems(["bm25+spell", "bm25+spell"], ids, texts, show_progress=False)
