"""The Siamese dual encoder: ONE sentence-transformers model encodes both queries and products.

Module stack: ``Transformer`` (left padding for decoder LLMs) -> ``Pooling`` (mean, cls or
lasttoken) -> any modules the base model had between them (kept) -> ``Normalize``. The query
instruction is the ST prompt ``"query"`` (``"document"`` is empty and there is no default prompt), so
``model.encode_query(...)`` / ``model.encode(..., prompt_name="query")`` prefix queries while
``model.encode(...)`` / ``encode_document(...)`` leave products unprefixed. ``serve_dim`` is the ST
``truncate_dim``. Everything is stored in the standard ST layout, so ``SentenceTransformer(path)``
opens any model shopsearch writes, without shopsearch and (after the default LoRA merge) without peft.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from shopsearch import __version__
from shopsearch.artifacts import atomic_dir
from shopsearch.data.errors import ShopsearchError
from shopsearch.models.encoder_config import EncoderConfig
from shopsearch.models.lora import (
    add_lora,
    backbone,
    enable_gradient_checkpointing,
    gradient_checkpointing_enabled,
    has_lora,
    lora_layers,
    merged_lora,
)
from shopsearch.retrieval.encoder import _load_sentence_transformer, resolve_model

log = logging.getLogger(__name__)

MODEL_INFO = "shopsearch_model.json"
# Families of causal (decoder-only) LLMs; also any config whose architectures end in ForCausalLM.
DECODER_MODEL_TYPES = frozenset(
    {
        "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "llama", "mistral", "mixtral", "gemma", "gemma2",
        "gemma3", "gemma3_text", "phi", "phi3", "gpt2", "gpt_neox", "gptj", "opt", "falcon", "olmo",
        "olmo2", "smollm3", "stablelm", "starcoder2", "granite", "cohere", "cohere2", "ministral",
    }
)  # fmt: skip


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def is_decoder_config(config: Any) -> bool:
    """Whether an HF config describes a causal decoder LLM (which wants left padding, last-token pooling)."""
    if getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "model_type", None) in DECODER_MODEL_TYPES:
        return True
    return any(a.endswith("ForCausalLM") for a in (getattr(config, "architectures", None) or []))


def _device(requested: str | None) -> str:
    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def build_siamese_encoder(config: EncoderConfig) -> Any:
    """Build the shared query/product encoder described by ``config`` (see module docstring)."""
    _offline()
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    model_id, path = resolve_model(config.base_model)
    device = _device(config.device)
    if config.dtype == "bfloat16" and not device.startswith("cuda"):
        raise ShopsearchError(f"dtype bfloat16 is for GPU training; device {device!r} must use float32")
    model_kwargs = {"dtype": torch.bfloat16} if config.dtype == "bfloat16" else {}

    try:
        if (path / "modules.json").is_file():
            base = SentenceTransformer(str(path), device="cpu", local_files_only=True, model_kwargs=model_kwargs)
            modules = list(base)
            base_prompt = (base.prompts or {}).get("query", "")
        else:  # a plain Hugging Face model directory
            modules = [Transformer(str(path), model_kwargs=model_kwargs)]
            base_prompt = ""
    except ShopsearchError:
        raise
    except Exception as exc:  # many types: OSError, ValueError, safetensors errors
        raise ShopsearchError(f"could not load the base model at {path}: {exc}") from exc

    transformer = modules[0]
    if not isinstance(transformer, Transformer):
        raise ShopsearchError(f"{path}: the first module is {type(transformer).__name__}, not a Transformer")
    decoder = is_decoder_config(transformer.auto_model.config)
    width = transformer.get_embedding_dimension()

    pool_at = next((i for i, m in enumerate(modules) if isinstance(m, Pooling)), None)
    base_mode = modules[pool_at].pooling_mode if pool_at is not None else None
    mode = config.pooling or (base_mode if isinstance(base_mode, str) else None)
    mode = mode or ("lasttoken" if decoder else "mean")
    if mode not in ("mean", "cls", "lasttoken"):
        raise ShopsearchError(f"{path}: base pooling {base_mode!r} is not one of mean/cls/lasttoken; set pooling")
    pooling = Pooling(width, mode)
    if pool_at is None:
        modules.insert(1, pooling)
    elif base_mode != mode:
        modules[pool_at] = pooling
    if not isinstance(modules[-1], Normalize):
        modules.append(Normalize())

    _configure_tokenizer(transformer, decoder)
    if config.query_prefix == "" and base_prompt:
        log.warning("base model %s has a query prompt %r; query_prefix='' drops it", model_id, base_prompt)

    model = SentenceTransformer(
        modules=modules,
        device="cpu",
        prompts={"query": config.query_prefix, "document": ""},
        default_prompt_name=None,
        similarity_fn_name="cosine",
    )
    if config.max_seq_length is not None:
        model.max_seq_length = int(config.max_seq_length)
    full_dim = int(model.get_embedding_dimension() or width)
    config.check_dims(full_dim)
    model.truncate_dim = config.serve_dim

    if config.lora:
        add_lora(model, config)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    model.to(device)
    _attach(model, shopsearch_config=config)
    _attach(model, shopsearch_base={"model_id": model_id, "path": str(path), "full_dim": full_dim, "decoder": decoder})
    return model


def _attach(model: Any, **attrs: Any) -> None:
    """Plain (non-module) attributes on the ST model: what save_encoder records about it."""
    for name, value in attrs.items():
        object.__setattr__(model, name, value)


def _configure_tokenizer(transformer: Any, decoder: bool) -> None:
    """Decoders: left padding (persisted in tokenizer_config.json and in the module's processing
    kwargs) and a pad token (the EOS token when the tokenizer has none)."""
    tok = transformer.tokenizer
    if tok is None:
        raise ShopsearchError("the base model has no tokenizer")
    if not decoder:
        return
    tok.padding_side = "left"
    text_kwargs = dict(transformer.processing_kwargs.get("text", {}))
    text_kwargs["padding_side"] = "left"
    transformer.processing_kwargs = {**transformer.processing_kwargs, "text": text_kwargs}
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ShopsearchError("the decoder's tokenizer has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
        transformer.auto_model.config.pad_token_id = tok.pad_token_id


def describe_encoder(model: Any) -> dict[str, Any]:
    """What a saved model's ``shopsearch_model.json`` records, read off the model itself."""
    from sentence_transformers.sentence_transformer.modules import Pooling

    config: EncoderConfig | None = getattr(model, "shopsearch_config", None)
    base = getattr(model, "shopsearch_base", {})
    pooling = next((m.pooling_mode for m in model if isinstance(m, Pooling)), None)
    layers = lora_layers(backbone(model))
    tok = model[0].tokenizer
    return {
        "base_model": base.get("model_id"),
        "base_model_path": base.get("path"),
        "architecture": type(backbone(model)).__name__,
        "decoder": base.get("decoder"),
        "pooling": pooling,
        "padding_side": getattr(tok, "padding_side", None),
        "query_prefix": (model.prompts or {}).get("query", ""),
        "document_prefix": (model.prompts or {}).get("document", ""),
        "max_seq_length": model.max_seq_length,
        "full_dim": base.get("full_dim"),
        "serve_dim": model.truncate_dim,
        "matryoshka_dims": config.matryoshka_dims if config else None,
        "lora": {
            "enabled": bool(layers) or bool(config and config.lora),
            "r": config.lora_r if config else None,
            "alpha": config.lora_alpha if config else None,
            "dropout": config.lora_dropout if config else None,
            "target_modules": config.lora_target_modules if config else None,
            "n_layers": len(layers),
        },
        "gradient_checkpointing": gradient_checkpointing_enabled(model),
        "encoder_config": config.model_dump() if config else None,
    }


def save_encoder(
    model: Any, path: str | Path, *, merge_lora: bool = True, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` atomically as a sentence-transformers directory plus ``shopsearch_model.json``.

    With LoRA adapters and ``merge_lora`` (the default) the adapters are merged into the saved
    weights, so the directory is a plain ST model; the in-memory model keeps its adapters. With
    ``merge_lora=False`` the directory holds the adapter only and loading it needs peft and the base
    model at its recorded path.
    """
    path = Path(path)
    info = describe_encoder(model)
    adapters = has_lora(model)
    info["lora"]["merged"] = bool(adapters and merge_lora)
    with atomic_dir(path) as tmp:
        if adapters and merge_lora:
            with merged_lora(model):
                model.save(str(tmp), create_model_card=False)
        else:
            model.save(str(tmp), create_model_card=False)
        info.update(
            shopsearch_version=__version__,
            torch_version=torch.__version__,
            metadata=metadata or {},
        )
        (tmp / MODEL_INFO).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    return path


def read_model_info(path: str | Path) -> dict[str, Any] | None:
    """The ``shopsearch_model.json`` of a saved encoder, or None for a model shopsearch did not write."""
    f = Path(path) / MODEL_INFO
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ShopsearchError(f"{f} is not valid JSON: {exc}") from None


def load_encoder(path: str | Path, *, device: str | None = None) -> Any:
    """Open a saved encoder (any ST directory) with plain ``SentenceTransformer``; shopsearch's
    record, when present, is attached as ``model.shopsearch_info``."""
    _, local = resolve_model(path)
    model = _load_sentence_transformer(local, device or "cpu")  # offline, quiet, ShopsearchError on failure
    info = read_model_info(local)
    _attach(model, shopsearch_info=info)
    _attach(model, shopsearch_base={
        "model_id": (info or {}).get("base_model"),
        "path": (info or {}).get("base_model_path"),
        "full_dim": full_dimension(model),
        "decoder": is_decoder_config(backbone(model).config),
    })
    if info and info.get("encoder_config"):
        _attach(model, shopsearch_config=EncoderConfig.model_validate(info["encoder_config"]))
    return model


def full_dimension(model: Any) -> int:
    """The encoder's untruncated output width (``get_embedding_dimension`` reports ``truncate_dim``)."""
    served = model.truncate_dim
    try:
        model.truncate_dim = None
        return int(model.get_embedding_dimension())
    finally:
        model.truncate_dim = served
