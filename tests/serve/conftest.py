"""Shared fixtures of the serve tests: a small demo-shop index (and a smaller second one), built once;
a live uvicorn server; experiment config files."""

from __future__ import annotations

import contextlib
import os
import threading
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SHOPSEARCH_FAISS_THREADS", "1")

from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient

from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.data.schema import Catalog
from shopsearch.data.store import save_dataset
from shopsearch.retrieval.store import build_index
from shopsearch.serve.app import create_app
from shopsearch.serve.security import AdminKey
from shopsearch.serve.settings import ServeSettings

ADMIN_KEY = "test-admin-key-0123456789abcdef"


@pytest.fixture(scope="session")
def shop():
    return generate_demo_shop(DemoShopConfig(n_products=300, n_queries=40, seed=7))


@pytest.fixture(scope="session")
def shop_dir(shop, tmp_path_factory) -> Path:
    """The demo shop saved as a dataset directory (format ``shopsearch``), for judgments."""
    return save_dataset(shop, tmp_path_factory.mktemp("shop") / "dataset")


@pytest.fixture(scope="session")
def encoder():
    from shopsearch.retrieval.encoder import SentenceEncoder

    return SentenceEncoder(batch_size=32)


@pytest.fixture(scope="session")
def index_a(shop, encoder, tmp_path_factory) -> Path:
    """All 300 demo products, BM25 + dense (bundled MiniLM, flat FAISS)."""
    out = tmp_path_factory.mktemp("indexes") / "a"
    return build_index(shop.catalog, out, encoder=encoder, show_progress=False)


@pytest.fixture(scope="session")
def index_b(shop, encoder, tmp_path_factory) -> Path:
    """The first 120 demo products, same model: a valid replacement for index_a."""
    out = tmp_path_factory.mktemp("indexes") / "b"
    return build_index(Catalog(shop.catalog.df.head(120)), out, encoder=encoder, show_progress=False)


@pytest.fixture(scope="session")
def bm25_index(shop, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("indexes") / "bm25"
    return build_index(Catalog(shop.catalog.df.head(50)), out, systems=("bm25",), show_progress=False)


def make_settings(index: Path, **overrides) -> ServeSettings:
    return ServeSettings(index=index, encoder="torch", encoder_threads=1, **overrides)


@pytest.fixture(scope="module")
def client(index_a):
    app = create_app(make_settings(index_a), admin_key=AdminKey(ADMIN_KEY))
    with TestClient(app) as c:
        yield c


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """The app under a real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def write_experiment(path: Path, **ab) -> Path:
    """A config file whose ``ab`` section is the experiment ``ab`` (paths written as text)."""
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    path.write_text(yaml.safe_dump({"ab": plain(ab)}))
    return path
