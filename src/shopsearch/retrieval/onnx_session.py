"""The onnxruntime CPU session every ONNX export here is served with (encoders and re-rankers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["ort_session"]


def ort_session(path: Path, threads: int | None) -> Any:
    """A CPU onnxruntime session with full graph optimisation and ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or 0)  # 0: onnxruntime's default (all cores)
    opts.inter_op_num_threads = 1
    # Idle intra-op threads otherwise spin-wait for the next call: on a small server that burnt
    # ~3x the CPU of the encoding itself at 50 requests/s, stolen from concurrent requests.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
