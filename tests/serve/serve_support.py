"""Plain helpers of the serve tests (not fixtures): settings, a live uvicorn server, experiment files.

They live in a module with its own name because ``from conftest import ...`` resolves to whichever
test folder's conftest was imported last, which depends on collection order."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
import yaml

from shopsearch.serve.settings import ServeSettings

ADMIN_KEY = "test-admin-key-0123456789abcdef"


def make_settings(index: Path, **overrides) -> ServeSettings:
    return ServeSettings(index=index, encoder="torch", encoder_threads=1, **overrides)


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """The app under a real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def write_experiment(path: Path, **ab) -> Path:
    """A config file whose ``ab`` section is the experiment ``ab`` (paths written as text)."""
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    path.write_text(yaml.safe_dump({"ab": plain(ab)}))
    return path
