"""``shopsearch ab``: analyse an online experiment from its event log, or simulate one with a click model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shopsearch.cli.common import (
    CatalogOpt,
    ConfigOpt,
    FormatOpt,
    JudgmentsOpt,
    OnErrorOpt,
    QueriesOpt,
    SchemeOpt,
    TextFieldOpt,
    console,
    data_flags,
    load_data,
    out,
)
from shopsearch.config import ConfigError, merge_settings

app = typer.Typer(help="A/B and interleaving experiments: analyse event logs, simulate traffic.", no_args_is_help=True)

JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON.")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report with plots.")]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="Write the Markdown report.")]
UnitOpt = Annotated[str | None, typer.Option(help="Randomisation unit: user | session (overrides the config).")]
DesignOpt = Annotated[str | None, typer.Option(help="ab | interleaving (overrides the config).")]


def _experiment(config: Path | None, default: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """The ``ab`` section of the config file (or ``default``), with the flags given laid over it."""
    from shopsearch.experiments.assignment import ExperimentConfig

    if config is None and default is None:
        raise ConfigError("give --config FILE with an `ab` section (experiment name, variants, split, unit)")
    base = ExperimentConfig.from_file(config).model_dump() if config is not None else dict(default or {})
    given = {k: v for k, v in overrides.items() if v is not None}
    return ExperimentConfig.from_dict(base | given, source=str(config or "flags"))


def _write(report: Any, json_out: Path | None, html_out: Path | None, markdown_out: Path | None) -> None:
    for label, path, write in (("JSON", json_out, report.write_json), ("HTML", html_out, report.write_html),
                               ("Markdown", markdown_out, report.write_markdown)):
        if path is not None:
            write(path)
            console.print(f"{label} report: [bold]{path}[/]")


@app.command("analyze")
def analyze(
    events: Annotated[Path, typer.Option("--events", "-e", help="Event store (.db/.sqlite) or UBI ndjson file.")],
    config: ConfigOpt = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment name (default: the config's).")] = None,
    unit: UnitOpt = None,
    alpha: Annotated[float | None, typer.Option(help="Significance level (default: the config's, 0.05).")] = None,
    power: Annotated[float | None, typer.Option(help="Power for the MDE (default: the config's, 0.8).")] = None,
    json_out: JsonOpt = None,
    html_out: HtmlOpt = None,
    markdown_out: MarkdownOpt = None,
) -> None:
    """Analyse an experiment: per-variant CTR, clicks per search, add-to-cart and order rates at the
    randomisation unit (delta method), relative lifts with CIs, Welch t-tests, the sample-ratio
    check, the MDE for the traffic seen; for interleaving, the preference test. The experiment
    (variants, split, unit, design) comes from the `ab` section of --config."""
    from shopsearch.experiments.analysis import analyze as run_analysis
    from shopsearch.experiments.ubi import load_events

    cfg = _experiment(config, name=experiment, unit=unit, alpha=alpha, power=power)
    with console.status("reading events"):
        frame, report = load_events(events)
    if len(report):
        console.print(f"[yellow]event file:[/] {report.summary(limit=5)}")
    result = run_analysis(cfg, frame)
    out.print(result.to_markdown(), soft_wrap=True)
    _write(result, json_out, html_out, markdown_out)


@app.command("simulate")
def simulate(
    demo: Annotated[bool, typer.Option("--demo", help="Use the SYNTHETIC demo shop (no data needed).")] = False,
    demo_products: Annotated[int, typer.Option(help="--demo: products in the generated shop.")] = 1000,
    demo_queries: Annotated[int, typer.Option(help="--demo: judged queries in the generated shop.")] = 200,
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    format: FormatOpt = None,
    scheme: SchemeOpt = None,
    on_error: OnErrorOpt = None,
    text_field: TextFieldOpt = None,
    run_a: Annotated[Path | None, typer.Option(help="TREC run of system A (the control).")] = None,
    run_b: Annotated[Path | None, typer.Option(help="TREC run of system B.")] = None,
    system_a: Annotated[str | None, typer.Option(help="System A spec: bm25 | dense | dense:PATH | hybrid ...")] = None,
    system_b: Annotated[str | None, typer.Option(help="System B spec (default with --demo: bm25 vs hybrid).")] = None,
    index: Annotated[Path | None, typer.Option(help="Serve the system specs from a built index directory.")] = None,
    config: ConfigOpt = None,
    design: DesignOpt = None,
    unit: UnitOpt = None,
    users: Annotated[int, typer.Option(min=1, help="Simulated shoppers.")] = 5000,
    sessions_per_user: Annotated[float, typer.Option(help="Mean extra sessions per shopper (Poisson).")] = 0.5,
    searches_per_session: Annotated[float, typer.Option(help="Mean extra searches per session (Poisson).")] = 1.0,
    click_model: Annotated[str, typer.Option(help="pbm (position-based) | cascade.")] = "pbm",
    lift: Annotated[float, typer.Option(help="Plant this relative CTR lift on B (e.g. 0.03).")] = 0.0,
    depth: Annotated[int, typer.Option("-k", "--depth", min=1, help="Products shown per search.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the simulation (and of --demo's shop).")] = 0,
    repeat: Annotated[int, typer.Option(help="Also run N replicate experiments and report the rate of "
                                        "significant results (false-positive rate or power).")] = 0,
    store: Annotated[Path | None, typer.Option(help="Append the simulated events to this event store.")] = None,
    ubi: Annotated[Path | None, typer.Option(help="Write the simulated events as UBI ndjson.")] = None,
    json_out: JsonOpt = None,
    html_out: HtmlOpt = None,
    markdown_out: MarkdownOpt = None,
) -> None:
    """Replay judged queries through two variants with a click model (PBM or cascade) and analyse
    the simulated experiment end to end. Rankings come from two TREC runs (--run-a/--run-b) or two
    system specs (--system-a/--system-b) over the catalogue; judgments give the grades the
    click model turns into clicks. Writes events to a store and/or UBI ndjson if asked."""
    from shopsearch.experiments.clickmodels import ClickModel
    from shopsearch.experiments.rankings import rankings_from_systems, rankings_from_trec
    from shopsearch.experiments.simulation import Traffic, replicate
    from shopsearch.experiments.simulation import simulate as run_simulation

    if (run_a is None) != (run_b is None):
        raise typer.BadParameter("give both --run-a and --run-b")
    if run_a is not None and (system_a or system_b):
        raise typer.BadParameter("give two runs or two system specs, not both")
    text_fields: Any = None
    if demo:
        from shopsearch.cli.demo_cmd import DEMO_TEXT_FIELDS
        from shopsearch.data.demo import DemoShopConfig, generate_demo_shop

        with console.status("generating the demo shop"):
            dataset = generate_demo_shop(DemoShopConfig(n_products=demo_products, n_queries=demo_queries, seed=seed))
        console.print(f"[yellow]SYNTHETIC demo shop:[/] {len(dataset.catalog):,} products, "
                      f"{len(dataset.queries):,} judged queries")
        text_fields = DEMO_TEXT_FIELDS
        if run_a is None:
            system_a, system_b = system_a or "bm25", system_b or "hybrid"
    else:
        settings = merge_settings(None, data=data_flags(
            catalog=catalog, judgments=judgments, queries=queries, format=format, scheme=scheme, on_error=on_error,
            text_field=text_field))
        dataset = load_data(settings.data)
        text_fields = settings.data.text_fields
    with console.status("ranking the judged queries"):
        if run_a is not None and run_b is not None:
            rankings = rankings_from_trec(run_a, run_b, dataset, k=depth)
        elif system_a and system_b:
            rankings = rankings_from_systems(dataset, (system_a, system_b), k=depth, index_dir=index,
                                             text_fields=text_fields)
        else:
            raise typer.BadParameter("give --run-a/--run-b or --system-a/--system-b (or --demo)")
    names = list(rankings.systems)
    modes = [n if n in ("bm25", "dense", "hybrid") else "hybrid" for n in names]
    default = {"name": "simulated", "variants": [{"name": n, "mode": m} for n, m in zip(names, modes, strict=True)]}
    cfg = _experiment(config, default, design=design, unit=unit)
    model = ClickModel(kind=click_model)  # type: ignore[arg-type]
    traffic = Traffic(users, sessions_per_user, searches_per_session)
    with console.status(f"simulating {users:,} shoppers"):
        sim = run_simulation(rankings, cfg, traffic, model, lift=lift, seed=seed)
        events = sim.events()
    console.print(f"simulated {len(sim.search_query):,} searches, {len(events):,} events over {len(rankings):,} "
                  f"judged queries ({'; '.join(rankings.notes) or 'all judged queries ranked'})")
    if store is not None:
        from shopsearch.experiments.events import EventStore

        with EventStore(store) as s:
            added = s.append_frame(events)
        console.print(f"event store {store}: {added:,} events added")
    if ubi is not None:
        from shopsearch.experiments.ubi import write_ubi

        counts = write_ubi(events, ubi)
        console.print(f"UBI ndjson {ubi}: {counts['queries']:,} query and {counts['events']:,} event records")
    from shopsearch.experiments.analysis import analyze as run_analysis

    result = run_analysis(cfg, events, notes=rankings.notes, extra={"synthetic": True, "truth": sim.truth})
    if repeat and cfg.design == "ab":
        reps = replicate(rankings, cfg, traffic, model, lift=lift, n=repeat, seed=seed)
        # with no planted lift a significant result is a false positive; with one, a detection must go its way
        rate = float(reps["detected"].mean() if lift else reps["p_value"].lt(cfg.alpha).mean())
        label = "false-positive rate" if lift == 0 else "power"
        result.extra["replicates"] = {"n": repeat, label: rate, "mean_mde_rel": float(reps["mde_rel"].mean())}
        result.notes.append(f"{repeat} replicate experiments at this traffic: {label} {rate:.3f} at alpha {cfg.alpha}")
    out.print(result.to_markdown(), soft_wrap=True)
    _write(result, json_out, html_out, markdown_out)
