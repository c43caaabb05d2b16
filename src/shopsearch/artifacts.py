"""Output directories with a manifest, written atomically.

Every step's output is a directory holding its files and a ``manifest.json`` (what made it, from
what, when, with which settings, and a SHA-256 of each file). Directories are written to a
sibling temporary path and renamed into place, so a failed job leaves earlier outputs intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shopsearch import __version__
from shopsearch.data.errors import ShopsearchError

MANIFEST = "manifest.json"


class ArtifactError(ShopsearchError):
    """An output directory is missing, of the wrong kind, or does not match its manifest."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(target: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} exists; pass overwrite=True (or --overwrite) to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs are meant to be shared
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file via a temporary sibling and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; reports are meant to be shared
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_parquet(path: str | Path, table: Any) -> None:
    """Write a pyarrow ``table`` as Parquet via a temporary sibling and rename: a killed run never
    leaves half a file (the chunks of resumable jobs, teacher scores)."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are meant to be shared
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_manifest(directory: str | Path, kind: str, **info: Any) -> dict[str, Any]:
    """Checksum every file in ``directory`` and write ``manifest.json`` describing it."""
    directory = Path(directory)
    files = {
        str(p.relative_to(directory)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        "kind": kind,
        "shopsearch_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **info,
        "files": files,
    }
    atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=2, default=str))
    return manifest


def read_manifest(directory: str | Path, kind: str | None = None, verify: bool = True) -> dict[str, Any]:
    """Read and check a manifest: right kind, every listed file present with its checksum."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory} has no {MANIFEST}: not a shopsearch output directory")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from None
    if kind is not None and manifest.get("kind") != kind:
        raise ArtifactError(f"{directory} holds a {manifest.get('kind')!r}, expected a {kind!r}")
    if verify:
        for name, meta in manifest.get("files", {}).items():
            f = directory / name
            if not f.is_file():
                raise ArtifactError(f"{directory}: file {name} listed in the manifest is missing")
            if sha256_file(f) != meta["sha256"]:
                raise ArtifactError(f"{directory}: file {name} does not match its checksum (corrupted or edited)")
    return manifest
