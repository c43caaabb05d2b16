"""POST /admin/reload: the key, atomic swaps under load, and refusals that leave the old index serving."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_support import ADMIN_KEY, live_server, make_settings

from shopsearch.retrieval.encoder import model_fingerprint, resolve_model
from shopsearch.retrieval.store import build_index, load_index
from shopsearch.serve.app import create_app
from shopsearch.serve.security import AdminKey

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def app_client(index_a):
    """A fresh app per test: reloads change its state."""
    app = create_app(make_settings(index_a), admin_key=AdminKey(ADMIN_KEY))
    with TestClient(app) as c:
        yield c


def reload(client, index=None, headers=AUTH):
    return client.post("/admin/reload", json={"index": str(index)} if index else None, headers=headers)


def test_reload_needs_the_admin_key(app_client, index_b, caplog):
    caplog.set_level(logging.DEBUG)
    assert reload(app_client, index_b, headers={}).status_code == 401
    wrong = reload(app_client, index_b, headers={"Authorization": "Bearer not-the-key-at-all"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert wrong.json()["error"]["code"] == "unauthorized"
    # the key is checked before the body is even parsed
    junk = app_client.post("/admin/reload", content=b"{junk", headers={"content-type": "application/json"})
    assert junk.status_code == 401
    ok = reload(app_client, index_b, headers={"X-Admin-Key": ADMIN_KEY})
    assert ok.status_code == 200, ok.text
    assert ADMIN_KEY not in caplog.text


def test_admin_endpoints_are_off_without_a_key(index_a, monkeypatch):
    monkeypatch.delenv("SHOPSEARCH_ADMIN_KEY", raising=False)
    with TestClient(create_app(make_settings(index_a))) as c:
        res = reload(c)
        assert res.status_code == 403 and res.json()["error"]["code"] == "admin_disabled"


def test_reload_swaps_in_another_index_and_back(app_client, index_a, index_b):
    assert app_client.get("/readyz").json()["n_products"] == 300
    body = reload(app_client, index_b).json()
    assert body["generation"] == 2 and body["previous_generation"] == 1 and body["n_products"] == 120
    assert app_client.get("/readyz").json()["n_products"] == 120
    hits = app_client.get("/search", params={"q": "sofa", "k": 100}).json()
    assert hits["index_generation"] == 2 and len(hits["results"]) == 100
    # no body: re-read the directory now served
    again = reload(app_client).json()
    assert again["generation"] == 3 and again["index"] == str(Path(index_b).resolve())
    assert reload(app_client, index_a).json()["n_products"] == 300
    metrics = app_client.get("/metrics").text
    assert 'shopsearch_index_reloads_total{outcome="ok"} 3.0' in metrics
    assert "shopsearch_index_generation 4.0" in metrics


def test_cache_does_not_outlive_its_index(app_client, index_b):
    params = {"q": "running shoes", "k": 5, "mode": "bm25"}
    app_client.get("/search", params=params)
    assert app_client.get("/search", params=params).json()["cached"]
    reload(app_client, index_b)
    after = app_client.get("/search", params=params).json()
    assert not after["cached"] and after["index_generation"] == 2


def corrupt(src: Path, dst: Path, name: str) -> Path:
    shutil.copytree(src, dst)
    path = dst / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle
    path.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("name", ["dense/vectors.npy", "dense/index.faiss", "products.parquet", "bm25/shopsearch_bm25.json"])
def test_corrupted_index_is_refused_and_the_old_one_keeps_serving(app_client, index_a, tmp_path, name):
    before = app_client.get("/search", params={"q": "desk lamp", "k": 5}).json()
    bad = corrupt(index_a, tmp_path / "bad", name)
    res = reload(app_client, bad)
    assert res.status_code == 422, res.text
    error = res.json()["error"]
    assert error["code"] == "index_refused" and name in error["message"]
    after = app_client.get("/search", params={"q": "desk lamp", "k": 5}).json()
    assert after["index_generation"] == 1 and after["results"] == before["results"]
    assert app_client.get("/readyz").json()["generation"] == 1
    assert 'shopsearch_index_reloads_total{outcome="refused"} 1.0' in app_client.get("/metrics").text


@pytest.mark.parametrize("where", ["missing", "empty", "file"])
def test_reload_from_a_path_that_is_no_index(app_client, tmp_path, where):
    target = tmp_path / where
    if where == "empty":
        target.mkdir()
    elif where == "file":
        target.write_text("x")
    res = reload(app_client, target)
    assert res.status_code == 422 and res.json()["error"]["code"] == "index_refused"
    assert app_client.get("/readyz").json()["generation"] == 1


class _RenamedEncoder:
    """The session's MiniLM, presented as another model (and optionally cut to ``dim``), so an
    index can be built that load_index accepts but the serving encoder must refuse."""

    def __init__(self, inner, model_dir: Path, dim: int | None = None) -> None:
        self.inner, self.model_dir = inner, model_dir
        self.dimension = dim or inner.dimension
        self.normalize, self.batch_size, self.model_id = True, 32, str(model_dir)

    def encode(self, texts, *, is_query=False, show_progress=False):
        v = self.inner.encode(texts, is_query=is_query)[:, : self.dimension]
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def describe(self):
        return {**self.inner.describe(), "model_id": str(self.model_dir), "model_path": str(self.model_dir),
                "model_fingerprint": model_fingerprint(self.model_dir), "dimension": self.dimension}  # fmt: skip


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    """A model directory with the bundled files linked in plus one more: another fingerprint."""
    _, bundled = resolve_model(None)
    out = tmp_path_factory.mktemp("models") / "other"
    out.mkdir()
    for f in bundled.iterdir():
        (out / f.name).symlink_to(f)
    (out / "variant.json").write_text('{"variant": 2}')
    return out


@pytest.mark.parametrize("dim", [None, 64], ids=["other-model", "other-dimension"])
def test_index_of_another_model_or_dimension_is_refused_with_409(app_client, shop, encoder, other_model, tmp_path, dim):
    from shopsearch.data.schema import Catalog

    index = build_index(Catalog(shop.catalog.df.head(40)), tmp_path / "other", show_progress=False,
                        encoder=_RenamedEncoder(encoder, other_model, dim))  # fmt: skip
    res = reload(app_client, index)
    assert res.status_code == 409, res.text
    message = res.json()["error"]["message"]
    assert ("64-d" in message) if dim else ("fingerprint" in message)
    assert app_client.get("/readyz").json() | {"index": None} == {
        "status": "ready", "index": None, "generation": 1, "n_products": 300
    }


def test_reloads_under_concurrent_load_drop_no_request(index_a, index_b):
    """Threads hammer /search over real HTTP while the index is swapped back and forth; every
    request must succeed, and each answer must come whole from one index (its generation's)."""
    app = create_app(make_settings(index_a, cache_size=0), admin_key=AdminKey(ADMIN_KEY))
    queries = ["sofa", "running shoes", "kettle", "wireless headphones", "drill", "face cream", "lego set"]
    modes = ["dense", "bm25", "hybrid"]
    stop = threading.Event()
    outcomes: list[tuple[int, int | None, list[str]]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def hammer(seed: int, base: str) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            i = seed
            while not stop.is_set():
                params = {"q": queries[i % len(queries)], "mode": modes[i % len(modes)], "k": 20}
                i += 1
                try:
                    res = http.get("/search", params=params)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))
                    continue
                body = res.json()
                with lock:
                    outcomes.append((res.status_code, body.get("index_generation"), [h["product_id"] for h in body.get("results", [])]))

    with live_server(app) as base:
        threads = [threading.Thread(target=hammer, args=(n, base)) for n in range(4)]
        for t in threads:
            t.start()
        generation_index = {1: "a"}
        with httpx.Client(base_url=base, timeout=60) as admin:
            for target, name in [(index_b, "b"), (index_a, "a"), (index_b, "b"), (index_a, "a")]:
                time.sleep(0.4)
                res = admin.post("/admin/reload", json={"index": str(target)}, headers=AUTH)
                assert res.status_code == 200, res.text
                generation_index[res.json()["generation"]] = name
            time.sleep(0.4)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    ids_b = set(load_index(index_b, verify=False).product_ids)
    assert not failures, failures[:5]
    statuses = Counter(status for status, _, _ in outcomes)
    assert statuses == {200: len(outcomes)} and len(outcomes) >= 20, statuses
    served = Counter(generation for _, generation, _ in outcomes)
    assert len(served) >= 3, served  # requests were answered by several index generations
    for _, generation, ids in outcomes:
        if generation_index[generation] == "b":
            assert set(ids) <= ids_b  # a b-generation answer holds only b's products
