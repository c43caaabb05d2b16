"""A tiny, randomly initialised decoder LLM as a local HF model directory, for CPU tests of the LLM path.

Nothing is downloaded: the architecture is a 2-layer Qwen3 (the paper's backbone family) of width
64, seeded, and the tokenizer is copied from a local tokenizer directory (the bundled MiniLM
WordPiece tokenizer by default; its ``[SEP]`` end token plays the role of Qwen3-Embedding's
appended EOS for last-token pooling). The model type ``qwen3`` is used rather than ``qwen2`` because
transformers 5 forces its own Qwen2 tokenizer class onto ``qwen2`` directories whatever
``tokenizer_config.json`` says, which would mangle a WordPiece vocabulary.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from shopsearch.artifacts import atomic_dir
from shopsearch.retrieval.encoder import resolve_model


def tiny_decoder_config_dir(
    out_dir: str | Path,
    *,
    vocab_from: str | Path | None = None,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Write a tiny seeded Qwen3 decoder + tokenizer to ``out_dir`` (replaced atomically); return it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer, Qwen3Config, Qwen3Model

    _, tok_dir = resolve_model(vocab_from)
    tok = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.cls_token_id
    eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    heads = 4
    config = Qwen3Config(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=2,
        head_dim=hidden_size // heads,
        max_position_embeddings=512,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
        tie_word_embeddings=False,
        use_cache=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3Model(config).eval()
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    tok.model_max_length = 512
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    return out
