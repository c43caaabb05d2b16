"""Bad input never yields a 5xx: each case gets a 4xx with the JSON error body, saying what to fix."""

from __future__ import annotations

import pytest

LONG = "drill " * 60  # 360 characters, over the default limit of 256

GET_CASES = {
    "empty query": ("q=", 422, "q"),
    "missing query": ("k=3", 422, "q"),
    "blank query": ("q=%20%20%09", 422, "empty"),
    "too long": (f"q={LONG}", 422, "limit is 256"),
    "far too long": ("q=" + "x" * 5000, 422, "4096"),
    "NUL byte": ("q=drill%00bit", 422, "control character"),
    "escape sequence": ("q=%1B%5B31mred", 422, "control character"),
    "DEL": ("q=drill%7F", 422, "control character"),
    "C1 control": ("q=drill%C2%85", 422, "control character"),
    "k zero": ("q=drill&k=0", 422, "k"),
    "k too large": ("q=drill&k=101", 422, "k"),
    "k negative": ("q=drill&k=-5", 422, "k"),
    "k not a number": ("q=drill&k=ten", 422, "k"),
    "k float": ("q=drill&k=2.5", 422, "k"),
    "unknown mode": ("q=drill&mode=semantic", 422, "mode"),
    "mode wrong case": ("q=drill&mode=DENSE", 422, "mode"),
    "over-long filter": ("q=drill&vertical=" + "v" * 300, 422, "vertical"),
}


@pytest.mark.parametrize("query", list(GET_CASES.values()), ids=list(GET_CASES))
def test_bad_get_search_is_a_4xx_with_a_json_error(client, query):
    params, status, mention = query
    res = client.get(f"/search?{params}")
    assert res.status_code == status, res.text
    error = res.json()["error"]
    assert error["code"] in {"invalid_request", "invalid_query"}
    assert mention in error["message"]


def test_invalid_utf8_in_the_query_string_is_not_an_error(client):
    # Starlette decodes %FF as U+FFFD: harmless text, searched like any other.
    res = client.get("/search?q=%FF%FEdrill")
    assert res.status_code == 200


POST_CASES = {
    "malformed JSON": (b'{"q": "drill", ', 400, "malformed_json"),
    "not JSON at all": (b"q=drill", 400, "malformed_json"),
    "JSON array": (b'["drill"]', 422, "invalid_request"),
    "JSON string": (b'"drill"', 422, "invalid_request"),
    "null body": (b"null", 422, "invalid_request"),
    "q not a string": (b'{"q": 42}', 422, "invalid_request"),
    "q null": (b'{"q": null}', 422, "invalid_request"),
    "unknown field": (b'{"q": "drill", "query": "x"}', 422, "invalid_request"),
    "k as bool-like string": (b'{"q": "drill", "k": "many"}', 422, "invalid_request"),
    "lone surrogate": (b'{"q": "\\ud800 drill"}', 422, "invalid_request"),
    "NUL escaped in JSON": (b'{"q": "drill\\u0000"}', 422, "invalid_query"),
    "huge k": (b'{"q": "drill", "k": 100000000000000000000000}', 422, "invalid_request"),
    "deeply nested": (b'{"q": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "bad_request"),
}


@pytest.mark.parametrize("case", list(POST_CASES.values()), ids=list(POST_CASES))
def test_bad_post_search_is_a_4xx_with_a_json_error(client, case):
    body, status, code = case
    res = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert res.status_code == status, res.text
    assert res.json()["error"]["code"] == code
    assert "\\ud800" not in res.text  # the input is never echoed back


def test_post_without_json_content_type_is_refused(client):
    res = client.post("/search", content=b'{"q": "drill"}', headers={"content-type": "text/plain"})
    assert 400 <= res.status_code < 500 and "error" in res.json()


def test_oversized_body_is_refused_with_413(client):
    res = client.post("/search", content=b'{"q": "' + b"a" * 100_000 + b'"}', headers={"content-type": "application/json"})
    assert res.status_code == 413 and res.json()["error"]["code"] == "payload_too_large"


def test_unknown_route_and_method_have_json_errors(client):
    res = client.get("/nope")
    assert res.status_code == 404 and res.json()["error"]["code"] == "not_found"
    res = client.delete("/search")
    assert res.status_code == 405 and res.json()["error"]["code"] == "method_not_allowed"


def test_k_above_the_configured_maximum(index_a):
    from fastapi.testclient import TestClient
    from serve_support import make_settings

    from shopsearch.serve.app import create_app

    with TestClient(create_app(make_settings(index_a, k_max=20, k_default=5, max_query_chars=10))) as c:
        assert c.get("/search", params={"q": "drill"}).json()["k"] == 5  # k_default
        res = c.get("/search", params={"q": "drill", "k": 50})
        assert res.status_code == 422 and "limit of 20" in res.json()["error"]["message"]
        res = c.get("/search", params={"q": "cordless drill bits"})
        assert res.status_code == 422 and "limit is 10" in res.json()["error"]["message"]


def test_oversized_streamed_body_is_refused_with_413(client):
    def chunks():
        for _ in range(40):
            yield b" " * 1000  # no Content-Length: the limit must count the chunks

    res = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert res.status_code == 413 and res.json()["error"]["code"] == "payload_too_large"
