"""The OpenAI-compatible client against a local fake server: retries, backoff, timeouts, n, cache, concurrency."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shopsearch.synthesis.llm import build_backend
from shopsearch.synthesis.llm.base import LLMError, request_key
from shopsearch.synthesis.llm.openai_compat import OpenAICompatBackend, RetryPolicy

MESSAGES = [{"role": "user", "content": "Query: rug not wool\nWrite 2 rewrites."}]


class FakeServer:
    """A chat-completions endpoint on loopback whose answers follow a script of actions."""

    def __init__(self) -> None:
        self.script: list[dict[str, Any]] = []  # consumed in order; then "ok"
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.honour_n = True
        self.delay = 0.0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    action = server.script.pop(0) if server.script else {"kind": "ok"}
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(action.get("sleep", server.delay))
                    if action["kind"] == "drop":
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if action["kind"] == "raw":
                        payload = action["body"].encode()
                        self.send_response(200)
                    elif action["kind"] == "status":
                        payload = json.dumps({"error": {"message": action.get("message", "busy")}}).encode()
                        self.send_response(action["code"])
                        for k, v in action.get("headers", {}).items():
                            self.send_header(k, v)
                    else:
                        n = body.get("n", 1) if server.honour_n else 1
                        text = body["messages"][-1]["content"]
                        choices = [{"index": i, "message": {"role": "assistant",
                                                            "content": f"answer {i} seed={body.get('seed')} to {text}"},
                                    "finish_reason": "stop"} for i in range(n)]
                        payload = json.dumps({"id": "x", "object": "chat.completion", "choices": choices}).encode()
                        self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left: that is the point of the timeout test
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    yield s
    s.close()


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client(server: FakeServer, **kw: Any) -> tuple[OpenAICompatBackend, Sleeps]:
    sleeps = Sleeps()
    options: dict[str, Any] = {"retry": RetryPolicy(max_retries=3, base_delay=0.5, max_delay=4.0, jitter=0.5),
                               "sleep": sleeps, "rng": random.Random(0), "timeout": 5.0}
    options.update(kw)
    return OpenAICompatBackend(server.url, "test-model", **options), sleeps


def test_plain_request_and_payload(server: FakeServer) -> None:
    backend, sleeps = client(server, api_key="k-123", extra_body={"top_p": 0.9})
    out = backend.chat(MESSAGES, n=2, temperature=0.3, max_tokens=20, seed=5)
    assert out == [f"answer {i} seed=5 to {MESSAGES[0]['content']}" for i in range(2)]
    body = server.requests[0]
    assert body == {"model": "test-model", "messages": MESSAGES, "n": 2, "temperature": 0.3, "max_tokens": 20,
                    "top_p": 0.9, "seed": 5}
    assert server.headers[0]["Authorization"] == "Bearer k-123"
    assert sleeps.delays == [] and backend.describe()["url"] == server.url + "/chat/completions"
    assert "k-123" not in json.dumps(backend.describe())


def test_retries_429_and_5xx_with_exponential_backoff(server: FakeServer) -> None:
    server.script = [{"kind": "status", "code": 429}, {"kind": "status", "code": 503}, {"kind": "status", "code": 500}]
    backend, sleeps = client(server)
    assert backend.chat(MESSAGES)[0].startswith("answer 0")
    assert len(server.requests) == 4 and backend.stats["retries"] == 3
    # attempt k waits base * 2**k, jittered down by at most half
    for k, delay in enumerate(sleeps.delays):
        assert 0.5 * 2**k * 0.5 <= delay <= 0.5 * 2**k


def test_retry_after_is_a_floor_and_delays_are_capped(server: FakeServer) -> None:
    server.script = [{"kind": "status", "code": 429, "headers": {"Retry-After": "3"}},
                     {"kind": "status", "code": 429, "headers": {"Retry-After": "60"}}]
    backend, sleeps = client(server)
    backend.chat(MESSAGES)
    assert sleeps.delays[0] >= 3.0 and sleeps.delays[1] == 4.0  # max_delay caps a long Retry-After


def test_gives_up_after_max_retries_with_a_clear_message(server: FakeServer) -> None:
    server.script = [{"kind": "status", "code": 502}] * 10
    backend, sleeps = client(server)
    with pytest.raises(LLMError, match=r"no answer after 4 attempt\(s\).*HTTP 502"):
        backend.chat(MESSAGES)
    assert len(server.requests) == 4 and len(sleeps.delays) == 3


@pytest.mark.parametrize(("code", "hint"), [(401, "API key"), (404, "/v1"), (400, "rejected")])
def test_client_errors_are_not_retried(server: FakeServer, code: int, hint: str) -> None:
    server.script = [{"kind": "status", "code": code, "message": "nope"}]
    backend, sleeps = client(server)
    with pytest.raises(LLMError, match=hint):
        backend.chat(MESSAGES)
    assert len(server.requests) == 1 and sleeps.delays == []


def test_timeouts_and_dropped_connections_are_retried(server: FakeServer) -> None:
    server.script = [{"kind": "ok", "sleep": 1.0}, {"kind": "drop"}]
    backend, sleeps = client(server, timeout=0.2)
    start = time.monotonic()
    assert backend.chat(MESSAGES)[0].startswith("answer 0")
    assert time.monotonic() - start < 1.0  # the slow answer was not waited for
    assert len(sleeps.delays) == 2


def test_connection_refused_gives_up_with_a_hint() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    backend = OpenAICompatBackend(f"http://127.0.0.1:{port}/v1", "m", retry=RetryPolicy(max_retries=2), sleep=sleeps)
    with pytest.raises(LLMError, match="check that the server is running"):
        backend.chat(MESSAGES)
    assert len(sleeps.delays) == 2


def test_servers_ignoring_n_are_asked_again(server: FakeServer) -> None:
    server.honour_n = False
    backend, _ = client(server)
    out = backend.chat(MESSAGES, n=3, seed=10)
    assert len(out) == 3 and len(server.requests) == 3
    assert [r["seed"] for r in server.requests] == [10, 11, 12]  # distinct, reproducible samples
    assert backend.stats["extra_calls_for_n"] == 2


def test_cache_hit_skips_the_server(server: FakeServer, tmp_path) -> None:
    backend, _ = client(server, cache_dir=tmp_path / "cache")
    first = backend.chat(MESSAGES, n=2, seed=1)
    again = OpenAICompatBackend(server.url, "test-model", cache_dir=tmp_path / "cache")  # a new process, same dir
    assert again.chat(MESSAGES, n=2, seed=1) == first
    assert len(server.requests) == 1 and again.stats["cache_hits"] == 1
    backend.chat(MESSAGES, n=2, seed=2)  # other params, other key
    assert len(server.requests) == 2
    key = request_key("test-model", MESSAGES, {"n": 2, "temperature": 0.7, "max_tokens": 256, "seed": 1})
    assert (tmp_path / "cache" / key[:2] / f"{key}.json").is_file()
    (tmp_path / "cache" / key[:2] / f"{key}.json").write_text("{not json")  # a damaged entry is a miss
    assert backend.chat(MESSAGES, n=2, seed=1) == first and len(server.requests) == 3


def test_chat_many_bounds_concurrency_and_keeps_order(server: FakeServer) -> None:
    server.delay = 0.15  # long enough for requests to overlap even on a busy machine
    backend, _ = client(server, max_concurrency=3)
    requests = [[{"role": "user", "content": f"q{i}"}] for i in range(9)]
    done: list[int] = []
    out = backend.chat_many(requests, n=1, on_done=done.append)
    assert [o[0].endswith(f"q{i}") for i, o in enumerate(out)] == [True] * 9, out
    assert server.max_in_flight <= 3 and sum(done) == 9
    assert server.max_in_flight >= 2, "requests were not sent concurrently"


def test_malformed_bodies_and_bad_input(server: FakeServer) -> None:
    server.script = [{"kind": "raw", "body": "<html>proxy error</html>"}, {"kind": "raw", "body": '{"choices": []}'},
                     {"kind": "raw", "body": '{"choices": [{"index": 0, "message": {"content": null}}]}'}]
    backend, _ = client(server)
    with pytest.raises(LLMError, match="non-JSON"):
        backend.chat(MESSAGES)
    with pytest.raises(LLMError, match="without choices"):
        backend.chat(MESSAGES)
    assert backend.chat(MESSAGES) == [""]  # no content (a refusal, a tool call) is an empty answer
    with pytest.raises(LLMError, match="role"):
        backend.chat([{"role": "robot", "content": "x"}])
    with pytest.raises(LLMError, match="n must be"):
        backend.chat(MESSAGES, n=0)
    with pytest.raises(LLMError, match="needs base_url"):
        build_backend("openai", model="m")
    with pytest.raises(LLMError, match="unknown LLM backend"):
        build_backend("ollama")
