"""Length-bucketed forward passes for the losses: the same embeddings for less padding.

A contrastive batch must embed all its products in one step, and the collator pads each column to
its longest row (the doc columns, merged into one forward, to the longest of all of them). Product
titles are short and uneven: on Home Depot (all-MiniLM-L6-v2's tokenizer) the median title is 19
tokens and the longest 64, so a stage-1 batch's 128 titles padded to their longest feed the model
about 2.1 tokens for each real one (``benchmarks/length_buckets.py``). :func:`bucketed_forward`
sorts the rows by length, splits them into chunks of about ``rows`` rows, trims each chunk to its own
longest row and runs the model once per chunk (all with gradients, in one backward), then restores
the row order. With right padding (BERT,
MiniLM) a row's embedding does not depend on the padding around it, so the result is the unbucketed
one up to floating-point rounding; left-padded decoders see fewer pad positions, as with any
change of padding.

sentence-transformers' ``chunked_padded_forward`` chunks rows in their given order (its aim is
bounded memory for GradCache-style losses), which trims little when long rows are spread through
the batch; sorting first is what removes the padding, hence this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers.base.losses.merged_forward import merge_feature_batches
from torch import Tensor, nn


def bucketed_forward(model: nn.Module, features: dict[str, Any], rows: int | None) -> Tensor:
    """``model(features)["sentence_embedding"]``, computed over length-sorted chunks of ``rows`` rows.

    ``rows`` None (or a batch no larger than ``rows``, or features without a 2-d ``attention_mask``)
    runs one forward as given. Tensors whose first axis is the batch are split by row; those whose
    second axis is the padded width are also trimmed to the chunk's token columns; anything else is
    passed to every chunk unchanged.
    """
    if rows is not None and rows < 1:
        raise ValueError(f"rows must be >= 1 or None, got {rows}")
    mask = features.get("attention_mask")
    if rows is None or not isinstance(mask, Tensor) or mask.ndim != 2 or mask.size(0) <= rows:
        return model(features)["sentence_embedding"]
    n, width = mask.shape
    order = torch.argsort(mask.sum(dim=1), stable=True)
    pieces = []
    for chunk in torch.tensor_split(order, math.ceil(n / rows)):
        used = mask[chunk].any(dim=0).nonzero()
        # padding is contiguous on one side, so the used token columns form one range
        lo, hi = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 1)
        pieces.append(model(_rows(features, chunk, n, width, lo, hi))["sentence_embedding"])
    embeddings = torch.cat(pieces, dim=0)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n, device=order.device)
    return embeddings[inverse]


def embed_bucketed(model: nn.Module, sentence_features: Iterable[dict[str, Any]], rows: int | None) -> list[Tensor]:
    """One (B, d) embedding per input column: the first (query) column on its own, the other (product)
    columns merged into one batch, each run through :func:`bucketed_forward`."""
    columns = list(sentence_features)
    if not columns:
        return []
    out = [bucketed_forward(model, columns[0], rows)]
    docs = columns[1:]
    merged = merge_feature_batches(docs) if len(docs) > 1 else None
    if merged is None:
        return out + [bucketed_forward(model, f, rows) for f in docs]
    embeddings = bucketed_forward(model, merged, rows)
    return out + list(embeddings.reshape(len(docs), -1, *embeddings.shape[1:]).unbind(0))


def _rows(features: dict[str, Any], index: Tensor, n: int, width: int, lo: int, hi: int) -> dict[str, Any]:
    sub: dict[str, Any] = {}
    for key, value in features.items():
        if isinstance(value, Tensor) and value.ndim >= 1 and value.size(0) == n:
            value = value[index.to(value.device)]
            if value.ndim >= 2 and value.size(1) == width:
                value = value[:, lo:hi]
        sub[key] = value
    return sub
