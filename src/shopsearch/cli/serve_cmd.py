"""``shopsearch serve``: the search service (FastAPI + uvicorn) over an index directory."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from shopsearch.cli.common import ConfigOpt, FormatOpt, console


def serve(
    index: Annotated[
        Path | None, typer.Option("--index", "-i", help="Index directory from `shopsearch index build`.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind [default: 127.0.0.1; 0.0.0.0 = all].")] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", help="TCP port [default: 8000].")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes, each with its own copy of the index [default: 1].")
    ] = None,
    admin_key_file: Annotated[
        Path | None,
        typer.Option(help="File holding the admin key for POST /admin/reload [default: $SHOPSEARCH_ADMIN_KEY]."),
    ] = None,
    judgments: Annotated[
        Path | None, typer.Option(help="Judgments to show each result's grade on the web page.")
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalogue the judgments refer to, where the format needs one (products.csv).")
    ] = None,
    format: FormatOpt = None,
    encoder: Annotated[
        str | None, typer.Option(help="Query encoder: auto (ONNX export if one matches, else torch) | onnx | torch.")
    ] = None,
    onnx: Annotated[Path | None, typer.Option(help="ONNX export directory (shopsearch.models.export_onnx).")] = None,
    int8: Annotated[bool | None, typer.Option("--int8/--fp32", help="Which ONNX graph [default: int8].")] = None,
    reranker: Annotated[
        Path | None,
        typer.Option(help="Cross-encoder (`shopsearch train-reranker`) or its ONNX export: enables rerank=true."),
    ] = None,
    rerank_depth: Annotated[int | None, typer.Option(help="Top hits the re-ranker re-orders [default: 30].")] = None,
    rerank_default: Annotated[
        bool | None, typer.Option("--rerank-default/--no-rerank-default", help="Re-rank requests that do not say.")
    ] = None,
    k_max: Annotated[int | None, typer.Option(help="Largest k a request may ask for (at most 100).")] = None,
    max_query_chars: Annotated[int | None, typer.Option(help="Longer queries are refused [default: 256].")] = None,
    cache_size: Annotated[int | None, typer.Option(help="Result cache entries; 0 disables it [default: 4096].")] = None,
    mmap: Annotated[
        bool | None, typer.Option("--mmap/--no-mmap", help="Memory-map the index files [default: mmap].")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="critical | error | warning | info | debug.")] = None,
    events_db: Annotated[
        Path | None, typer.Option(help="Event store (SQLite) for POST /events: the page logs impressions and clicks.")
    ] = None,
    sbs_db: Annotated[
        Path | None, typer.Option(help="Side-by-side verdict store (SQLite): turns on /sbs/* and the page's SBS view.")
    ] = None,
    experiment: Annotated[
        Path | None,
        typer.Option(help="Config file whose `ab` section is the A/B or interleaving experiment to serve."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve an index over HTTP: GET/POST /search (dense, bm25, hybrid; vertical and brand
    filters; rerank=true with --reranker), GET /products/{id}, /healthz, /readyz, /metrics (Prometheus), POST /admin/reload,
    OpenAPI docs at /docs, and a search page at /. With --events-db: POST /events; with --sbs-db:
    side-by-side judging (/sbs/pair, /sbs/verdict); with --experiment: searches carrying a
    user_id/session_id are served by their variant. Settings: the `serve` section of --config,
    overridden by flags."""
    import secrets

    import uvicorn

    from shopsearch.data.errors import ShopsearchError
    from shopsearch.experiments.assignment import ExperimentConfig
    from shopsearch.experiments.events import EventStore
    from shopsearch.experiments.sbs import SbsStore
    from shopsearch.serve.app import create_app
    from shopsearch.serve.experiment import ExperimentRuntime, default_index
    from shopsearch.serve.holder import IndexHolder
    from shopsearch.serve.judgments import JudgmentLookup
    from shopsearch.serve.sbs_tokens import SBS_SECRET_ENV
    from shopsearch.serve.security import AdminKey
    from shopsearch.serve.settings import SETTINGS_ENV, load_serve_settings

    settings = load_serve_settings(
        config,
        index=index, host=host, port=port, workers=workers, admin_key_file=admin_key_file,
        judgments=judgments, judgments_catalog=catalog, judgments_format=format, encoder=encoder, onnx=onnx,
        int8=int8, reranker=reranker, rerank_depth=rerank_depth, rerank_default=rerank_default, k_max=k_max, max_query_chars=max_query_chars, cache_size=cache_size, mmap=mmap,
        log_level=log_level, events_db=events_db, sbs_db=sbs_db, experiment=experiment,
    )  # fmt: skip
    exp_config = ExperimentConfig.from_file(settings.experiment) if settings.experiment is not None else None
    if settings.index is None and exp_config is not None:
        settings.index = default_index(settings, exp_config)
    if settings.index is None:
        raise typer.BadParameter("give --index DIR (or `index:` in the serve section of --config)")
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    admin_key = AdminKey.from_sources(settings.admin_key_file)
    # Load and check everything before binding the port: a bad index is a clean exit 2, not a crash loop.
    holder = IndexHolder(settings)
    with console.status(f"loading index {settings.index}"):
        snapshot, _ = holder.reload(settings.index)
    runtime = None
    if exp_config is not None:
        runtime = ExperimentRuntime(exp_config, settings, holder)
        with console.status(f"loading the indexes of experiment {exp_config.name}"):
            runtime.load()
    lookup = None
    if settings.judgments is not None:
        with console.status(f"loading judgments {settings.judgments}"):
            try:
                lookup = JudgmentLookup.load(
                    settings.judgments, catalog=settings.judgments_catalog, format=settings.judgments_format
                )
            except ShopsearchError as exc:
                raise ShopsearchError(f"--judgments: {exc} (the catalogue they refer to goes in --catalog)") from exc
    enc = snapshot.encoder.kind if snapshot.encoder else "none (bm25 only)"
    rr = (f", re-ranker {snapshot.reranker.name} over the top {settings.rerank_depth}"
          if snapshot.reranker is not None else "")
    console.print(
        f"[bold]{snapshot.n_products:,}[/] products, modes {', '.join(snapshot.modes)}, query encoder {enc}{rr}; "
        f"admin reload {'on' if admin_key.enabled else 'off'}"
        + (f"; {lookup.describe()['queries']:,} judged queries" if lookup else "")
    )
    if runtime is not None:
        d = runtime.describe()
        arms = ", ".join(f"{v['name']} ({v['index']}, {v['mode']}, {v['split']:.0%})" for v in d["variants"])
        console.print(f"experiment [bold]{d['name']}[/] ({d['design']}, by {d['unit']}): {arms}; "
                      f"{len(runtime.holders)} index(es) loaded")
    # Open each store once now: an unwritable path is a clean exit 2, not a failed worker start-up.
    for path, store_class, what in ((settings.events_db, EventStore, "events"),
                                    (settings.sbs_db, SbsStore, "side-by-side verdicts")):
        if path is not None:
            store_class(path).close()
            console.print(f"{what} -> {path}")
    console.print(f"search page: http://{settings.host}:{settings.port}/  API docs: /docs")
    # Workers must agree on the side-by-side token secret, or a verdict sent to another worker
    # than the one that issued its pair would be refused.
    os.environ.setdefault(SBS_SECRET_ENV, secrets.token_urlsafe(32))
    if settings.workers == 1:
        app = create_app(settings, holder=holder, judgments=lookup, admin_key=admin_key, experiment=runtime)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
        return
    # Several workers: each process builds its own app (and index) from these settings.
    console.print(
        f"[yellow]{settings.workers} workers:[/] POST /admin/reload reaches one worker; send SIGHUP to the "
        "server to restart every worker on the index directory"
    )
    del holder, snapshot, lookup, runtime
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run(
        "shopsearch.serve.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
    )
