"""Side-by-side view: blinded pairs, verdicts that round-trip through the SBS store and unblind
correctly, pair tokens that cannot be forged, and variants as systems."""

from __future__ import annotations

import time

import pytest
import typer
from fastapi.testclient import TestClient
from serve_support import make_settings, write_experiment
from typer.testing import CliRunner

from shopsearch.cli import sbs_cmd
from shopsearch.experiments import SbsStore
from shopsearch.serve.app import create_app
from shopsearch.serve.sbs_tokens import InvalidTokenError, PairTokens

SECRET = b"0123456789abcdef-test-secret"
QUERIES = ["wireless headphones", "leather sofa", "kettle", "running shoes", "desk lamp", "face cream",
           "lego set", "cordless drill"]  # fmt: skip


@pytest.fixture(scope="module")
def sbs_app(index_a, tmp_path_factory):
    db = tmp_path_factory.mktemp("sbs") / "sbs.db"
    app = create_app(make_settings(index_a, sbs_db=db), pair_tokens=PairTokens(SECRET))
    with TestClient(app) as c:
        yield c, db


def ids(hits):
    return [h["product_id"] for h in hits]


def plain_results(client, q, mode, k=10):
    return ids(client.get("/search", params={"q": q, "k": k, "mode": mode}).json()["results"])


def test_systems_are_the_served_modes(sbs_app):
    client, _ = sbs_app
    body = client.get("/sbs/systems").json()
    assert body == {"systems": ["dense", "bm25", "hybrid"], "default_a": "hybrid", "default_b": "dense"}
    assert client.get("/info").json()["features"] == {"sbs": True}


def test_a_pair_shows_both_systems_blinded_and_randomly_sided(sbs_app):
    client, _ = sbs_app
    lefts = []
    for q in QUERIES:
        pair = client.get("/sbs/pair", params={"q": f"  {q} ", "a": "bm25", "b": "dense", "k": 5}).json()
        assert pair["query"] == q and pair["k"] == 5 and pair["token"]
        assert set(pair["left"][0]) == {"product_id", "title", "brand", "color", "category", "vertical", "rank"}
        bm25, dense = plain_results(client, q, "bm25", 5), plain_results(client, q, "dense", 5)
        sides = (ids(pair["left"]), ids(pair["right"]))
        assert sides in ((bm25, dense), (dense, bm25))
        if bm25 != dense:
            lefts.append("bm25" if sides[0] == bm25 else "dense")
        assert "bm25" not in pair["token"] and "dense" not in str(pair["left"])  # signed payload is base64
    assert set(lefts) == {"bm25", "dense"}, lefts  # both systems appear on the left over 8 queries


def test_the_verdict_round_trips_and_unblinds(sbs_app):
    client, db = sbs_app
    q = next(q for q in QUERIES if plain_results(client, q, "bm25") != plain_results(client, q, "hybrid"))
    pair = client.get("/sbs/pair", params={"q": q, "a": "bm25", "b": "hybrid"}).json()
    shown_left = "bm25" if ids(pair["left"]) == plain_results(client, q, "bm25") else "hybrid"
    res = client.post("/sbs/verdict", json={"token": pair["token"], "verdict": "left", "rater": "ann"})
    assert res.status_code == 200, res.text
    answer = res.json()
    assert answer["recorded"] and answer["query"] == q and answer["rater"] == "ann"
    assert "bm25" not in res.text and "hybrid" not in res.text  # the answer does not unblind the rater
    with SbsStore(db) as store:
        stored = [v for v in store.verdicts() if v.verdict_id == answer["verdict_id"]]
    assert len(stored) == 1
    v = stored[0]
    assert (v.query, v.verdict, v.rater) == (q, "left", "ann")
    assert v.left_system == shown_left and v.preferred() == shown_left
    assert {v.left_system, v.right_system} == {"bm25", "hybrid"} and v.swapped == (v.left_system == "hybrid")
    # a double click or a retry records it once; another rater's verdict on the same pair counts
    again = client.post("/sbs/verdict", json={"token": pair["token"], "verdict": "right", "rater": "ann"}).json()
    assert again == answer | {"recorded": False}
    other = client.post("/sbs/verdict", json={"token": pair["token"], "verdict": "same"}).json()
    assert other["recorded"] and other["rater"] == "anonymous"
    with SbsStore(db) as store:
        mine = [x for x in store.verdicts() if x.query == q]
    assert [(x.rater, x.verdict) for x in mine] == [("ann", "left"), ("anonymous", "same")]


def test_shopsearch_sbs_report_reads_the_store(sbs_app):
    client, db = sbs_app
    for q in QUERIES[:4]:
        pair = client.get("/sbs/pair", params={"q": q, "a": "dense", "b": "hybrid"}).json()
        client.post("/sbs/verdict", json={"token": pair["token"], "verdict": "same", "rater": "bob"})
    cli = typer.Typer()
    cli.add_typer(sbs_cmd.app, name="sbs")
    result = CliRunner().invoke(cli, ["sbs", "report", "--store", str(db), "--rater", "bob", "--n-resamples", "200"])
    assert result.exit_code == 0, result.output
    assert "| dense | hybrid | 4 | 4 | 0 | 4 | 0 |" in result.output


BAD_PAIRS = {
    "same system twice": ({"a": "bm25", "b": "bm25"}, "same system"),
    "unknown system": ({"a": "bm25", "b": "semantic"}, "choose from"),
    "blank query": ({"q": "   "}, "empty"),
    "control character in a system": ({"a": "bm\x1b25"}, "a"),
    "k too large": ({"k": 101}, "k"),
}


@pytest.mark.parametrize("case", list(BAD_PAIRS.values()), ids=list(BAD_PAIRS))
def test_bad_pair_requests_are_422(sbs_app, case):
    client, _ = sbs_app
    params, mention = case
    res = client.get("/sbs/pair", params={"q": "lamp", "a": "bm25", "b": "dense"} | params)
    assert res.status_code == 422, res.text
    assert mention in res.json()["error"]["message"]


def test_forged_altered_or_expired_tokens_are_refused(sbs_app):
    client, _ = sbs_app
    token = client.get("/sbs/pair", params={"q": "lamp", "a": "bm25", "b": "dense"}).json()["token"]
    body, mac = token.split(".")
    forged = PairTokens(b"another-secret-of-sixteen-bytes").issue("lamp", "bm25", "dense")
    for bad in (f"{body[:-2]}xx.{mac}", forged, "not-a-token", "a.b.c", ""):
        res = client.post("/sbs/verdict", json={"token": bad, "verdict": "left"})
        assert res.status_code == 422, (bad, res.text)
    for bad_body in ({"token": token, "verdict": "better"}, {"token": token}, {"token": token, "verdict": "left", "x": 1},
                     {"token": token, "verdict": "left", "rater": "\x00"}):
        assert client.post("/sbs/verdict", json=bad_body).status_code == 422
    tokens = PairTokens(SECRET, ttl_s=60)
    old = tokens.issue("lamp", "bm25", "dense", now=time.time() - 3600)
    with pytest.raises(InvalidTokenError, match="expired"):
        tokens.open(old)
    assert tokens.open(tokens.issue("lamp", "bm25", "dense")).query == "lamp"


def test_sides_are_a_secret_coin_balanced_over_queries():
    tokens, other = PairTokens(SECRET), PairTokens(b"yet-another-secret-value")
    swapped = [tokens.sides(f"q{i}", "a", "b").swapped for i in range(400)]
    assert 150 < sum(swapped) < 250
    assert swapped != [other.sides(f"q{i}", "a", "b").swapped for i in range(400)]  # depends on the secret
    assert repr(tokens) == "PairTokens(ttl_s=86400)"


def test_routes_are_off_without_a_store(client):
    assert client.get("/sbs/pair", params={"q": "lamp", "a": "bm25", "b": "dense"}).status_code == 404
    assert client.post("/sbs/verdict", json={"token": "x", "verdict": "left"}).status_code == 404


def test_experiment_variants_are_systems(index_a, index_b, tmp_path):
    exp = write_experiment(tmp_path / "ab.yaml", name="e", variants=[
        {"name": "control", "mode": "bm25"}, {"name": "dense", "index": index_b, "mode": "dense"}])
    app = create_app(make_settings(index_a, sbs_db=tmp_path / "sbs.db", experiment=exp), pair_tokens=PairTokens(SECRET))
    with TestClient(app) as c:
        systems = c.get("/sbs/systems").json()
        # a variant named like a mode is reached as variant:NAME; the mode keeps its name
        assert systems == {"systems": ["dense", "bm25", "hybrid", "control", "variant:dense"],
                           "default_a": "control", "default_b": "variant:dense"}
        pair = c.get("/sbs/pair", params={"q": "sofa", "a": "control", "b": "variant:dense", "k": 20}).json()
        control = plain_results(c, "sofa", "bm25", 20)  # the served index a, BM25: the control variant
        index_b_ids = set(c.app.state.shopsearch.experiment.arms["dense"].holder.current.products.ids)
        right_is_control = ids(pair["right"]) == control
        treatment_side = pair["left"] if right_is_control else pair["right"]
        assert ids(treatment_side) != control and set(ids(treatment_side)) <= index_b_ids
        verdict = c.post("/sbs/verdict", json={"token": pair["token"], "verdict": "right"}).json()
        with SbsStore(tmp_path / "sbs.db") as store:
            v = store.verdicts()[0]
        assert verdict["recorded"] and {v.left_system, v.right_system} == {"control", "variant:dense"}
        assert v.preferred() == ("control" if right_is_control else "variant:dense")
