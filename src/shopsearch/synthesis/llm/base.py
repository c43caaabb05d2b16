"""The one interface every LLM backend implements, and what the backends share.

A backend turns chat messages into ``n`` completions. The rewriter, the LLM query tagger and (later)
the judges only see :class:`LLMBackend`, so a local GGUF model, any OpenAI-compatible server and a
transformers policy under RL training are interchangeable (METHOD.md part B, step 2: the
multi-candidate rewriter is one LLM whatever serves it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypedDict, runtime_checkable

from shopsearch.data.errors import ShopsearchError

ROLES = frozenset({"system", "user", "assistant"})


class Message(TypedDict):
    """One chat message, as OpenAI's chat-completions API spells it."""

    role: str
    content: str


class LLMError(ShopsearchError):
    """An LLM backend could not answer: a model file missing, a server refusing, a bad request."""


@runtime_checkable
class LLMBackend(Protocol):
    """Chat completions with ``n`` samples per request.

    ``chat`` returns exactly ``n`` completion texts (assistant message contents, in order). ``seed``
    makes sampling reproducible where the backend supports it (``describe()`` says when it does
    not); ``temperature=0`` asks for greedy decoding. ``name`` is a short stable label written into
    every output row (``RewriteCandidates.backend``); ``describe()`` is the JSON-able statement of
    the model and settings, written into manifests.
    """

    name: str

    def chat(
        self,
        messages: Sequence[Message],
        *,
        n: int = 1,
        temperature: float = 0.7,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


def check_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Validate chat messages; a malformed one is the caller's bug, so say which and why."""
    if not messages:
        raise LLMError("chat needs at least one message")
    out: list[Message] = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise LLMError(f"message {i}: role {role!r} is not one of {sorted(ROLES)}")
        if not isinstance(content, str):
            raise LLMError(f"message {i}: content must be text, got {type(content).__name__}")
        out.append({"role": str(role), "content": content})
    return out


def check_sampling(n: int, temperature: float, max_tokens: int) -> None:
    if n < 1:
        raise LLMError(f"n must be >= 1, got {n}")
    if temperature < 0:
        raise LLMError(f"temperature must be >= 0, got {temperature}")
    if max_tokens < 1:
        raise LLMError(f"max_tokens must be >= 1, got {max_tokens}")


def request_key(model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> str:
    """sha256 of (model, messages, params) in canonical JSON: the response-cache key."""
    payload = {"model": model, "messages": [dict(m) for m in messages], "params": dict(params)}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def sample_seed(seed: int | None, i: int) -> int | None:
    """The seed of the ``i``-th of several single-sample calls: distinct, still reproducible."""
    return None if seed is None else seed + i


def chat_batch(
    backend: LLMBackend,
    requests: Sequence[Sequence[Message]],
    *,
    n: int = 1,
    temperature: float = 0.7,
    max_tokens: int = 256,
    seed: int | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[list[str]]:
    """Answer many requests: concurrently where the backend offers ``chat_many`` (the OpenAI-
    compatible client, bounded by its semaphore), else one after another (local models use every
    core for one request already). Results keep the order of ``requests``."""
    many = getattr(backend, "chat_many", None)
    if callable(many):
        result: list[list[str]] = many(
            requests, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed, on_done=on_done
        )
        return result
    out = []
    for messages in requests:
        out.append(backend.chat(messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed))
        if on_done is not None:
            on_done(1)
    return out
