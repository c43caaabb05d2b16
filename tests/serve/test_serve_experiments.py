"""``serve --experiment``: sticky assignment, variants on their own index and mode, interleaved
pages with teams, one holder per distinct index sharing the encoder, and experiment events."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from serve_support import ADMIN_KEY, make_settings, write_experiment

from shopsearch.experiments import ExperimentConfig, assign, team_draft
from shopsearch.serve.app import create_app
from shopsearch.serve.security import AdminKey

USERS = [f"user-{i}" for i in range(24)]


@pytest.fixture(scope="module")
def ab_file(index_a, index_b, tmp_path_factory):
    """control: BM25 on index a (the served --index); treatment: dense on index b."""
    return write_experiment(
        tmp_path_factory.mktemp("exp") / "ab.yaml", name="exp-ab", salt="s1", unit="user",
        variants=[{"name": "control", "mode": "bm25"}, {"name": "treatment", "index": index_b, "mode": "dense"}],
    )  # fmt: skip


@pytest.fixture(scope="module")
def ab_client(index_a, ab_file, tmp_path_factory):
    db = tmp_path_factory.mktemp("exp-events") / "events.db"
    app = create_app(make_settings(index_a, experiment=ab_file, events_db=db), admin_key=AdminKey(ADMIN_KEY))
    with TestClient(app) as c:
        yield c


def test_assignment_is_sticky_per_user_and_decides_index_and_mode(ab_client, ab_file, shop):
    config = ExperimentConfig.from_file(ab_file)
    seen = {}
    for user in USERS:
        answers = [ab_client.get("/search", params={"q": q, "k": 5, "mode": "hybrid", "user_id": user}).json()
                   for q in ("sofa", "running shoes", "sofa")]  # fmt: skip
        variants = {a["variant"] for a in answers}
        assert len(variants) == 1, (user, variants)  # sticky
        variant = variants.pop()
        assert variant == assign(config, user) and {a["experiment"] for a in answers} == {"exp-ab"}
        assert {a["mode"] for a in answers} == {config.variant(variant).mode}  # the request's mode is overridden
        assert answers[0]["query_id"] != answers[2]["query_id"]  # each page shown is a search of its own
        seen[user] = answers
    by_variant = {v: [u for u in USERS if seen[u][0]["variant"] == v] for v in ("control", "treatment")}
    assert by_variant["control"] and by_variant["treatment"]
    # the treatment serves index b: the first 120 products of the shop
    index_b_ids = set(shop.catalog.df["product_id"].head(120).astype(str))
    treatment_user = by_variant["treatment"][0]
    big = ab_client.get("/search", params={"q": "sofa", "k": 100, "user_id": treatment_user}).json()
    assert len(big["results"]) == 100 and {h["product_id"] for h in big["results"]} <= index_b_ids
    control_user = by_variant["control"][0]
    assert ab_client.get("/search", params={"q": "sofa", "user_id": control_user}).json()["mode"] == "bm25"


def test_headers_and_body_carry_the_unit_too(ab_client, ab_file):
    config = ExperimentConfig.from_file(ab_file)
    user = USERS[3]
    by_header = ab_client.get("/search", params={"q": "kettle"}, headers={"X-User-Id": user}).json()
    by_body = ab_client.post("/search", json={"q": "kettle", "user_id": user}).json()
    assert by_header["variant"] == by_body["variant"] == assign(config, user)
    # the query parameter wins over the header
    other = next(u for u in USERS if assign(config, u) != assign(config, user))
    both = ab_client.get("/search", params={"q": "kettle", "user_id": other}, headers={"X-User-Id": user}).json()
    assert both["variant"] == assign(config, other)


def test_requests_without_a_unit_are_outside_the_experiment(ab_client):
    body = ab_client.get("/search", params={"q": "kettle", "mode": "hybrid"}).json()
    assert body["experiment"] is None and body["variant"] is None and body["mode"] == "hybrid"
    # a session id does not enter a user experiment
    assert ab_client.get("/search", params={"q": "kettle", "session_id": "s1"}).json()["experiment"] is None


@pytest.mark.parametrize("bad", ["", "x" * 129, "tab\there"])
def test_bad_unit_ids_are_422(ab_client, bad):
    res = ab_client.get("/search", params={"q": "kettle", "user_id": bad})
    assert res.status_code == 422 and "user_id" in res.json()["error"]["message"]
    res = ab_client.get("/search", params={"q": "kettle"}, headers={"X-User-Id": bad or " \x01"})
    assert res.status_code == 422


def test_one_holder_per_distinct_index_sharing_the_encoder(ab_client, index_a, index_b):
    ctx = ab_client.app.state.shopsearch
    runtime = ctx.experiment
    assert set(runtime.holders) == {index_a.resolve(), index_b.resolve()}
    assert runtime.arms["control"].holder is ctx.holder  # the served index is the control's
    a, b = (runtime.holders[p] for p in (index_a.resolve(), index_b.resolve()))
    assert a._encoder is not None and b._encoder is a._encoder  # one model in memory


def test_info_describes_the_experiment_without_paths(ab_client):
    info = ab_client.get("/info").json()
    assert info["features"] == {"events": True, "experiment": True}
    exp = info["experiment"]
    assert exp["name"] == "exp-ab" and exp["design"] == "ab" and exp["unit"] == "user"
    assert [(v["name"], v["mode"], v["index"]) for v in exp["variants"]] == [("control", "bm25", "a"), ("treatment", "dense", "b")]
    assert "/tmp" not in str(info) and "salt" not in exp


def test_admin_reload_may_not_move_an_arm_elsewhere(ab_client, index_b):
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    moved = ab_client.post("/admin/reload", json={"index": str(index_b)}, headers=auth)
    assert moved.status_code == 409 and moved.json()["error"]["code"] == "experiment_running"
    assert ab_client.post("/admin/reload", headers=auth).status_code == 200  # re-reading the same index is fine


def test_experiment_events_must_match_the_assignment(ab_client, ab_file):
    config = ExperimentConfig.from_file(ab_file)
    user = USERS[0]
    body = ab_client.get("/search", params={"q": "lamp", "k": 3, "user_id": user}).json()
    event = {"action_name": "impression", "query_id": body["query_id"], "object_id": body["results"][0]["product_id"],
             "position": 0, "user_id": user, "experiment": "exp-ab", "variant": body["variant"]}
    assert ab_client.post("/events", json={"events": [event]}).status_code == 200
    wrong = next(n for n in config.names if n != assign(config, user))
    for bad, field in ((event | {"variant": wrong}, "events.0.variant"), (event | {"variant": "nope"}, "events.0.variant"),
                       ({k: v for k, v in event.items() if k != "user_id"}, "events.0.user_id"),
                       (event | {"team": "control"}, "events.0.team"), (event | {"experiment": "other"}, "events.0.experiment")):
        res = ab_client.post("/events", json={"events": [bad]})
        assert res.status_code == 422 and field in res.json()["error"]["message"], (bad, res.text)


def test_metrics_count_searches_per_variant(ab_client):
    ab_client.get("/search", params={"q": "desk", "user_id": USERS[1]})
    text = ab_client.get("/metrics").text
    assert "shopsearch_experiment_searches_total{variant=" in text


# --- interleaving ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def interleaving_client(index_a, tmp_path_factory):
    path = write_experiment(
        tmp_path_factory.mktemp("exp") / "il.yaml", name="exp-il", design="interleaving", unit="session",
        variants=[{"name": "lexical", "index": index_a, "mode": "bm25"}, {"name": "semantic", "index": index_a, "mode": "dense"}],
    )  # fmt: skip
    with TestClient(create_app(make_settings(None, experiment=path))) as c:  # --index: the control's
        yield c


def test_interleaved_pages_carry_teams_from_a_team_draft(interleaving_client):
    c = interleaving_client
    ctx = c.app.state.shopsearch
    assert len(ctx.experiment.holders) == 1  # both variants on index a: one holder
    for session in ("s-1", "s-2", "s-3"):
        params = {"q": "wireless headphones", "k": 10, "session_id": session}
        page = c.get("/search", params=params).json()
        assert page["experiment"] == "exp-il" and page["variant"] == "interleaved" and page["mode"] == "interleaved"
        lexical = [h["product_id"] for h in c.get("/search", params={"q": "wireless headphones", "k": 10, "mode": "bm25"}).json()["results"]]
        semantic = [h["product_id"] for h in c.get("/search", params={"q": "wireless headphones", "k": 10, "mode": "dense"}).json()["results"]]
        expected = team_draft(lexical, semantic, page["query"], session, k=10)
        assert [h["product_id"] for h in page["results"]] == expected.ids
        names = {"a": "lexical", "b": "semantic"}
        assert [h["team"] for h in page["results"]] == [names[t] for t in expected.teams]
        assert {h["team"] for h in page["results"]} == {"lexical", "semantic"}
        assert [h["rank"] for h in page["results"]] == list(range(1, len(page["results"]) + 1))
        again = c.get("/search", params=params).json()
        assert [(h["product_id"], h["team"]) for h in again["results"]] == [(h["product_id"], h["team"]) for h in page["results"]]
    # a user id does not enter a session experiment
    assert c.get("/search", params={"q": "lamp", "user_id": "u"}).json()["experiment"] is None


def test_bad_experiment_configs_are_refused(index_a, bm25_index, tmp_path):
    from shopsearch.config import ConfigError
    from shopsearch.data.errors import ShopsearchError

    bad = write_experiment(tmp_path / "bad.yaml", name="x", variants=[{"name": "only"}])
    with pytest.raises(ConfigError, match="variants"):
        create_app(make_settings(index_a, experiment=bad))
    no_dense = write_experiment(tmp_path / "nd.yaml", name="x", variants=[
        {"name": "a", "index": bm25_index, "mode": "bm25"}, {"name": "b", "index": bm25_index, "mode": "dense"}])
    app = create_app(make_settings(index_a, experiment=no_dense))
    with pytest.raises(ShopsearchError, match="mode 'dense'"), TestClient(app):
        pass
