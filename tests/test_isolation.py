"""IsolatedWorker: an object in a child process whose crash, by a real signal, is an error here, not a death."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from shopsearch.isolation import (
    IsolatedWorker,
    WorkerDied,
    WorkerError,
    WorkerTimeout,
    describe_exit,
    run_isolated,
    signal_name,
)

FRAGILE = textwrap.dedent('''
    import os, signal, threading, time

    class Unpicklable(Exception):
        def __init__(self, a, b):
            super().__init__(a)
            self.lock = threading.Lock()

    class Fragile:
        def __init__(self, greeting="hello", die_on_start=None):
            if die_on_start:
                os.kill(os.getpid(), getattr(signal, die_on_start))
            self.greeting = greeting

        def greet(self, name, *, punctuation="!"):
            return f"{self.greeting} {name}{punctuation}", os.getpid()

        def fail(self):
            raise ValueError("a plain Python error")

        def fail_oddly(self):
            raise Unpicklable("cannot travel", 2)

        def die(self, name):
            print("about to die", flush=True)
            os.kill(os.getpid(), getattr(signal, name))

        def sleep(self, seconds):
            time.sleep(seconds)

    def add(a, b):
        return a + b
''')


@pytest.fixture()
def fragile(tmp_path: Path) -> list[str]:
    (tmp_path / "fragile_mod.py").write_text(FRAGILE)
    return [str(tmp_path)]


def test_calls_run_in_the_child_and_return_here(fragile):
    with IsolatedWorker("fragile_mod:Fragile", {"greeting": "hi"}, name="the fragile object", sys_path=fragile) as w:
        text, pid = w.call("greet", "shop", punctuation="?")
        assert text == "hi shop?"
        assert pid == w.pid != os.getpid()
        assert w.run("fragile_mod:add", 2, 3) == 5
    assert not w.alive


def test_python_errors_come_back_as_themselves_or_with_their_traceback(fragile):
    with IsolatedWorker("fragile_mod:Fragile", sys_path=fragile) as w:
        with pytest.raises(ValueError, match="a plain Python error"):
            w.call("fail")
        with pytest.raises(WorkerError, match="Unpicklable in the child process: cannot travel"):
            w.call("fail_oddly")
        assert w.call("greet", "again")[0] == "hello again!"  # still serving after both


@pytest.mark.parametrize("name", ["SIGILL", "SIGSEGV", "SIGABRT"])
def test_a_child_killed_by_a_signal_is_an_error_naming_the_signal(fragile, name):
    w = IsolatedWorker("fragile_mod:Fragile", name="the fragile object", sys_path=fragile)
    with pytest.raises(WorkerDied) as caught:
        w.call("die", name)
    died = caught.value
    assert died.signal_name == name and died.returncode == -getattr(signal, name)
    assert f"the fragile object (process {w.pid}) was killed by {name}" in str(died)
    # faulthandler's report of the native fault, from the child's stderr
    assert "Fatal Python error" in died.stderr_tail and "Fatal Python error" in str(died)
    with pytest.raises(WorkerDied, match="before the request"):
        w.call("greet", "anyone")


def test_a_child_that_dies_while_starting_is_reported(fragile):
    with pytest.raises(WorkerDied, match="was killed by SIGILL"):
        IsolatedWorker("fragile_mod:Fragile", {"die_on_start": "SIGILL"}, sys_path=fragile)


def test_a_child_that_does_not_answer_in_time_is_stopped(fragile):
    w = IsolatedWorker("fragile_mod:Fragile", sys_path=fragile)
    start = time.monotonic()
    with pytest.raises(WorkerTimeout, match=r"did not answer within 0\.5 s"):
        w.call("sleep", 30, timeout=0.5)
    assert time.monotonic() - start < 10 and not w.alive


def test_a_missing_factory_is_an_import_error_from_the_child():
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        IsolatedWorker("no_such_module:Thing")


def test_run_isolated_runs_one_function_in_a_fresh_process():
    pid = run_isolated("os:getpid", name="a pid check", timeout=60)
    assert isinstance(pid, int) and pid != os.getpid()


def test_exit_descriptions():
    assert describe_exit(-signal.SIGILL).startswith("was killed by SIGILL (illegal instruction")
    assert describe_exit(3) == "exited with status 3"
    assert signal_name(0) is None and signal_name(-signal.SIGSEGV) == "SIGSEGV"
