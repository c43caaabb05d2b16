"""The demo shop: deterministic, synthetic, realistic in shape, and labelled correctly by construction."""

from __future__ import annotations

import dataclasses
import re
import time

import numpy as np
import pandas as pd
import pytest

from shopsearch.data.demo import (
    QUERY_TYPES,
    SYNTHETIC_NOTE,
    DemoShopConfig,
    build_demo_shop,
    generate_demo_shop,
    grade_product,
    zipf_traffic,
)
from shopsearch.data.demo.intent import FacetIndex
from shopsearch.data.demo.noise import PROTECTED, add_noise, typo
from shopsearch.data.demo.queries import value_synonyms
from shopsearch.data.demo.vocabulary import (
    VALUE_SYNONYMS,
    check_knowledge,
    check_vocabulary,
    complements_of,
    knowledge_templates,
    product_types,
    substitutes_of,
)
from shopsearch.data.schema import CATEGORY_SEPARATOR, ESCI

TINY = DemoShopConfig(n_products=300, n_queries=100)


@pytest.fixture(scope="module")
def tiny():
    return build_demo_shop(TINY)


@pytest.fixture(scope="module")
def default_shop():
    start = time.perf_counter()
    shop = build_demo_shop()
    shop.seconds = time.perf_counter() - start  # type: ignore[attr-defined]
    return shop


def _judged(shop) -> pd.DataFrame:
    return shop.dataset.judgments.df


def test_same_seed_same_shop_other_seed_other_shop(tiny):
    again = generate_demo_shop(TINY)
    pd.testing.assert_frame_equal(tiny.dataset.catalog.df, again.catalog.df)
    pd.testing.assert_frame_equal(tiny.dataset.queries.df, again.queries.df)
    pd.testing.assert_frame_equal(tiny.dataset.judgments.df, again.judgments.df)
    assert tiny.dataset.meta == again.meta
    other = generate_demo_shop(dataclasses.replace(TINY, seed=14))
    assert other.catalog.df["title"].tolist() != again.catalog.df["title"].tolist()


def test_tiny_config_is_fast_and_default_under_ten_seconds(default_shop):
    start = time.perf_counter()
    generate_demo_shop(TINY)
    assert time.perf_counter() - start < 2.0  # ~0.2 s measured; slack for slow CI machines
    assert default_shop.seconds < 10.0


def test_meta_says_synthetic_and_records_the_config(tiny):
    meta = tiny.dataset.meta
    assert meta["synthetic"] is True and tiny.dataset.synthetic
    assert meta["format"] == "demo-shop" and meta["seed"] == TINY.seed
    assert meta["note"] == SYNTHETIC_NOTE and "SYNTHETIC" in meta["note"]
    assert meta["config"] == dataclasses.asdict(TINY)
    assert tiny.dataset.summary()["synthetic"] is True


def test_dataset_is_valid_with_stated_id_formats(tiny):
    ds = tiny.dataset
    assert ds.scheme is ESCI
    cat, q, j = ds.catalog.df, ds.queries.df, ds.judgments.df
    assert len(cat) == TINY.n_products and len(q) == TINY.n_queries
    assert cat["product_id"].is_unique and q["query_id"].is_unique and q["text"].is_unique
    assert cat["product_id"].str.fullmatch(r"P\d{6}").all() and q["query_id"].str.fullmatch(r"Q\d{5}").all()
    assert set(j["product_id"]) <= set(cat["product_id"]) and set(j["query_id"]) == set(q["query_id"])
    assert not j.duplicated(["query_id", "product_id"]).any()
    assert [ESCI.to_grade(label) for label in j["label"]] == j["grade"].tolist()
    assert j.groupby("query_id").size().max() <= TINY.judged_per_query


def test_catalogue_rows_look_like_listings(tiny):
    cat = tiny.dataset.catalog.df
    assert cat["vertical"].nunique() >= 6
    for row in cat.itertuples():
        assert row.category.split(CATEGORY_SEPARATOR)[0] == row.vertical and row.category.count(">") == 2
        assert row.brand in row.title
        assert 3 <= len(row.bullets.split("\n")) <= 5
        assert 2 <= row.description.count(". ") + 1 <= 4
        assert {"product_type", "price"} <= set(row.attributes)
        assert all(isinstance(v, str) for v in row.attributes.values())
    accessories = cat[cat["attributes"].map(lambda a: "compatible_with" in a)]
    assert len(accessories) > 0
    titles = set(cat["title"])
    assert any("Ink Cartridge for" in t for t in titles) or any("Case for" in t for t in titles)


def test_vocabulary_is_rich_and_consistent():
    types = product_types()
    assert len(types) >= 40 and 6 <= len({t.vertical for t in types.values()}) <= 8
    assert check_vocabulary(types) == [] and check_knowledge(knowledge_templates(), types) == []
    assert "ink_cartridge" in complements_of("printer") and "printer" in complements_of("ink_cartridge")
    assert {"phone_case", "phone_charger"} <= complements_of("smartphone")
    assert "sofa_bed" in substitutes_of("sofa") and "couch" in types["sofa"].synonyms
    for t in types.values():
        assert len(t.brands) >= 3 and t.attrs and t.blurbs


def test_value_synonyms_never_name_another_value_of_the_same_attribute():
    for t in product_types().values():
        for attr, values in t.attrs:
            lowered = {v.lower() for v in values}
            for v in values:
                clash = set(value_synonyms(attr, v)) & (lowered - {v.lower()})
                assert not clash, f"{t.key}.{attr}: {v!r} has synonym(s) {clash} that are other values"
    assert all(k == k.lower() for k in VALUE_SYNONYMS)


def test_every_query_has_an_exact_product(default_shop):
    j = _judged(default_shop)
    exact = j[j["grade"] == 3].groupby("query_id").size()
    assert set(exact.index) == set(default_shop.dataset.queries.df["query_id"])


def test_all_query_types_occur_in_configured_shares(tiny, default_shop):
    assert set(tiny.dataset.queries.df["query_type"]) == set(QUERY_TYPES)
    counts = default_shop.dataset.queries.df["query_type"].value_counts()
    cfg = DemoShopConfig()
    assert counts["knowledge"] == round(cfg.n_queries * cfg.knowledge_share)
    assert counts["negation"] == round(cfg.n_queries * cfg.negation_share)
    assert counts["alternative"] == round(cfg.n_queries * cfg.alternative_share)
    assert default_shop.dataset.queries.df["vertical"].nunique() == 8


def _tiers(traffic: np.ndarray) -> np.ndarray:
    """Frequency tiers as the evaluation defines them: cumulative traffic share, once-only = 1."""
    order = np.sort(traffic)[::-1]
    share_before = np.array([order[order > t].sum() for t in traffic]) / traffic.sum()
    tiers = np.array(["HEAD", "TORSO HIGH", "TORSO LOW", "TAIL"])[
        np.searchsorted([0.25, 0.5, 0.75], share_before, "right")
    ]
    return np.where(traffic <= 1, "ONCE ONLY", tiers)


def test_traffic_is_zipf_with_every_frequency_tier(default_shop):
    q = default_shop.dataset.queries.df
    traffic = q["traffic"].to_numpy()
    assert (traffic >= 1).all() and (traffic == np.round(traffic)).all()
    assert (np.diff(traffic) <= 0).all()  # query ids are in popularity order
    assert (traffic == 1).mean() > 0.15  # a long once-only tail
    assert traffic.max() > 500 * np.median(traffic)  # a few huge head queries
    counts = pd.Series(_tiers(traffic)).value_counts()
    assert counts.reindex(["HEAD", "TORSO HIGH", "TORSO LOW", "TAIL", "ONCE ONLY"]).min() >= 10
    # head queries tend to be broad, once-only ones specific / knowledge / negation
    head = q["query_type"].iloc[:50].value_counts(normalize=True)
    tail = q.loc[traffic == 1, "query_type"].value_counts(normalize=True)
    assert head.get("broad", 0) > 0.6 and tail.get("broad", 0) < 0.05


def test_zipf_traffic_unit():
    t = zipf_traffic(500, 100_000, 1.1, np.random.default_rng(0))
    assert len(t) == 500 and t.dtype == np.int64 and t.min() == 1 and t[0] == t.max()
    pure = zipf_traffic(500, 100_000, 1.1, np.random.default_rng(0), offset=0.0)
    assert pure.max() > t.max()  # pure Zipf has the steeper head


def test_exact_substitute_complement_follow_the_rules(default_shop):
    shop = default_shop
    j = _judged(shop)
    for qid, pid, grade in j.sample(6000, random_state=0)[["query_id", "product_id", "grade"]].itertuples(
        index=False
    ):
        intent, f = shop.intents[qid], shop.facets[pid]
        subs, comps = intent.related_types()
        if grade == 3:  # right type, every stated attribute matches, no negation violated
            assert f["product_type"] in intent.types
            assert all(f.get(a) in values for a, values in intent.require)
            assert all(f.get(a) != v for a, v in intent.exclude)
            assert intent.max_price is None or f["price"] < intent.max_price
        elif grade == 2:  # same type breaking a stated constraint, or a declared substitute type
            if f["product_type"] in intent.types:
                assert not intent.satisfied_by(f) and intent.stated_attributes
            else:
                assert f["product_type"] in subs
        elif grade == 1:  # a declared complement type that fits the pinned model/brand
            assert f["product_type"] in comps and intent.fits(f.get("fits"))
        else:
            assert f["product_type"] not in intent.types and f["product_type"] not in subs
            assert f["product_type"] not in comps or not intent.fits(f.get("fits"))


def test_vectorised_grades_agree_with_the_scalar_reference(tiny):
    j = _judged(tiny)
    assert [tiny.grade(q, p) for q, p in zip(j["query_id"], j["product_id"], strict=True)] == j[
        "grade"
    ].tolist()
    # and on unjudged pairs: the candidate sets are exactly the products the oracle grades > 0
    index = FacetIndex(list(tiny.facets.values()))
    ids = list(tiny.facets)
    for qid in list(tiny.intents)[:40]:
        c = index.candidates(tiny.intents[qid])
        oracle = {g: {p for p in ids if tiny.grade(qid, p) == g} for g in (3, 2, 1)}
        assert {ids[r] for r in c.exact} == oracle[3]
        assert {ids[r] for r in c.substitute} == oracle[2]
        assert {ids[r] for r in c.complement} == oracle[1]


def test_negation_queries_exclude_and_their_exacts_respect_it(default_shop):
    q = default_shop.dataset.queries.df
    neg = q[q["query_type"] == "negation"]
    assert len(neg) > 0
    j = _judged(default_shop)
    for qid, text in zip(neg["query_id"], neg["text"], strict=True):
        intent = default_shop.intents[qid]
        assert intent.exclude, text
        clean = default_shop.clean_text[qid]
        assert re.search(r"\b(without|no|non|not|free|unscented|isn't|aren't|with sleeves)\b", clean), clean
        graded = j[j["query_id"] == qid]
        exact = [default_shop.facets[p] for p in graded.loc[graded["grade"] == 3, "product_id"]]
        assert exact and all(f.get(a) != v for f in exact for a, v in intent.exclude)
        # products that violate the negation are never Exact
        violating = [
            p
            for p in graded["product_id"]
            if any(default_shop.facets[p].get(a) == v for a, v in intent.exclude)
        ]
        assert all(default_shop.grade(qid, p) < 3 for p in violating)


def test_knowledge_and_alternative_queries_map_to_constraints(default_shop):
    q = default_shop.dataset.queries.df.set_index("query_id")
    clean = pd.Series(default_shop.clean_text)
    gifts = clean[clean.str.contains("year old") & (q["query_type"] == "knowledge")]
    for qid in gifts.index:
        req = dict(default_shop.intents[qid].require)
        assert ("age_range" in req) or ("size" in req), clean[qid]  # toys by age, or kids' helmets by size
    heavy = clean[clean.str.contains("heavy") & (q["query_type"] == "knowledge")]
    for qid in heavy.index:
        intent = default_shop.intents[qid]
        assert set(intent.types) == {"picture_hanging_kit", "wall_anchor"}
        assert dict(intent.require)["load_rating"] == ("heavy-duty",)
    j = _judged(default_shop)
    for qid in q.index[q["query_type"] == "alternative"]:
        intent = default_shop.intents[qid]
        ((attr, brand),) = intent.exclude
        assert attr == "brand" and brand.lower() in default_shop.clean_text[qid]
        for pid in j.loc[(j["query_id"] == qid) & (j["grade"] == 3), "product_id"]:
            f = default_shop.facets[pid]
            assert f["brand"] != brand and f["price"] < intent.max_price


def test_noise_hits_a_share_of_queries_and_never_changes_intents(default_shop):
    noisy = {q: op for q, op in default_shop.noise.items() if op}
    share = len(noisy) / len(default_shop.noise)
    assert 0.18 < share < 0.3  # noise_rate 0.25, minus the rare text that cannot be varied
    assert {"typo", "synonym", "drop"} <= set(noisy.values())
    text = default_shop.dataset.queries.df.set_index("query_id")["text"]
    assert all(text[q] != default_shop.clean_text[q] for q in noisy)


def test_noise_never_changes_intents():
    # Same seed with and without noise: the same clean queries carry exactly the same intents.
    config = DemoShopConfig(n_products=600, n_queries=300, noise_rate=0.5)
    loud, quiet = build_demo_shop(config), build_demo_shop(dataclasses.replace(config, noise_rate=0.0))
    assert sum(op is not None for op in loud.noise.values()) > 100 and not any(quiet.noise.values())
    by_clean = {quiet.clean_text[q]: i for q, i in quiet.intents.items()}
    assert all(by_clean[loud.clean_text[q]] == loud.intents[q] for q in loud.intents)
    # and labels: the same (clean query, product) pairs get the same grade
    quiet_grades = {
        (quiet.clean_text[q], p): g
        for q, p, g in _judged(quiet)[["query_id", "product_id", "grade"]].itertuples(index=False)
    }
    loud_grades = {
        (loud.clean_text[q], p): g
        for q, p, g in _judged(loud)[["query_id", "product_id", "grade"]].itertuples(index=False)
    }
    shared = quiet_grades.keys() & loud_grades.keys()
    assert len(shared) > 1000 and all(quiet_grades[k] == loud_grades[k] for k in shared)


def test_noise_operations_unit():
    rng = np.random.default_rng(0)
    for _ in range(50):
        out = typo("leather", rng)
        assert out != "leather" and abs(len(out) - 7) <= 1 and out[0] == "l"
    assert typo("tv", rng) == "tv"
    for _ in range(50):
        text, op = add_noise("sofa without wood legs", rng, "sofa", ("sofa", "couch", "settee"))
        assert op in {"typo", "synonym", "drop"} and text != "sofa without wood legs"
        if op == "drop":
            assert all(w in text.split() for w in PROTECTED & {"without"})


def test_grade_product_examples():
    from shopsearch.data.demo import Intent

    sofa = {
        "product_type": "sofa",
        "brand": "Loftly",
        "color": "Grey",
        "leg_material": "wood",
        "price": 500.0,
    }
    assert grade_product(Intent("negation", ("sofa",), exclude=(("leg_material", "wood"),)), sofa) == 2
    assert grade_product(Intent("negation", ("sofa",), exclude=(("leg_material", "metal"),)), sofa) == 3
    assert grade_product(Intent("broad", ("sofa_bed",)), sofa) == 2
    assert grade_product(Intent("broad", ("coffee_table",)), sofa) == 1
    assert grade_product(Intent("broad", ("kettle",)), sofa) == 0
    ink = {"product_type": "ink_cartridge", "brand": "Inkwell", "fits": "Printa AB-120", "price": 10.0}
    pinned = Intent("very_specific", ("printer",), (("brand", ("Officio",)),))
    assert grade_product(pinned, ink) == 0  # ink for another brand's printer does not complement
    assert grade_product(Intent("specific", ("printer",), (("brand", ("Printa",)),)), ink) == 1


def test_config_rejects_impossible_shops():
    with pytest.raises(ValueError, match="at least"):
        generate_demo_shop(DemoShopConfig(n_products=50, n_queries=20))
    with pytest.raises(ValueError):
        DemoShopConfig(knowledge_share=0.6, negation_share=0.5)
    with pytest.raises(ValueError):
        DemoShopConfig(n_queries=5)
