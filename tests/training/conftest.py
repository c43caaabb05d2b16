"""Fixtures shared by the training tests: the real bundled all-MiniLM-L6-v2, the ESCI sample shop."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    # The test machine's 2 cores are shared; intra-op threads contend badly on these tiny batches.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def minilm_eval():
    """The bundled MiniLM in eval mode (no dropout, so comparisons are exact), token embeddings frozen:
    gradients are compared on later layers, and skipping the 30k x 384 token-embedding gradient halves
    the backward pass time."""
    from sentence_transformers import SentenceTransformer

    from shopsearch.retrieval.encoder import default_model_path

    m = SentenceTransformer(str(default_model_path()), device="cpu")
    m.eval()
    m[0].auto_model.embeddings.requires_grad_(False)
    return m


@pytest.fixture(scope="module")
def esci_shop():
    """The ESCI sample shop of ``tests/fixtures/esci`` and its rendered product texts by id."""
    from shopsearch.data import load_dataset
    from shopsearch.data.render import ProductTextRenderer

    esci = Path(__file__).resolve().parents[1] / "fixtures" / "esci"
    shop = load_dataset(
        catalog=esci / "shopping_queries_dataset_products.parquet",
        judgments=esci / "shopping_queries_dataset_examples.parquet",
    )
    return shop, dict(zip(shop.catalog.ids, ProductTextRenderer().render(shop.catalog), strict=True))
