"""A scripted fake LLM backend for the synthesis tests (implements the LLMBackend protocol)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


class FakeBackend:
    """Implements the LLMBackend protocol; answers come from ``reply(messages, i)`` (i-th sample)."""

    def __init__(self, reply: Callable[[Sequence[dict[str, str]], int], str] | None = None, name: str = "fake") -> None:
        self.reply = reply or (lambda messages, i: "1. alpha one\n2. beta two\n3. gamma three")
        self.name = name
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"backend": "fake", "name": self.name}

    def chat(self, messages, *, n=1, temperature=0.7, max_tokens=256, seed=None) -> list[str]:
        with self._lock:
            self.calls.append({"messages": list(messages), "n": n, "temperature": temperature,
                               "max_tokens": max_tokens, "seed": seed})
        return [self.reply(messages, i) for i in range(n)]


def last_user(messages: Sequence[dict[str, str]]) -> str:
    return messages[-1]["content"]


