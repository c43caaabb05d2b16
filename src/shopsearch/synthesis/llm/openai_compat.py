"""Any OpenAI-compatible chat-completions server (vLLM, llama.cpp's server, TGI, a hosted API) by URL.

Robust by default, because a synthesis run sends thousands of requests: timeouts on every call;
retries with exponential backoff and jitter on 429, 5xx, timeouts and connection errors (honouring
``Retry-After``); a semaphore bounding requests in flight across threads; and an on-disk response
cache keyed by sha256 of (model, messages, params), so a killed run resumes without paying twice.
Servers that ignore ``n`` (several do) are asked again until ``n`` completions are in hand.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from shopsearch.synthesis.llm.base import (
    LLMError,
    Message,
    check_messages,
    check_sampling,
    request_key,
    sample_seed,
)
from shopsearch.synthesis.llm.cache import ResponseCache

API_KEY_ENV = "SHOPSEARCH_LLM_API_KEY"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: attempt ``k`` (0-based) waits ``min(max_delay, base_delay * 2**k)``,
    scaled down by up to ``jitter`` (a fraction) at random so that many clients do not retry in
    lockstep; a server's ``Retry-After`` (capped at ``max_delay``) is a floor."""

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid retry policy {self}")

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        wait = min(self.max_delay, self.base_delay * (2.0**attempt))
        wait *= 1.0 - self.jitter * rng.random()
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


class OpenAICompatBackend:
    """Chat completions from ``{base_url}/chat/completions``.

    Args:
        base_url: the API root including its version, e.g. ``http://127.0.0.1:8080/v1`` (a URL that
            already ends in ``/chat/completions`` is used as is).
        model: the model name the server expects (llama.cpp's server accepts any).
        api_key: sent as a bearer token; default: the ``SHOPSEARCH_LLM_API_KEY`` environment variable.
        timeout / connect_timeout: seconds per request (read) and to connect.
        retry: the backoff policy; ``max_concurrency``: requests in flight at once (``chat_many``).
        cache_dir: response cache directory (None: no cache). A cached request returns the stored
            completions even when sampling, which is what resuming needs; give another ``seed``
            (or no cache) for fresh samples.
        extra_body: more JSON fields for every request (``top_p``, ``stop``, ...).
        client / sleep / rng: injection points for tests (an ``httpx.Client``, a sleep function, a
            ``random.Random`` for the jitter).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 4,
        cache_dir: str | Path | None = None,
        extra_body: Mapping[str, Any] | None = None,
        name: str | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise LLMError(f"max_concurrency must be >= 1, got {max_concurrency}")
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else f"{base}/chat/completions"
        self.model = model
        self.name = name or f"openai:{model}"
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max_concurrency
        self.extra_body = dict(extra_body or {})
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._client = client or httpx.Client(timeout=self._timeout)
        self._owns_client = client is None
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0, "extra_calls_for_n": 0}

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "openai_compat",
            "name": self.name,
            "url": self.url,
            "model": self.model,
            "retry": asdict(self.retry),
            "max_concurrency": self.max_concurrency,
            "timeout_s": self._timeout.read,
            "extra_body": self.extra_body,
            "cache": str(self.cache.directory) if self.cache else None,
        }

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> OpenAICompatBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chat(
        self,
        messages: Sequence[Message],
        *,
        n: int = 1,
        temperature: float = 0.7,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> list[str]:
        msgs = check_messages(messages)
        check_sampling(n, temperature, max_tokens)
        params = {"n": n, "temperature": temperature, "max_tokens": max_tokens, "seed": seed, **self.extra_body}
        key = request_key(self.model, msgs, params)
        if self.cache is not None and (hit := self.cache.get(key)) is not None and len(hit) == n:
            self._count("cache_hits")
            return hit
        out: list[str] = []
        while len(out) < n:
            if out:
                self._count("extra_calls_for_n")
            got = self._complete(msgs, n - len(out), temperature, max_tokens, sample_seed(seed, len(out)))
            out.extend(got[: n - len(out)])
        if self.cache is not None:
            self.cache.put(key, out, {"model": self.model, "url": self.url, "params": params})
        return out

    def chat_many(
        self,
        requests: Sequence[Sequence[Message]],
        *,
        n: int = 1,
        temperature: float = 0.7,
        max_tokens: int = 256,
        seed: int | None = None,
        on_done: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """``chat`` for each request, ``max_concurrency`` at a time; results in request order."""

        def one(messages: Sequence[Message]) -> list[str]:
            result = self.chat(messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)
            if on_done is not None:
                on_done(1)
            return result

        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="llm") as pool:
            return list(pool.map(one, requests))

    def _count(self, what: str, k: int = 1) -> None:
        with self._lock:
            self.stats[what] += k

    def _complete(self, msgs: list[Message], n: int, temperature: float, max_tokens: int,
                  seed: int | None) -> list[str]:
        payload: dict[str, Any] = {
            "model": self.model, "messages": msgs, "n": n, "temperature": temperature,
            "max_tokens": max_tokens, **self.extra_body,
        }
        if seed is not None:
            payload["seed"] = seed
        body = self._post(payload)
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise LLMError(f"{self.url} answered without choices: {str(body)[:300]}")
        texts = []
        for choice in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
            message = choice.get("message") if isinstance(choice, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            texts.append(content if isinstance(content, str) else "")  # a refusal / tool call is an empty answer
        return texts

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        last = ""
        attempts = self.retry.max_retries + 1
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                with self._slots:
                    self._count("requests")
                    response = self._client.post(self.url, json=payload, headers=self._headers, timeout=self._timeout)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    try:
                        body = response.json()
                    except ValueError:
                        raise LLMError(f"{self.url} answered {response.status_code} with non-JSON: "
                                       f"{response.text[:300]!r}") from None
                    if not isinstance(body, dict):
                        raise LLMError(f"{self.url} answered JSON that is not an object: {str(body)[:300]}")
                    return body
                if response.status_code not in RETRY_STATUS:
                    raise LLMError(_refusal_message(self.url, self.model, response))
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                retry_after = _retry_after(response)
            if attempt + 1 < attempts:
                self._count("retries")
                self._sleep(self.retry.delay(attempt, self._rng, retry_after))
        raise LLMError(
            f"{self.url}: no answer after {attempts} attempt(s) (last error: {last}); check that the server "
            "is running and reachable, or raise the timeout / retries"
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _refusal_message(url: str, model: str, response: httpx.Response) -> str:
    status = response.status_code
    hint = {
        401: "the server wants an API key: pass api_key or set " + API_KEY_ENV,
        403: "the API key is not allowed to use this model",
        404: "wrong URL or model name: the base URL usually ends in /v1",
        400: "the server rejected the request (model name, context length, or a parameter it does not support)",
        422: "the server rejected the request (model name, context length, or a parameter it does not support)",
    }.get(status, "the server refused the request")
    return f"{url} (model {model!r}) answered HTTP {status}: {response.text[:300]!r}; {hint}"
