"""`shopsearch doctor` on this machine (every part checked for real), and a part that crashes."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopsearch.cli.main import cli
from shopsearch.diagnostics import doctor

runner = CliRunner()
CRASHY = textwrap.dedent('''
    import os, signal

    def facts():
        return {"build": "one for another CPU"}

    def die():
        os.kill(os.getpid(), signal.SIGILL)

    def fine():
        return {"facts": {"answer": 42}, "uses": "it", "verified": "it works", "seconds": 0.0}
''')


@pytest.fixture()
def crashy(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "crashy_checks.py").write_text(CRASHY)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the checks' child processes import it from there


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs llama-cpp-python (make install)")
def test_doctor_checks_every_part_of_this_machine(tmp_path):
    out = tmp_path / "doctor.json"
    result = runner.invoke(cli, ["doctor", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "every part works" in result.output
    report = json.loads(out.read_text())
    parts = {p["part"]: p for p in report["parts"]}
    assert list(parts) == ["machine", "bundled models", "torch + encoder", "faiss", "onnxruntime", "llama.cpp"]
    assert report["ok"] and all(p["ok"] for p in parts.values())
    assert parts["machine"]["facts"]["cpu"] and parts["machine"]["facts"]["cores"] >= 1
    assert "training autocast:" in parts["torch + encoder"]["uses"]
    assert "CPUExecutionProvider" in parts["onnxruntime"]["facts"]["providers"]
    llama = parts["llama.cpp"]["facts"]
    assert "AMX_INT8" not in llama["build_features"] and llama["build_warnings"] == []
    assert parts["llama.cpp"]["verified"].startswith("answered a prompt of over")


def test_a_check_that_crashes_is_a_failed_part_with_its_signal_facts_and_remedy(crashy):
    part = doctor.run_check("crashy", "crashy_checks:die", 60, facts="crashy_checks:facts", remedy="rebuild it")
    assert not part.ok and "was killed by SIGILL" in part.error and part.remedy == "rebuild it"
    assert part.facts == {"build": "one for another CPU"}
    assert doctor.run_check("fine", "crashy_checks:fine", 60).verified == "it works"


def test_doctor_exits_1_naming_the_part_that_failed(crashy, monkeypatch):
    monkeypatch.setattr(doctor, "CHECKS", (
        ("steady", "crashy_checks:fine", None, ""),
        ("crashy", "crashy_checks:die", "crashy_checks:facts", "rebuild it"),
    ))
    result = runner.invoke(cli, ["doctor"])
    assert result.exit_code == 1
    assert "doctor: failed: crashy" in result.output and "crashy: rebuild it" in result.output
    assert "SIGILL" in result.output


def test_an_unknown_skip_is_refused():
    result = runner.invoke(cli, ["doctor", "--skip", "gpu"])
    assert result.exit_code == 2 and "unknown check" in result.output
