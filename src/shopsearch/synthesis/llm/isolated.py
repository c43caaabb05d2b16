"""Any :class:`~shopsearch.synthesis.llm.base.LLMBackend` run in a child process.

A local backend runs native code (llama.cpp) that can kill its process with a signal. Behind
:class:`IsolatedBackend` that process is a child (:class:`shopsearch.isolation.IsolatedWorker`), so a
crash becomes an :class:`~shopsearch.synthesis.llm.base.LLMError` that names the backend, how its
process ended and what to do; the demo then reports its synthesis step as failed and goes on, and a
test runner survives. Used by :class:`~shopsearch.synthesis.llm.llama_cpp.LlamaCppBackend` by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shopsearch.isolation import IsolatedWorker, WorkerDied, WorkerTimeout
from shopsearch.synthesis.llm.base import LLMError, Message

NATIVE_CRASH_ADVICE = (
    "its native code crashed, typically because the build uses instructions this CPU or its hypervisor "
    "refuses (llama.cpp's AMX kernels in a VM, or a build made on another machine). `shopsearch doctor` "
    "shows the build's CPU features; `make llama-cpp` rebuilds it without AMX; or choose another backend "
    "(--backend openai with a server, or --backend transformers)"
)


class IsolatedBackend:
    """The backend ``factory(**options)`` built and answering in a child process.

    Args:
        factory: ``"module:callable"`` returning an ``LLMBackend`` (importable in the child).
        options: the factory's keyword options.
        backend: the backend's kind for messages (``llama_cpp``).
        advice: what to do when the child dies (appended to the error).
        sys_path: folders in front of the child's ``sys.path`` (a factory outside shopsearch).
        start_timeout: seconds to start the child and load the model.
        request_timeout: seconds per ``chat`` call (None: no limit).
    """

    def __init__(
        self,
        factory: str,
        options: Mapping[str, Any] | None = None,
        *,
        backend: str,
        advice: str = NATIVE_CRASH_ADVICE,
        sys_path: Sequence[str | Path] = (),
        start_timeout: float | None = 300.0,
        request_timeout: float | None = None,
    ) -> None:
        self.backend = backend
        self.advice = advice
        self.request_timeout = request_timeout
        try:
            self._worker = IsolatedWorker(factory, options, name=f"the {backend} LLM backend",
                                          sys_path=sys_path, start_timeout=start_timeout)
        except (WorkerDied, WorkerTimeout) as exc:
            raise self._error(exc, "while loading the model") from exc
        except LLMError:
            raise
        except Exception as exc:  # the factory's own failure, e.g. a missing shared library
            raise LLMError(f"the {backend} LLM backend could not start: {type(exc).__name__}: {exc}") from exc
        self._description: dict[str, Any] = self._worker.call("describe")
        self.name: str = str(self._description.get("name", backend))

    @property
    def pid(self) -> int:
        """The child process's id."""
        return self._worker.pid

    def describe(self) -> dict[str, Any]:
        return {**self._description, "process": "isolated child process"}

    def chat(
        self,
        messages: Sequence[Message],
        *,
        n: int = 1,
        temperature: float = 0.7,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> list[str]:
        try:
            answers: list[str] = self._worker.call(
                "chat", list(messages), n=n, temperature=temperature, max_tokens=max_tokens, seed=seed,
                timeout=self.request_timeout,
            )
        except (WorkerDied, WorkerTimeout) as exc:
            raise self._error(exc, "while answering a request") from exc
        return answers

    def close(self) -> None:
        self._worker.close()

    def _error(self, exc: WorkerDied | WorkerTimeout, when: str) -> LLMError:
        if isinstance(exc, WorkerTimeout):
            return LLMError(f"{exc} ({when})")
        message = f"the {self.backend} LLM backend failed {when}: {exc}"
        if exc.signal_name is not None:
            message += f"\n{self.advice}"
        return LLMError(message)
