"""What this machine's CPU offers, and what a llama.cpp build was compiled to use.

Read from ``/proc/cpuinfo`` (Linux), which names the instruction-set extensions the kernel lets
processes use; elsewhere only the model name that :mod:`platform` gives is known. Nothing here runs
native code, so it is safe to call in the process that must survive a crash.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

# The extensions the numeric libraries choose kernels by, in the order of their appearance.
X86_EXTENSIONS = (
    "sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx_vnni", "avx512f", "avx512vbmi", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
)
ARM_EXTENSIONS = ("asimd", "asimddp", "fphp", "i8mm", "bf16", "sve", "sve2", "sme")

# llama.cpp's system-info feature names -> the /proc/cpuinfo flag each needs.
LLAMA_FEATURE_FLAGS = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX_VNNI": "avx_vnni", "AVX2": "avx2", "F16C": "f16c",
    "FMA": "fma", "BMI2": "bmi2", "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8",
    "NEON": "asimd", "ARM_FMA": "asimd", "DOTPROD": "asimddp", "SVE": "sve", "MATMUL_INT8": "i8mm",
}
# llama.cpp features that are code paths, not instruction sets: nothing to check against the CPU.
LLAMA_NON_ISA = frozenset({"LLAMAFILE", "OPENMP", "REPACK", "ACCELERATE", "KLEIDIAI"})


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as the operating system reports it."""

    model: str
    arch: str
    cores: int
    flags: frozenset[str] = field(default_factory=frozenset)

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def extensions(self) -> list[str]:
        """The extensions of :data:`X86_EXTENSIONS` / :data:`ARM_EXTENSIONS` this CPU has, in order."""
        known = X86_EXTENSIONS if self.arch in ("x86_64", "AMD64", "i686") else ARM_EXTENSIONS
        return [f for f in known if f in self.flags]

    def to_dict(self) -> dict[str, object]:
        return {"model": self.model, "arch": self.arch, "cores": self.cores, "extensions": self.extensions}


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """This machine's CPU: model name, architecture, usable cores and extension flags."""
    model, flags = "", frozenset[str]()
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "processor name", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    if not model:
        model = platform.processor() or platform.machine() or "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return CpuInfo(model=model, arch=platform.machine(), cores=cores, flags=flags)


def llama_features(system_info: str) -> dict[str, bool]:
    """``llama_print_system_info()``'s ``CPU : AVX = 1 | AVX2 = 1 | ...`` as ``{"AVX": True, ...}``."""
    return {name: value == "1" for name, value in re.findall(r"([A-Z0-9_]+) = (\d+)", system_info)}


def llama_isa_problems(features: dict[str, bool], cpu: CpuInfo) -> list[str]:
    """Why a llama.cpp build with ``features`` may crash on ``cpu``: instructions the CPU lacks, or the
    AMX kernels, which fault in VMs that advertise AMX (issue 23: SIGILL or SIGSEGV at ``ldtilecfg``)."""
    problems: list[str] = []
    if not cpu.flags:  # no /proc/cpuinfo: nothing to compare with
        return problems
    missing = [name for name, on in features.items()
               if on and name not in LLAMA_NON_ISA and name in LLAMA_FEATURE_FLAGS
               and not cpu.has(LLAMA_FEATURE_FLAGS[name])]
    if missing:
        problems.append(f"built for {', '.join(missing)}, which this CPU does not offer")
    if features.get("AMX_INT8"):
        problems.append("built with llama.cpp's AMX kernels, which crash on some machines that offer AMX")
    return problems
