"""Build llama-cpp-python for this machine once, without AMX, and install it (called by ``make install``).

llama-cpp-python compiles llama.cpp at install time, by default with ``-march=native``. On a CPU that
offers AMX that build includes llama.cpp's AMX matmul kernels, which crash (SIGILL or SIGSEGV at
``ldtilecfg``) in the VMs this project runs on (issue 23). The build here is chosen by
``benchmarks/llama_cpp_builds.py`` (results in ``benchmarks/results/llama_cpp_builds_*.json``): on
x86-64 the flags of :data:`X86_64_ARGS`; elsewhere llama.cpp's defaults, which have no AMX path.
``SHOPSEARCH_LLAMA_CMAKE_ARGS`` replaces the flags (e.g. ``-DGGML_CUDA=on`` on a GPU machine).

pip's own wheel cache would hand back a wheel built with other flags (it keys on the source, not on
``CMAKE_ARGS``), so the wheel is built with pip's cache off into a cache of ours, keyed by the
version, the flags, the architecture and, for a build that uses ``-march=native``, the CPU's flags: a
later install on the same kind of machine (CI after a session) reuses it, another kind builds anew.

    python tools/install_llama.py --constraints constraints.txt [--dry-run]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
# The instruction sets of x86-64-v3, fixed at compile time: no -march=native, so no AMX, and the
# same library on every CPU since Intel Haswell / AMD Excavator (2013-2015).
X86_64_ARGS = "-DGGML_NATIVE=OFF"
X86_64_NEEDS = ("avx", "avx2", "fma", "f16c", "bmi2")
# For a CPU without those (older than 2013): -march=native, AMX switched off all the same.
X86_64_FALLBACK = f"-DGGML_NATIVE=ON -DCMAKE_C_FLAGS='{NO_AMX}' -DCMAKE_CXX_FLAGS='{NO_AMX}'"


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    found = re.search(r"^(?:flags|features)\s*:(.*)$", text, re.M)
    return set(found.group(1).split()) if found else set()


def cmake_args() -> str:
    """The flags this machine's build gets (see the module docstring)."""
    if "SHOPSEARCH_LLAMA_CMAKE_ARGS" in os.environ:
        return os.environ["SHOPSEARCH_LLAMA_CMAKE_ARGS"]
    if platform.machine() not in ("x86_64", "AMD64"):
        return ""
    flags = cpu_flags()
    return X86_64_ARGS if not flags or set(X86_64_NEEDS) <= flags else X86_64_FALLBACK


def pinned_version(constraints: Path) -> str:
    found = re.search(r"^llama-cpp-python==(\S+)$", constraints.read_text(), re.M | re.I)
    if not found:
        raise SystemExit(f"{constraints}: no llama-cpp-python==VERSION line")
    return found.group(1)


def cache_dir(version: str, args: str) -> Path:
    key = [version, args, platform.machine(), platform.python_version()]
    if "NATIVE=ON" in args.upper() or not args:
        key.append(" ".join(sorted(cpu_flags())))
    digest = hashlib.sha256("\n".join(key).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shopsearch" / "llama-cpp"
    return base / f"{version}-{digest}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--constraints", type=Path, default=ROOT / "constraints.txt")
    parser.add_argument("--dry-run", action="store_true", help="print the flags and the cache path only")
    args = parser.parse_args()
    version = pinned_version(args.constraints)
    flags = cmake_args()
    where = cache_dir(version, flags)
    wheels = sorted(where.glob("llama_cpp_python-*.whl"))
    print(f"llama-cpp-python {version}: CMAKE_ARGS={flags!r}; "
          f"{'reusing ' + str(wheels[0]) if wheels else 'building into ' + str(where)}", flush=True)
    if args.dry_run:
        return
    if not wheels:
        where.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CMAKE_ARGS=flags, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(where),
                        f"llama-cpp-python=={version}"], env=env, check=True)
        wheels = sorted(where.glob("llama_cpp_python-*.whl"))
        print(f"built {wheels[0].name} in {time.perf_counter() - start:.0f} s", flush=True)
    # --no-deps: its dependencies come with the project's, under the same constraints
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", str(wheels[0])],
                   check=True)


if __name__ == "__main__":
    main()
