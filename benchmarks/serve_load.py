"""Load test of ``shopsearch serve`` on loopback: QPS and latency percentiles per mode, peak RSS.

Starts the server as a child process (``python -m shopsearch.serve``) on an index directory, waits
for ``/readyz``, then for each mode (dense, bm25, hybrid; ``MODE+rerank`` with ``--reranker``: the
mode's top ``--rerank-depth`` re-ranked by the cross-encoder) runs:

- **closed loop** at concurrency 1, 8 and 32: that many clients, each sending its next request as
  soon as the previous one is answered, for ``--duration`` seconds. Measures capacity.
- **open loop** at a fixed ``--rate`` (requests/s) for ``--duration`` seconds: requests start on
  schedule whether or not earlier ones have been answered, and latency is counted from the
  *scheduled* start, so a stalled server shows up in the tail (no coordinated omission). A request
  that would exceed ``--max-outstanding`` in flight is not sent and is counted as dropped.

The load generator is a minimal asyncio HTTP/1.1 client (``LoopbackClient``), and every measurement
also records the CPU the server and the client spent per request, so a saturated figure says who
saturated. The server's result cache is off by default (``--server-cache-size 0``) so every request does the
real work; queries cycle through a fixed, seeded list. Peak RSS is the server's ``VmHWM`` (Linux)
and the highest RSS sampled every 100 ms (all worker processes summed). The client runs on the same
host as the server, so on a small machine they compete for the CPU: compare runs on one machine.
Writes ``benchmarks/results/serve_load.json``. Run by hand::

    .venv/bin/python benchmarks/serve_load.py --index index/hd --duration 10 --rate 50
    .venv/bin/python benchmarks/serve_load.py --demo-products 300 --duration 1 --rate 10   # smoke run
    .venv/bin/python benchmarks/serve_load.py --index index/hd --reranker ce-onnx --rerank-depth 30 \
        --modes hybrid hybrid+rerank --rate 20 --duration 30 --out benchmarks/results/serve_load_rerank.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
import pandas as pd
import psutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from shopsearch.artifacts import atomic_write_text

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "serve_load.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def queries_from_titles(index: Path, n: int, seed: int) -> list[str]:
    """Short queries cut from product titles (2-3 words after the brand), seeded."""
    titles = pd.read_parquet(index / "products.parquet", columns=["title"])["title"].dropna().astype(str)
    rng = np.random.default_rng(seed)
    picked = titles.iloc[rng.choice(len(titles), size=min(n, len(titles)), replace=False)]
    out = []
    for title in picked:
        words = [w.strip(",.()") for w in title.split() if w.strip(",.()")]
        size = int(rng.integers(2, 4))
        out.append(" ".join(words[1 : 1 + size] or words[:size]))
    return [q for q in out if q]


def build_demo_index(n_products: int, directory: Path, onnx: bool) -> tuple[Path, list[str]]:
    """A demo-shop index (and, with ``onnx``, an ONNX export of its encoder in ``INDEX/onnx``)."""
    from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
    from shopsearch.retrieval.store import build_index

    shop = generate_demo_shop(DemoShopConfig(n_products=n_products, n_queries=max(10, n_products // 5), seed=11))
    index = build_index(shop.catalog, directory / "index", show_progress=False)
    if onnx:
        from shopsearch.models import export_onnx

        export_onnx("all-MiniLM-L6-v2", index / "onnx")
    return index, shop.queries.texts


@contextlib.contextmanager
def running_server(index: Path, port: int, args: argparse.Namespace, log_path: Path) -> Iterator[psutil.Process]:
    cmd = [sys.executable, "-m", "shopsearch.serve", "--index", str(index), "--port", str(port),
           "--cache-size", str(args.server_cache_size), "--workers", str(args.workers), "--log-level", "warning"]  # fmt: skip
    if args.encoder:
        cmd += ["--encoder", args.encoder]
    if args.reranker:
        cmd += ["--reranker", str(args.reranker), "--rerank-depth", str(args.rerank_depth)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(base: str, server: psutil.Process, log_path: Path, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if not server.is_running() or server.status() == psutil.STATUS_ZOMBIE:
            raise SystemExit(f"the server exited while starting:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return time.perf_counter() - started
        time.sleep(0.2)
    raise SystemExit(f"the server was not ready after {timeout} s:\n{log_path.read_text()[-3000:]}")


def tree_rss(server: psutil.Process) -> int:
    total = 0
    for p in [server, *server.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def tree_cpu(server: psutil.Process) -> float:
    """CPU seconds (user + system) of the server and its worker processes so far."""
    total = 0.0
    for p in [server, *server.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def vm_hwm(pid: int) -> int | None:
    """Peak resident set size of a process in bytes (Linux ``VmHWM``), or None elsewhere."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def summary(latencies: list[float], errors: int, elapsed: float, **extra: Any) -> dict[str, Any]:
    lat = np.asarray(latencies) * 1000
    pct = (lambda p: round(float(np.percentile(lat, p)), 3)) if len(lat) else (lambda p: None)
    return {
        **extra,
        "requests": len(latencies) + errors,
        "ok": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 3),
        "qps": round(len(latencies) / elapsed, 2) if elapsed > 0 else None,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(float(lat.max()), 3) if len(lat) else None,
    }


class LoopbackClient:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams: one connection per concurrent
    caller, GET only, ``Content-Length`` bodies (what uvicorn sends for JSON).

    httpx costs more CPU per request than the server's whole search (its pool bookkeeping grows
    with the number of connections); on a 2-core host shared with the server the load generator
    would then measure itself. This one parses only the status line and the body length.
    """

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self._idle: asyncio.LifoQueue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.LifoQueue()
        self._size = size

    async def __aenter__(self) -> LoopbackClient:
        await self.reconnect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._close_idle()

    def _close_idle(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()

    async def reconnect(self) -> None:
        """Fresh connections: the server closes those idle past its keep-alive timeout (uvicorn:
        5 s), and a request on one of those would count as a failure of the search."""
        self._close_idle()
        for _ in range(self._size):
            self._idle.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def get(self, path: str, params: dict[str, Any]) -> int:
        """Status code of ``GET path?params`` (0 when the connection failed)."""
        reader, writer = await self._idle.get()
        try:
            target = f"{path}?{urlencode(params)}"
            writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = next(
                (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
                0,
            )
            await reader.readexactly(length)
            self._idle.put_nowait((reader, writer))
            return status
        except (OSError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            self._idle.put_nowait(await asyncio.open_connection(self.host, self.port))
            return 0


def search_params(query: str, mode: str, k: int) -> dict[str, Any]:
    """The request of one search: ``MODE+rerank`` is ``mode=MODE&rerank=true``."""
    base, _, rerank = mode.partition("+")
    return {"q": query, "mode": base, "k": k, **({"rerank": "true"} if rerank == "rerank" else {})}


async def _search(client: LoopbackClient, params: dict[str, Any]) -> bool:
    return await client.get("/search", params) == 200


async def closed_loop(client: LoopbackClient, mode: str, queries: list[str], concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    turn = itertools.count()
    deadline = time.perf_counter() + args.duration

    async def client_loop() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            params = search_params(queries[next(turn) % len(queries)], mode, args.k)
            t = time.perf_counter()
            if await _search(client, params):
                latencies.append(time.perf_counter() - t)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return summary(latencies, errors, time.perf_counter() - started, mode=mode, loop="closed", concurrency=concurrency)


async def open_loop(client: LoopbackClient, mode: str, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    errors = dropped = outstanding = 0
    n = max(1, int(args.rate * args.duration))
    start = time.perf_counter()

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors, outstanding
        outstanding += 1
        try:
            params = search_params(queries[i % len(queries)], mode, args.k)
            if await _search(client, params):
                latencies.append(time.perf_counter() - scheduled)  # from the schedule, not the send
            else:
                errors += 1
        finally:
            outstanding -= 1

    tasks = []
    for i in range(n):
        scheduled = start + i / args.rate
        if (delay := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        if outstanding >= args.max_outstanding:
            dropped += 1
            continue
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return summary(latencies, errors, time.perf_counter() - start, mode=mode, loop="open", rate=args.rate, dropped=dropped)


async def run_load(base: str, server: psutil.Process, queries: list[str], args: argparse.Namespace) -> tuple[list[dict[str, Any]], int]:
    peak = tree_rss(server)
    done = asyncio.Event()

    async def sample_rss() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(server))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_rss())
    results: list[dict[str, Any]] = []

    async def measured(run: Any) -> None:
        """Run one measurement; add the CPU the server and this client spent per answered request."""
        await client.reconnect()
        server_cpu, client_cpu = tree_cpu(server), time.process_time()
        result = await run
        ok = max(1, result["ok"])
        result["server_cpu_ms_per_request"] = round((tree_cpu(server) - server_cpu) / ok * 1000, 3)
        result["client_cpu_ms_per_request"] = round((time.process_time() - client_cpu) / ok * 1000, 3)
        results.append(result)
        print(json.dumps(result), flush=True)

    host, port = base.removeprefix("http://").split(":")
    async with LoopbackClient(host, int(port), size=max(max(args.concurrency), args.max_outstanding)) as client:
        for mode in args.modes:
            for q in queries[:5]:  # warm this mode's path (lazy initialisation, page faults)
                await _search(client, search_params(q, mode, args.k))
            await measured(open_loop(client, mode, queries, args))
            for concurrency in args.concurrency:
                await measured(closed_loop(client, mode, queries, concurrency, args))
    done.set()
    await sampler
    return results, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", type=Path, help="index directory to serve")
    source.add_argument("--demo-products", type=int, help="build a demo-shop index of this many products first")
    parser.add_argument("--demo-onnx", action="store_true", help="with --demo-products: also export ONNX into it")
    parser.add_argument("--queries", type=Path, help="query file, one per line (default: cut from titles)")
    parser.add_argument("--n-queries", type=int, default=200)
    parser.add_argument("--modes", nargs="+", default=["dense", "bm25", "hybrid"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rate", type=float, default=20.0, help="open-loop requests per second")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--max-outstanding", type=int, default=64, help="open loop: most requests in flight")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--reranker", type=Path, help="re-ranker to serve (CrossEncoder dir or ONNX export)")
    parser.add_argument("--rerank-depth", type=int, default=30, help="top hits re-ranked in MODE+rerank")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--encoder", choices=["auto", "onnx", "torch"], default=None)
    parser.add_argument("--server-cache-size", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if any(m.endswith("+rerank") for m in args.modes) and args.reranker is None:
        parser.error("a MODE+rerank mode needs --reranker")

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        tmp_dir = Path(tmp)
        if args.index is not None:
            index = args.index
            queries = queries_from_titles(index, args.n_queries, args.seed)
        else:
            index, queries = build_demo_index(args.demo_products, tmp_dir, args.demo_onnx)
        if args.queries is not None:
            queries = [q.strip() for q in args.queries.read_text(encoding="utf-8").splitlines() if q.strip()]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = tmp_dir / "server.log"
        with running_server(index, port, args, log_path) as server:
            startup = wait_ready(base, server, log_path, timeout=300)
            info = httpx.get(f"{base}/info", timeout=10).json()
            results, sampled_peak = asyncio.run(run_load(base, server, queries, args))
            hwm = vm_hwm(server.pid)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpus": cpus,
               "note": "client and server share this host"}
    index_info = {k: info["index"].get(k)
                  for k in ("n_products", "size_bytes", "dimension", "faiss_class", "encoder", "reranker")}
    settings = {"modes": args.modes, "concurrency": args.concurrency, "rate": args.rate, "duration_s": args.duration,
                "k": args.k, "workers": args.workers, "server_cache_size": args.server_cache_size,
                "n_queries": len(queries), "max_outstanding": args.max_outstanding,
                "reranker": str(args.reranker) if args.reranker else None,
                "rerank_depth": args.rerank_depth if args.reranker else None}
    server_info = {"startup_s": round(startup, 2), "peak_rss_mb": round(hwm / 2**20, 1) if hwm else None,
                   "sampled_max_rss_mb": round(sampled_peak / 2**20, 1)}
    report = {
        "benchmark": "serve_load",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "index": {"path": str(index) if args.index else "(demo, temporary)", "demo_products": args.demo_products,
                  **index_info},
        "settings": settings,
        "server": server_info,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
