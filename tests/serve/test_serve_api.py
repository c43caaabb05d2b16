"""The search API on a small demo index: search in every mode, filters, products, ops endpoints, page."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from serve_support import ADMIN_KEY, make_settings

from shopsearch.serve.app import create_app
from shopsearch.serve.judgments import JudgmentLookup
from shopsearch.serve.security import AdminKey

MODES = ["dense", "bm25", "hybrid"]


@pytest.mark.parametrize("mode", MODES)
def test_get_and_post_search_agree_and_carry_product_fields(client, mode):
    got = client.get("/search", params={"q": "wireless headphones", "k": 5, "mode": mode})
    posted = client.post("/search", json={"q": "wireless headphones", "k": 5, "mode": mode})
    assert got.status_code == posted.status_code == 200
    a, b = got.json(), posted.json()
    assert [h["product_id"] for h in a["results"]] == [h["product_id"] for h in b["results"]]
    assert a["mode"] == mode and a["k"] == 5 and 1 <= len(a["results"]) <= 5
    hits = a["results"]
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert set(hits[0]) >= {"product_id", "title", "brand", "color", "category", "vertical", "score", "grade"}
    assert hits[0]["title"]


def test_dense_search_finds_the_obvious_product(client, shop):
    df = shop.catalog.df
    row = df[df["title"].str.contains("Kettle", case=False)].iloc[0]
    hits = client.get("/search", params={"q": row["title"], "k": 3}).json()["results"]
    assert hits[0]["product_id"] == row["product_id"]


def test_defaults_and_whitespace_collapsing(client):
    body = client.get("/search", params={"q": "  red \t  dress "}).json()
    assert body["query"] == "red dress" and body["mode"] == "dense" and body["k"] == 10
    assert len(body["results"]) == 10


@pytest.mark.parametrize("mode", MODES)
def test_misspelt_words_are_corrected_and_named_unless_spell_is_false(client, mode):
    typo = client.get("/search", params={"q": "wireles headphnes", "k": 5, "mode": mode}).json()
    right = client.get("/search", params={"q": "wireless headphones", "k": 5, "mode": mode}).json()
    assert typo["query"] == "wireles headphnes" and typo["corrected_query"] == "wireless headphones"
    assert typo["corrections"] == [["wireles", "wireless"], ["headphnes", "headphones"]]
    assert [h["product_id"] for h in typo["results"]] == [h["product_id"] for h in right["results"]]
    assert right["corrected_query"] is None and right["corrections"] == []
    as_typed = client.post("/search", json={"q": "wireles headphnes", "k": 5, "mode": mode, "spell": False}).json()
    assert as_typed["corrected_query"] is None and as_typed["corrections"] == []
    if mode == "bm25":  # no word of the query as typed is in the catalogue
        assert as_typed["results"] == []


def test_spelling_correction_can_be_switched_off_for_the_service(index_a):
    app = create_app(make_settings(index_a, spell_correction=False), admin_key=AdminKey(ADMIN_KEY))
    with TestClient(app) as c:
        body = c.get("/search", params={"q": "wireles headphnes", "mode": "bm25"}).json()
    assert body["corrected_query"] is None and body["results"] == []


def test_hybrid_weighting_by_term_coverage_is_a_service_setting(index_a):
    app = create_app(make_settings(index_a, hybrid_weighting="coverage", spell_correction=False), admin_key=AdminKey(ADMIN_KEY))
    with TestClient(app) as c:
        assert c.app.state.shopsearch.holder.current.retrievers["hybrid"].weighting == "coverage"  # type: ignore[attr-defined]
        body = c.get("/search", params={"q": "wireless headphones", "mode": "hybrid"}).json()
    assert body["results"] and "headphone" in body["results"][0]["title"].lower()


def test_repeated_query_is_served_from_the_cache(client):
    first = client.get("/search", params={"q": "gaming laptop", "mode": "hybrid"}).json()
    second = client.get("/search", params={"q": "gaming laptop", "mode": "hybrid"}).json()
    assert second["cached"] and first["results"] == second["results"]


@pytest.mark.parametrize("mode", MODES)
def test_filters_keep_only_matching_products(client, shop, mode):
    df = shop.catalog.df
    vertical = df["vertical"].value_counts().index[-1]  # the smallest vertical: over-fetch has work to do
    # a colour some of its products carry in their titles, and many other products too
    color = df[(df["vertical"] == vertical) & df["color"].notna()]["color"].value_counts().index[0]
    body = client.get("/search", params={"q": color, "k": 10, "mode": mode, "vertical": vertical.upper()}).json()
    assert body["results"], body
    assert {h["vertical"] for h in body["results"]} == {vertical}
    assert body["filters"] == {"vertical": vertical.upper()} and body["candidates"] >= len(body["results"])
    brand = df["brand"].value_counts().index[0]
    color = df[(df["brand"] == brand) & df["color"].notna()]["color"].value_counts().index[0]
    body = client.post("/search", json={"q": color, "k": 5, "mode": mode, "brand": brand.lower()}).json()
    assert body["results"] and {h["brand"] for h in body["results"]} == {brand}


def test_filter_matching_nothing_gives_an_empty_list(client):
    body = client.get("/search", params={"q": "sofa", "vertical": "no such vertical"}).json()
    assert body["results"] == [] and body["candidates"] == 0


def test_dense_filter_reaches_the_whole_small_catalogue(client, shop):
    """With a filter, a fetch that grows to the catalogue size is exact: every product of the
    brand is found even when the query is about something else."""
    df = shop.catalog.df
    brand = df["brand"].value_counts().index[0]
    n = int((df["brand"] == brand).sum())
    body = client.get("/search", params={"q": "kitchen knife", "k": 100, "mode": "dense", "brand": brand}).json()
    assert len(body["results"]) == n


def test_product_lookup(client, shop):
    pid = str(shop.catalog.df["product_id"].iloc[3])
    got = client.get(f"/products/{pid}")
    assert got.status_code == 200 and got.json()["product_id"] == pid
    missing = client.get("/products/NOPE-404")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_health_ready_info(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["n_products"] == 300 and ready["generation"] >= 1
    info = client.get("/info").json()
    assert info["modes"] == MODES and info["k_max"] == 100
    assert info["index"]["encoder"] == "torch" and info["index"]["dimension"] == 384
    assert info["index"]["model"] == "all-MiniLM-L6-v2" and info["index"]["name"] == "a"
    assert "/tmp" not in json.dumps(info) and "/tmp" not in json.dumps(ready)  # no server paths in public answers
    assert info["facets"]["vertical"] and info["features"] == {}


def test_metrics_in_prometheus_text_format(client):
    client.get("/search", params={"q": "drill", "mode": "bm25"})
    client.get("/products/NOPE")
    res = client.get("/metrics")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    text = res.text
    assert 'shopsearch_http_requests_total{method="GET",route="/search",status="200"}' in text
    assert 'route="/products/{product_id}",status="404"' in text  # the template, not the raw path
    assert "shopsearch_http_request_duration_seconds_bucket" in text
    assert 'shopsearch_searches_total{cached="false",mode="bm25"}' in text
    assert "shopsearch_search_duration_seconds_bucket" in text
    assert "shopsearch_index_products 300.0" in text and "shopsearch_index_size_bytes" in text


def test_openapi_documents_the_api(client):
    spec = client.get("/openapi.json").json()
    assert {"/search", "/products/{product_id}", "/healthz", "/readyz", "/metrics", "/admin/reload"} <= set(spec["paths"])
    assert {"get", "post"} <= set(spec["paths"]["/search"])
    schemas = spec["components"]["schemas"]
    assert {"SearchRequest", "SearchResponse", "Hit", "ErrorResponse"} <= set(schemas)
    k = schemas["SearchRequest"]["properties"]["k"]
    assert [t.get("maximum") for t in k["anyOf"] if t.get("type") == "integer"] == [100]


def test_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    for needle in ('id="q"', 'value="dense"', 'value="bm25"', 'value="hybrid"', 'id="sbs"', "/static/app.js"):
        assert needle in html
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "window.shopsearch" in js.text and "innerHTML" not in js.text
    assert client.get("/static/style.css").status_code == 200


def test_judged_grades_appear_on_results(index_a, shop, shop_dir):
    judgments = JudgmentLookup.load(shop_dir, format="shopsearch")
    qid = shop.judgments.df.sort_values("grade", ascending=False)["query_id"].iloc[0]
    text = shop.queries.df.set_index("query_id").at[qid, "text"]
    judged = shop.judgments.df[shop.judgments.df["query_id"] == qid]
    app = create_app(make_settings(index_a), judgments=judgments, admin_key=AdminKey(ADMIN_KEY))
    with TestClient(app) as c:
        body = c.get("/search", params={"q": text.upper(), "k": 100, "mode": "hybrid"}).json()
        assert body["judged"]
        graded = {h["product_id"]: h["grade"] for h in body["results"] if h["grade"] is not None}
        expected = dict(zip(judged["product_id"], judged["grade"], strict=True))
        assert graded and all(expected[p] == g for p, g in graded.items())
        assert not c.get("/search", params={"q": "never judged query xyz"}).json()["judged"]
        assert c.get("/info").json()["judgments"]["scheme"]["name"] == "esci"


def test_extra_routers_plug_in_and_switch_page_features(index_a):
    from fastapi import APIRouter, Depends

    from shopsearch.serve.app import ServeContext, get_context

    router = APIRouter()

    @router.post("/events", status_code=202)
    def events(ctx: ServeContext = Depends(get_context)) -> dict:
        return {"accepted": True, "n_products": ctx.holder.current.n_products}

    app = create_app(make_settings(index_a), extra_routers=[router], features={"events": True, "sbs": True})
    with TestClient(app) as c:
        assert c.post("/events").json() == {"accepted": True, "n_products": 300}
        assert c.get("/info").json()["features"] == {"events": True, "sbs": True}


def test_bm25_only_index_serves_bm25_and_refuses_dense(bm25_index):
    with TestClient(create_app(make_settings(bm25_index))) as c:
        assert c.get("/info").json()["modes"] == ["bm25"]
        assert c.get("/search", params={"q": "shoes", "mode": "bm25"}).status_code == 200
        res = c.get("/search", params={"q": "shoes", "mode": "dense"})
        assert res.status_code == 422 and "not available" in res.json()["error"]["message"]
