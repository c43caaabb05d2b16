"""A response cache on disk: one JSON file per request key, written atomically.

One file per key (sharded by the key's first two hex digits) rather than one database, so several
processes rewriting the same seeds can share a cache without locks: a file appears whole (temporary
sibling + rename) or not at all, and two writers of one key write the same answer. A file that does
not parse (a disk filled mid-write by something else) is treated as a miss and rewritten.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from shopsearch.artifacts import atomic_write_text


class ResponseCache:
    """``get(key) -> list[str] | None`` and ``put(key, completions, meta)`` under ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[str] | None:
        path = self._path(key)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            completions = record["completions"]
            if not (isinstance(completions, list) and all(isinstance(c, str) for c in completions)):
                raise ValueError("completions is not a list of strings")
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
        return list(completions)

    def put(self, key: str, completions: list[str], meta: dict[str, Any] | None = None) -> None:
        record = {"key": key, "completions": list(completions), "meta": meta or {}}
        atomic_write_text(self._path(key), json.dumps(record, ensure_ascii=False))

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*/*.json"))

    def stats(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "hits": self.hits, "misses": self.misses}
