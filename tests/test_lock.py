"""The dependency lock (constraints.txt) matches pyproject.toml, and the checker catches drift."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("lock_tool", ROOT / "tools" / "lock.py")
assert spec and spec.loader
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)


def test_the_committed_lock_matches_pyproject():
    assert lock.check() == []


def test_the_lock_pins_torch_and_llama_cpp_as_make_install_installs_them():
    pins = lock.read_pins()
    assert pins["torch"] == "2.13.0"
    assert pins["llama-cpp-python"] == "0.3.36"
    assert "shopsearch" not in pins  # the project itself is installed editable, not pinned


@pytest.fixture()
def copies(tmp_path: Path) -> tuple[Path, Path]:
    pyproject, constraints = tmp_path / "pyproject.toml", tmp_path / "constraints.txt"
    shutil.copy(lock.PYPROJECT, pyproject)
    shutil.copy(lock.LOCK, constraints)
    return pyproject, constraints


def test_a_changed_dependency_list_asks_for_make_lock(copies):
    pyproject, constraints = copies
    pyproject.write_text(pyproject.read_text().replace('"numpy>=1.26",', '"numpy>=1.26",\n    "orjson>=3",'))
    problems = lock.check(pyproject, constraints)
    assert any("dependencies changed" in p and "make lock" in p for p in problems)


def test_a_pin_outside_the_allowed_range_is_named(copies):
    pyproject, constraints = copies
    text = constraints.read_text()
    old = next(line for line in text.splitlines() if line.startswith("trl=="))
    constraints.write_text(text.replace(old, "trl==0.9.0"))
    assert lock.check(pyproject, constraints) == ["trl==0.9.0 in constraints.txt does not satisfy trl<2,>=1.16"]


def test_a_missing_pin_is_named(copies):
    pyproject, constraints = copies
    constraints.write_text("\n".join(ln for ln in constraints.read_text().splitlines() if not ln.startswith("faiss-cpu==")))
    assert any(p.startswith("faiss-cpu (faiss-cpu>=1.8) is not pinned") for p in lock.check(pyproject, constraints))
