"""Native code in a child process, so that its crash cannot take the caller down.

llama.cpp, FAISS, ONNX Runtime and torch run compiled code. When that code faults (an instruction the
CPU or the hypervisor refuses, such as llama.cpp's AMX kernels in some VMs; a segmentation fault), the
kernel kills the whole process with a signal: no Python ``except`` sees it, and a demo, a server or a
test runner dies with it. :class:`IsolatedWorker` builds an object in a child Python process and calls
its methods over a pipe; when the child dies, the caller gets :class:`WorkerDied`, naming the signal
and the child's last lines of output, and carries on.

The child is a plain ``python -m shopsearch.isolation FD`` (not ``multiprocessing``, whose ``spawn``
re-imports the caller's ``__main__``): it talks pickles over an inherited socket (a
:class:`multiprocessing.connection.Connection`), so the protocol is Python's own, not a home-made one.
"""

from __future__ import annotations

import collections
import importlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from shopsearch.data.errors import ShopsearchError

_STDERR_LINES = 20
_POLL_S = 0.2


class WorkerDied(ShopsearchError):
    """The child process ended while it owed an answer: killed by a signal or exited."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail

    @property
    def signal_name(self) -> str | None:
        """``SIGILL``, ``SIGSEGV``, ... when a signal killed the child, else None."""
        return signal_name(self.returncode)


class WorkerTimeout(ShopsearchError):
    """The child did not answer in time; it was killed."""


class WorkerError(ShopsearchError):
    """An exception raised in the child that could not be sent back as itself (not picklable)."""


def signal_name(returncode: int | None) -> str | None:
    """The name of the signal behind a negative ``returncode`` (``subprocess`` convention)."""
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_exit(returncode: int | None) -> str:
    """``killed by SIGILL (illegal instruction)``, ``exited with status 3``, ... for messages."""
    if returncode is None:
        return "is still running"
    name = signal_name(returncode)
    if name is None:
        return f"exited with status {returncode}"
    try:
        meaning = signal.strsignal(-returncode)
    except ValueError:
        meaning = None
    return f"was killed by {name}" + (f" ({meaning.lower()})" if meaning else "")


def resolve(spec: str) -> Callable[..., Any]:
    """``"package.module:attribute"`` to the object it names."""
    module, sep, attribute = spec.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"{spec!r} is not 'module:attribute'")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


class IsolatedWorker:
    """An object built by ``factory(**kwargs)`` in a child process; :meth:`call` runs its methods there.

    Args:
        factory: ``"module:callable"`` importable in the child; None starts an empty worker for
            :meth:`run` only.
        kwargs: keyword arguments of the factory (picklable).
        name: what the worker is, for messages ("the llama_cpp backend").
        sys_path: folders put in front of the child's ``sys.path`` before the factory is imported.
        start_timeout: seconds for the child to start and build the object (None: no limit).

    Exceptions raised in the child come back as themselves when they pickle, else as
    :class:`WorkerError` with the child's traceback. Calls are serialised by a lock. The child is killed
    on :meth:`close`, when the worker is garbage-collected, and at interpreter exit.
    """

    def __init__(
        self,
        factory: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        name: str = "the worker",
        sys_path: Sequence[str | Path] = (),
        start_timeout: float | None = 300.0,
    ) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        # the child imports this very copy of shopsearch, installed or not
        package_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "shopsearch.isolation", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
            )
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._reader = threading.Thread(target=self._read_stderr, name=f"{name} stderr", daemon=True)
        self._reader.start()
        self._finalizer = weakref.finalize(self, _kill, self._proc, self._conn)
        self.pid = self._proc.pid
        try:
            self._request(("init", factory, dict(kwargs or {}), [str(p) for p in sys_path]), start_timeout)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``obj.method(*args, **kwargs)`` in the child; :class:`WorkerDied` if the child dies meanwhile."""
        return self._request(("call", method, args, kwargs), timeout)

    def run(self, function: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)`` in the child, ``function`` given as ``"module:callable"``."""
        return self._request(("run", function, args, kwargs), timeout)

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self, timeout: float = 5.0) -> None:
        """Ask the child to exit; kill it if it does not within ``timeout`` seconds."""
        if self.alive:
            try:
                with self._lock:
                    self._conn.send(("close",))
                self._proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._finalizer()

    def __enter__(self) -> IsolatedWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, message: tuple[Any, ...], timeout: float | None) -> Any:
        with self._lock:
            if not self.alive:
                raise self._died("before the request")
            try:
                self._conn.send(message)
            except OSError:
                raise self._died("while receiving a request") from None
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    if self._conn.poll(_POLL_S):
                        status, value = self._conn.recv()
                        break
                except (EOFError, OSError):
                    raise self._died("while answering") from None
                if not self.alive and not self._conn.poll(0):
                    raise self._died("while answering")
                if deadline is not None and time.monotonic() > deadline:
                    self._finalizer()
                    raise WorkerTimeout(f"{self.name} did not answer within {timeout:g} s and was stopped")
        if status == "error":
            raise value
        return value

    def _died(self, when: str) -> WorkerDied:
        try:
            returncode = self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._finalizer()
            returncode = self._proc.wait()
        self._reader.join(2)
        tail = "\n".join(self._stderr)
        message = f"{self.name} (process {self.pid}) {describe_exit(returncode)} {when}"
        if tail:
            message += "; its last output:\n" + tail
        return WorkerDied(message, returncode=returncode, stderr_tail=tail)

    def _read_stderr(self) -> None:
        # Kept for the message when the child dies; echoed with SHOPSEARCH_DEBUG for debugging.
        assert self._proc.stderr is not None
        echo = bool(os.environ.get("SHOPSEARCH_DEBUG"))
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._stderr.append(line)
            if echo:
                print(line, file=sys.stderr)


def run_isolated(
    function: str, *args: Any, name: str = "the check", timeout: float | None = 120.0, **kwargs: Any
) -> Any:
    """``function(*args, **kwargs)`` once in a fresh child process (``"module:callable"``)."""
    with IsolatedWorker(name=name, start_timeout=timeout) as worker:
        return worker.run(function, *args, timeout=timeout, **kwargs)


def _kill(proc: subprocess.Popen[bytes], conn: Connection) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    conn.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` itself when it survives pickling, else a :class:`WorkerError` holding its traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = "".join(traceback.format_exception(exc)).rstrip()
        return WorkerError(f"{type(exc).__name__} in the child process: {exc}\n{text}")


def _serve(conn: Connection) -> None:
    """The child's loop: build the object, then answer requests until told to close or orphaned."""
    obj: Any = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        kind = message[0]
        if kind == "close":
            return
        try:
            if kind == "init":
                _, factory, kwargs, extra_path = message
                sys.path[:0] = [p for p in extra_path if p not in sys.path]
                obj = resolve(factory)(**kwargs) if factory else None
                result = None
            elif kind == "call":
                _, method, args, kwargs = message
                result = getattr(obj, method)(*args, **kwargs)
            elif kind == "run":
                _, function, args, kwargs = message
                result = resolve(function)(*args, **kwargs)
            else:
                raise ValueError(f"unknown request {kind!r}")
            data = pickle.dumps(("ok", result))
        except BaseException as exc:
            data = pickle.dumps(("error", _portable(exc)))
        conn.send_bytes(data)


if __name__ == "__main__":
    import faulthandler

    from shopsearch import isolation  # the module by its name, so that its errors unpickle in the parent

    faulthandler.enable()  # a native crash prints the Python stack to stderr, which the parent keeps
    isolation._serve(Connection(int(sys.argv[1])))
