"""An LLM backend whose process dies by a signal: a clear LLMError, and a demo that completes without it.

The dying backend is a real child process that kills itself with SIGILL when asked for a completion,
as llama.cpp's AMX kernels did on an Intel Xeon VM (issue 23)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopsearch.cli.main import cli
from shopsearch.synthesis import demo
from shopsearch.synthesis.llm.base import LLMError
from shopsearch.synthesis.llm.isolated import IsolatedBackend

DYING = textwrap.dedent('''
    import os, signal

    class DyingBackend:
        """Answers like an LLM until asked for a completion, then dies as a native crash would."""
        name = "dying:sigill"

        def __init__(self, die_on_load=False):
            if die_on_load:
                os.kill(os.getpid(), signal.SIGILL)

        def describe(self):
            return {"backend": "dying", "name": self.name}

        def chat(self, messages, *, n=1, temperature=0.7, max_tokens=256, seed=None):
            if messages[0]["content"] == "echo":
                return [messages[-1]["content"]] * n
            os.kill(os.getpid(), signal.SIGILL)
''')


@pytest.fixture()
def dying_module(tmp_path: Path) -> list[str]:
    (tmp_path / "dying_backend.py").write_text(DYING)
    return [str(tmp_path)]


def dying_backend(sys_path: list[str], **options: object) -> IsolatedBackend:
    return IsolatedBackend("dying_backend:DyingBackend", options, backend="llama_cpp", sys_path=sys_path)


def test_the_isolated_backend_answers_from_its_child(dying_module):
    backend = dying_backend(dying_module)
    try:
        assert backend.name == "dying:sigill"
        assert backend.describe()["process"] == "isolated child process"
        echo = [{"role": "system", "content": "echo"}, {"role": "user", "content": "drill"}]
        assert backend.chat(echo, n=2) == ["drill", "drill"]
    finally:
        backend.close()


def test_a_backend_killed_by_a_signal_is_an_llm_error_naming_the_backend_and_what_to_do(dying_module):
    backend = dying_backend(dying_module)
    with pytest.raises(LLMError) as caught:
        backend.chat([{"role": "user", "content": "rewrite: rug not wool"}])
    message = str(caught.value)
    assert "the llama_cpp LLM backend failed while answering a request" in message
    assert "was killed by SIGILL" in message
    assert "make llama-cpp" in message and "--backend openai" in message and "shopsearch doctor" in message
    with pytest.raises(LLMError, match="before the request"):  # dead for good, and says so
        backend.chat([{"role": "user", "content": "again"}])


def test_a_backend_that_dies_while_loading_is_an_llm_error(dying_module):
    with pytest.raises(LLMError, match=r"failed while loading the model.*SIGILL"):
        dying_backend(dying_module, die_on_load=True)


def test_the_demo_reports_the_synthesis_step_failed_and_completes_the_others(dying_module, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "default_backend", lambda threads=None: (dying_backend(dying_module), {"kind": "test"}))
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        cli, ["demo", "--output", str(out), "--products", "300", "--queries", "60", "--n-resamples", "200"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "synthesis step failed" in result.output and "SIGILL" in result.output
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert steps["synthesis"]["status"] == "failed" and "SIGILL" in steps["synthesis"]["reason"]
    assert steps["train"]["status"] == "ok" and steps["evaluate"]["status"] == "ok"
    report = json.loads((out / "report.json").read_text())
    assert any(name.startswith("dense:") for name in report["systems"])  # the trained encoder was evaluated
