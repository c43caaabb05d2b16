"""Settings of the Siamese (shared) dual encoder: backbone, pooling, prefix, Matryoshka dims, LoRA.

One :class:`EncoderConfig` describes both the small CPU recipe (all-MiniLM-L6-v2, mean pooling) and
the paper's LLM recipe (a decoder backbone, last-token pooling, left padding, LoRA r=32/alpha=64/
dropout=0.1, Matryoshka dims with a smaller served dimension). Only checks that need no model are
done here; dims are checked against the backbone's width when the encoder is built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shopsearch.data.errors import ShopsearchError

Pooling = Literal["mean", "cls", "lasttoken"]

# Qwen3-Embedding's instruction format (a reconstruction, see METHOD.md part A); products stay unprefixed.
QWEN3_QUERY_PREFIX = "Instruct: Given a shopping query, retrieve relevant products\nQuery: "


class EncoderConfig(BaseModel):
    """How to build the shared query/product encoder.

    Attributes:
        base_model: None for the bundled all-MiniLM-L6-v2, else a local directory holding either a
            sentence-transformers model or a plain Hugging Face model (config.json + weights +
            tokenizer). Never a hub name: shopsearch works offline.
        pooling: None keeps the base model's own pooling (its saved Pooling module; for a plain
            HF directory: ``lasttoken`` for decoder LLMs, ``mean`` otherwise).
        query_prefix: prepended to queries only (stored as the ST prompt ``"query"``; the
            ``"document"`` prompt is empty). An explicit ``""`` means no prefix, even when the base
            model shipped a query prompt of its own.
        max_seq_length: token limit for both sides (None: the base model's own).
        matryoshka_dims: training dimensions for a Matryoshka loss, largest first (the trainer
            wraps its loss with them). Each must be <= the backbone's width.
        serve_dim: dimension served by ``SentenceTransformer(path)`` (stored as ``truncate_dim``;
            sentence-transformers truncates before normalising when asked to normalise). Must be one
            of ``matryoshka_dims`` when those are given, else <= the backbone's width.
        lora*: LoRA through peft; defaults are the paper's (r=32, alpha=64, dropout=0.1).
            ``lora_target_modules=None`` uses peft's per-architecture default (e.g. q/v projections);
            ``["all-linear"]`` targets every linear layer.
        gradient_checkpointing: enable activation checkpointing on the HF backbone.
        dtype: ``bfloat16`` loads the backbone in bf16 (GPU only; LoRA adapters stay float32).
        device: torch device (None: cuda when available, else cpu).
    """

    model_config = ConfigDict(extra="forbid")

    base_model: str | None = None
    pooling: Pooling | None = None
    query_prefix: str = ""
    max_seq_length: int | None = Field(default=None, ge=1)
    matryoshka_dims: list[int] | None = None
    serve_dim: int | None = Field(default=None, ge=1)
    lora: bool = False
    lora_r: int = Field(default=32, ge=1)
    lora_alpha: int = Field(default=64, ge=1)
    lora_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    lora_target_modules: list[str] | None = None
    gradient_checkpointing: bool = False
    dtype: Literal["float32", "bfloat16"] = "float32"
    device: str | None = None

    @field_validator("matryoshka_dims")
    @classmethod
    def _dims(cls, dims: list[int] | None) -> list[int] | None:
        if dims is None:
            return None
        if not dims:
            raise ValueError("matryoshka_dims must not be empty (use None for no Matryoshka training)")
        if any(d < 1 for d in dims):
            raise ValueError(f"matryoshka_dims must be positive, got {dims}")
        if len(set(dims)) != len(dims):
            raise ValueError(f"matryoshka_dims has duplicates: {dims}")
        return sorted(dims, reverse=True)

    @field_validator("lora_target_modules")
    @classmethod
    def _targets(cls, targets: list[str] | None) -> list[str] | None:
        if targets is not None and not targets:
            raise ValueError("lora_target_modules must not be empty (use None for peft's default)")
        return targets

    @model_validator(mode="after")
    def _serve_dim_in_dims(self) -> EncoderConfig:
        if self.serve_dim is not None and self.matryoshka_dims is not None and self.serve_dim not in self.matryoshka_dims:
            raise ValueError(
                f"serve_dim {self.serve_dim} is not one of the Matryoshka training dims {self.matryoshka_dims}"
            )
        return self

    def check_dims(self, width: int) -> None:
        """Refuse dims wider than the backbone's output ``width``."""
        too_wide = [d for d in (self.matryoshka_dims or []) if d > width]
        if too_wide:
            raise ShopsearchError(f"matryoshka_dims {too_wide} exceed the encoder's dimension {width}")
        if self.serve_dim is not None and self.serve_dim > width:
            raise ShopsearchError(f"serve_dim {self.serve_dim} exceeds the encoder's dimension {width}")
