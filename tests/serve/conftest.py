"""Shared fixtures of the serve tests: a small demo-shop index (and a smaller second one), built once,
and a test client. Plain helpers (settings, a live server, experiment files) are in serve_support."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SHOPSEARCH_FAISS_THREADS", "1")

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_support import ADMIN_KEY, make_settings

from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.data.schema import Catalog
from shopsearch.data.store import save_dataset
from shopsearch.retrieval.store import build_index
from shopsearch.serve.app import create_app
from shopsearch.serve.security import AdminKey


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


@pytest.fixture(scope="module")
def client(index_a):
    app = create_app(make_settings(index_a), admin_key=AdminKey(ADMIN_KEY))
    with TestClient(app) as c:
        yield c
