"""Reading source files (CSV/TSV, Parquet, JSON Lines; optionally compressed) into frames.

Every frame a reader returns carries a ``__rec`` column: the row's record index in its file, so a
problem found later (after filters and merges) can still be located. :meth:`Source.row` turns it
into the row number a person can look up:

- CSV/TSV: the 1-based physical line where the record starts, the header being line 1 (quoted
  fields spanning several lines and blank lines are accounted for);
- Parquet: the 0-based record index;
- JSON Lines: the 1-based line number.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from shopsearch.data.errors import BadRowReport, DataError

REC = "__rec"  # record index of a row in its source file
DEFAULT_ENCODING = "utf-8-sig"  # accepts a byte-order mark, which Excel exports often carry
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4"}
_JSONL = {".jsonl", ".ndjson", ".json"}


@dataclass
class Source:
    """One input file and how its records map back to row numbers."""

    path: Path
    kind: str  # "csv" | "parquet" | "jsonl"
    encoding: str | None = None
    sep: str = ","
    n_records: int = 0
    bad_lines: frozenset[int] = frozenset()
    lines: list[int] | None = field(default=None, repr=False)  # record index -> line, built lazily

    @property
    def name(self) -> str:
        return str(self.path)

    def row(self, rec: Any) -> int:
        """The row number of record ``rec`` (see the module docstring for the convention)."""
        rec = int(rec)
        if self.kind == "parquet":
            return rec
        if self.lines is None:
            self.lines = _csv_record_lines(self)
        return self.lines[rec] if rec < len(self.lines) else rec + 2


def suffixes(path: Path) -> tuple[str, str]:
    """(format suffix, compression suffix), e.g. ``a.jsonl.zstd`` -> (".jsonl", ".zstd")."""
    sfx = [s.lower() for s in path.suffixes]
    if sfx and sfx[-1] in _COMPRESSION:
        return (sfx[-2] if len(sfx) > 1 else "", sfx[-1])
    return (sfx[-1] if sfx else "", "")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed by suffix (pyarrow's codecs: no extra dependency for zstd)."""
    _, comp = suffixes(path)
    if not comp:
        return path.read_bytes()
    try:
        with pa.input_stream(str(path), compression=_COMPRESSION[comp]) as stream:
            return stream.read()
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot decompress ({_COMPRESSION[comp]}): {exc}", file=path) from None


def decode(data: bytes, path: Path, encoding: str) -> str:
    """Decode, turning a UnicodeDecodeError into a DataError with the byte offset and line."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, data, exc, encoding) from None


def _encoding_error(path: Path, data: bytes, exc: UnicodeDecodeError, encoding: str) -> DataError:
    line = data.count(b"\n", 0, exc.start) + 1
    shown = data[exc.start : exc.start + 4]
    name = "utf-8" if encoding.lower().replace("_", "-") == "utf-8-sig" else encoding
    return DataError(
        f"cannot decode as {name} at byte offset {exc.start} (bytes {shown!r}); the file is in another "
        f"encoding: pass --encoding (e.g. latin-1 or cp1252)",
        file=path,
        row=line,
    )


def _head(path: Path, n: int = 65536) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def sniff_sep(path: Path, data_head: bytes) -> str:
    """Tab for .tsv files or when the header has tabs and no commas (WANDS ``.csv`` files are tabbed)."""
    fmt, _ = suffixes(path)
    if fmt in {".tsv", ".tab"}:
        return "\t"
    header = data_head.split(b"\n", 1)[0]
    return "\t" if header.count(b"\t") > header.count(b",") else ","


def read_csv(path: Path, report: BadRowReport, *, encoding: str | None = None, sep: str | None = None) -> tuple[pd.DataFrame, Source]:
    """Read a delimited file with every column as text (empty cells are missing, nothing else).

    Lines with too many fields are reported (skipped) instead of stopping the whole read.
    """
    enc = encoding or DEFAULT_ENCODING
    _, comp = suffixes(path)
    data: bytes | None = read_bytes(path) if comp else None
    if sep is None:
        sep = sniff_sep(path, data[:65536] if data is not None else _head(path))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = pd.read_csv(
                io.BytesIO(data) if data is not None else path,
                sep=sep,
                dtype=str,
                # only an empty cell is missing: "NA", "null", "none" are real titles and queries
                keep_default_na=False,
                na_values=[""],
                encoding=enc,
                on_bad_lines="warn",
                compression=None,
            )
    except UnicodeDecodeError as exc:
        raw = data if data is not None else path.read_bytes()
        try:
            raw.decode(enc)
        except UnicodeDecodeError as full:
            raise _encoding_error(path, raw, full, enc) from None
        raise DataError(f"cannot decode as {enc}: {exc}", file=path) from None
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty (no header line)", file=path) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"not a readable delimited file: {exc}", file=path) from None
    except LookupError as exc:  # unknown encoding name
        raise DataError(f"unknown encoding {enc!r}: {exc}", file=path) from None
    df.columns = [str(c).strip() for c in df.columns]
    bad = []
    for w in caught:
        msg = str(w.message).strip()
        if msg.startswith("Skipping line"):
            line = int(msg.split()[2].rstrip(":"))
            bad.append(line)
            report.add(path, line, None, f"malformed line: {msg.split(':', 1)[1].strip()}")
    df[REC] = np.arange(len(df))
    src = Source(path, "csv", enc, sep, len(df), frozenset(bad))
    return df, src


def _csv_record_lines(src: Source) -> list[int]:
    """Record index -> starting line, mirroring pandas (skips blank lines and skipped bad lines)."""
    data = read_bytes(src.path)
    physical = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if not src.bad_lines and physical == src.n_records + 1:
        return list(range(2, src.n_records + 2))  # one line per record: the cheap, common case
    text = data.decode(src.encoding or DEFAULT_ENCODING, errors="replace")
    # descriptions can exceed the csv module's default 128 KiB field limit
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=src.sep)
    out: list[int] = []
    prev, header = 0, True
    for fields in reader:
        start, prev = prev + 1, reader.line_num
        if not fields:
            continue
        if header:
            header = False
            continue
        if start not in src.bad_lines:
            out.append(start)
    return out


def read_parquet(path: Path) -> tuple[pd.DataFrame, Source]:
    """Read a Parquet file; a file pyarrow cannot read is a DataError naming it."""
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise DataError(f"not a readable Parquet file: {exc}", file=path) from None
    df = df.reset_index(drop=True)
    df.columns = [str(c).strip() for c in df.columns]
    df[REC] = np.arange(len(df))
    return df, Source(path, "parquet", n_records=len(df))


def read_jsonl(path: Path, report: BadRowReport, *, encoding: str | None = None) -> tuple[pd.DataFrame, Source]:
    """Read JSON Lines (optionally compressed). Vespa feed documents (``{"put": ..., "fields":
    {...}}``, as in the ESCI product sample) are flattened to their ``fields``."""
    enc = encoding or DEFAULT_ENCODING
    text = decode(read_bytes(path), path, enc)
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.add(path, i, None, f"invalid JSON: {exc.msg} at column {exc.colno}", line[:80])
            continue
        if isinstance(obj, dict) and isinstance(obj.get("fields"), dict):
            obj = obj["fields"]
        if not isinstance(obj, dict):
            report.add(path, i, None, "a JSON Lines record must be an object", line[:80])
            continue
        records.append(obj)
        lines.append(i)
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    df.columns = [str(c).strip() for c in df.columns]
    df[REC] = np.arange(len(df))
    return df, Source(path, "jsonl", enc, n_records=len(df), lines=lines)


def read_table(
    path: str | Path, report: BadRowReport, *, encoding: str | None = None, sep: str | None = None
) -> tuple[pd.DataFrame, Source]:
    """Read any supported tabular file, chosen by suffix: .parquet/.pq, .jsonl/.ndjson/.json, else CSV."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", file=path)
    if path.is_dir():
        raise DataError("is a directory; expected a file", file=path)
    fmt, _ = suffixes(path)
    if fmt in {".parquet", ".pq"}:
        return read_parquet(path)
    if fmt in _JSONL:
        return read_jsonl(path, report, encoding=encoding)
    return read_csv(path, report, encoding=encoding, sep=sep)


def header_columns(path: str | Path, encoding: str | None = None) -> list[str]:
    """Column names only (cheap: the Parquet schema or the first line), for format detection."""
    path = Path(path)
    fmt, _ = suffixes(path)
    try:
        if fmt in {".parquet", ".pq"}:
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names if not str(c).startswith("__index_level")]
        if fmt in _JSONL:
            first_line = read_bytes(path).split(b"\n", 1)[0]
            obj = json.loads(first_line.decode(encoding or DEFAULT_ENCODING, errors="replace"))
            obj = obj.get("fields", obj) if isinstance(obj, dict) else {}
            return [str(k) for k in obj] if isinstance(obj, dict) else []
        head = read_bytes(path)[:65536] if suffixes(path)[1] else _head(path)
        sep = sniff_sep(path, head)
        header = head.split(b"\n", 1)[0].decode(encoding or DEFAULT_ENCODING, errors="replace").strip("\r")
        return [c.strip().strip('"') for c in header.split(sep)]
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise DataError(f"cannot read the header: {exc}", file=path) from None
