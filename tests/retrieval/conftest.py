"""Shared fixtures for the retrieval tests: a small hand-written catalogue and one loaded encoder."""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from retrieval_catalog import make_catalog

from shopsearch.data.schema import Catalog


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return make_catalog()


@pytest.fixture(scope="session")
def encoder():
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    from shopsearch.retrieval.encoder import SentenceEncoder

    return SentenceEncoder(batch_size=32)
