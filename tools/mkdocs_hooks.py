"""mkdocs hooks: repository files the pages link to become part of the site.

The pages link repository files outside ``docs/`` as ``../benchmarks/results/NAME.json`` (and the
like), so that the links work when the Markdown is read in the repository; the site serves each
linked file at the same path under its root, and the links are rewritten to match. The README
becomes the home page, its ``docs/`` links made relative to the site.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_OUTSIDE = re.compile(r"\]\(\.\./([^)#\s]+)")


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8").replace("](docs/", "](")


def on_files(files: Files, config) -> Files:
    linked: set[str] = set()
    for text in [p.read_text(encoding="utf-8") for p in DOCS.glob("*.md")]:
        linked |= set(_OUTSIDE.findall(text))
    linked |= {m for m in re.findall(r"\]\(([^)#\s:]+)", _readme()) if (ROOT / m).is_file()
               and not (DOCS / m).exists()}
    for rel in sorted(linked):
        if (ROOT / rel).is_file():
            files.append(File.generated(config, rel, abs_src_path=str(ROOT / rel)))
    files.append(File.generated(config, "index.md", content=_readme()))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    return _OUTSIDE.sub(lambda m: f"]({m.group(1)}", markdown)
