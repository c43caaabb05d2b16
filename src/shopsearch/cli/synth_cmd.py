"""``shopsearch synth``: synthetic training data for long-tail queries (METHOD.md part B, Taobao 2026).

One command per step, each a thin wrapper over :mod:`shopsearch.synthesis`:
``seeds`` → ``rewrite`` → (``train-judge``) → ``pairs`` (→ ``audit``) → ``shopsearch train --extra-pairs``
→ ``evaluate``; ``train-rewriter`` fine-tunes the rewriter (SFT, then GRPO). Settings come from the
``synth`` section of ``--config``, one subsection per step (``synth.seeds``, ``synth.llm``,
``synth.rewriter``, ``synth.judge_training``, ``synth.judges``, ``synth.pipeline``,
``synth.rewriter_training``, ``synth.evaluate``); flags override the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopsearch.cli.common import (
    CatalogOpt,
    ConfigOpt,
    FormatOpt,
    JudgmentsOpt,
    OnErrorOpt,
    QueriesOpt,
    TextFieldOpt,
    console,
    out,
)
from shopsearch.cli.synth_audit_cmd import audit_command
from shopsearch.cli.synth_common import (
    BackendOpt,
    BaseUrlOpt,
    CacheDirOpt,
    JudgeOpt,
    ModelOpt,
    OutputOpt,
    SeedsDirOpt,
    SemanticPrecisionOpt,
    SemanticThresholdOpt,
    ThreadsOpt,
    build_llm,
    judge_settings,
    load_dataset,
    pipeline_models,
    settings,
    summary_table,
)
from shopsearch.cli.synth_train_cmd import train_judge_command, train_rewriter_command

app = typer.Typer(
    help="Synthetic (query, product) training pairs for long-tail queries: seeds → LLM rewrites → offline "
    "retrieval → two judges → pairs for `shopsearch train --extra-pairs`. Runs offline by default "
    "(the bundled SmolLM2 GGUF through llama-cpp-python).",
    no_args_is_help=True,
)


def seeds_command(
    output: OutputOpt,
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = None,
    text_field: TextFieldOpt = None,
    tier: Annotated[
        list[str] | None,
        typer.Option("--tier", help="Frequency tier to keep, repeatable (default: TAIL, ONCE ONLY)."),
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option(
            "--type", help="Query type to keep, repeatable: qa negative alternative knowledge plain."
        ),
    ] = None,
    max_seeds: Annotated[
        int | None, typer.Option(help="Cap, filled round-robin over types so rare types survive.")
    ] = None,
    per_type_max: Annotated[int | None, typer.Option(help="Cap per query type.")] = None,
    proxy: Annotated[
        str | None, typer.Option(help="Frequency proxy without traffic counts: auto | idf | length.")
    ] = None,
    tagger: Annotated[
        str, typer.Option(help="Query typing: rules (default) | llm (the synth.llm backend).")
    ] = "rules",
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Select the long-tail seed queries (TAIL and ONCE ONLY tiers by traffic, or by a stated proxy),
    type them (qa / negative / alternative / knowledge / plain) and write seeds.parquet + manifest.
    No label travels with a seed. Settings: `synth.seeds` (SeedConfig)."""
    from shopsearch.synthesis.query_types import LLMQueryTagger
    from shopsearch.synthesis.seeds import SeedConfig, seeds_from_dataset

    if tagger not in ("rules", "llm"):
        raise typer.BadParameter("--tagger must be 'rules' or 'llm'")
    cfg = settings(
        SeedConfig,
        config,
        "seeds",
        tiers=tier,
        types=type_,
        max_seeds=max_seeds,
        per_type_max=per_type_max,
        **{"strata.proxy": proxy},
    )
    dataset, data = load_dataset(
        config,
        catalog=catalog,
        judgments=judgments,
        queries=queries,
        format=format,
        on_error=on_error,
        text_field=text_field,
    )
    llm_tagger = (
        LLMQueryTagger(build_llm(config, backend, model, base_url, None, None)) if tagger == "llm" else None
    )
    with console.status("selecting seeds"):
        seeds = seeds_from_dataset(dataset, cfg, text_fields=data.text_fields, tagger=llm_tagger)
    seeds.write(output, source=dataset.summary())
    counts = seeds.method["counts"]
    rows = [
        ("queries", counts["queries"]),
        (f"in tiers {list(cfg.tiers)}", counts["in_tiers"]),
        ("tier method", seeds.method["frequency"].get("method", "?")),
        ("seeds", counts["seeds"]),
    ]
    rows += [(f"  {t}", n) for t, n in counts["seed_types"].items()]
    summary_table(f"seeds → {output}", rows)


def rewrite_command(
    seeds: SeedsDirOpt,
    output: OutputOpt,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    cache_dir: CacheDirOpt = None,
    threads: ThreadsOpt = None,
    n: Annotated[int | None, typer.Option("--n", help="Candidate rewrites per seed (default 5).")] = None,
    style: Annotated[
        str | None, typer.Option(help="list (one numbered answer) | single (n samples).")
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (default 0.8).")] = None,
    shots: Annotated[int | None, typer.Option(help="Few-shot examples per prompt (default 2).")] = None,
    batch_size: Annotated[int, typer.Option(help="Seeds per resumable part file.")] = 16,
    limit: Annotated[int | None, typer.Option(help="Rewrite only the first N seeds (a trial run).")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start again when OUTPUT holds other settings' rewrites.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Ask the LLM for n candidate rewrites of every seed, with a few-shot prompt per query type;
    parse them robustly (format penalty, never a crash) and write rewrites.parquet. Resumable: rerun
    the same command after an interruption. Settings: `synth.llm`, `synth.rewriter` (RewriterConfig)."""
    from shopsearch.artifacts import read_manifest
    from shopsearch.synthesis.rewriter import MultiCandidateRewriter, RewriterConfig, rewrite_seeds

    cfg = settings(RewriterConfig, config, "rewriter", n=n, style=style, temperature=temperature, shots=shots)
    llm = build_llm(config, backend, model, base_url, cache_dir, threads)
    path = rewrite_seeds(
        seeds,
        output,
        MultiCandidateRewriter(llm, cfg),
        batch_size=batch_size,
        limit=limit,
        overwrite=overwrite,
    )
    s = read_manifest(path, verify=False)["summary"]
    rows = [
        ("backend", llm.name),
        ("seeds rewritten", s["rewritten"]),
        ("resumed from", s["resumed_from"]),
        ("format ok", f"{s['format_ok_rate']:.1%}"),
        ("mean candidates", s["mean_candidates"]),
        ("seeds without a candidate", s["no_candidates"]),
    ]
    rows += [
        (f"  {t}: format ok", f"{v['format_ok_rate']:.1%} of {v['seeds']}") for t, v in s["by_type"].items()
    ]
    summary_table(f"rewrites → {path}", rows)


def pairs_command(
    rewrites: Annotated[
        Path, typer.Option("--rewrites", help="Rewrites directory written by `synth rewrite`.")
    ],
    output: OutputOpt,
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = None,
    text_field: TextFieldOpt = None,
    judge: JudgeOpt = None,
    semantic_threshold: SemanticThresholdOpt = None,
    semantic_precision: SemanticPrecisionOpt = None,
    max_pairs_per_seed: Annotated[
        int | None, typer.Option(help="Cap on the pairs kept per seed (default 20).")
    ] = None,
    top_n: Annotated[int | None, typer.Option(help="Best rewrites searched per seed (default 3).")] = None,
    min_relevance: Annotated[
        float | None, typer.Option(help="Drop rewrites whose relevance reward is below this (0.3).")
    ] = None,
    per_rewrite_k: Annotated[
        int | None, typer.Option(help="Products retrieved per kept rewrite (default 30).")
    ] = None,
    dense_model: Annotated[
        str | None, typer.Option(help="Offline dense model (default: bundled all-MiniLM-L6-v2).")
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Seeds per resumable chunk (default 64).")] = None,
    write_candidates: Annotated[
        bool | None, typer.Option("--write-candidates", help="Also keep every judged pair.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start again when OUTPUT holds another run.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Score the rewrites (relevance, product-side good rate, diversity...), keep the best, retrieve
    products for each with BM25 + dense (RRF), judge every (ORIGINAL query, product) pair with the
    business classifier AND the semantic judge, cap per seed, dedup, and write pairs.parquet (the
    `query, product_id` columns `shopsearch train --extra-pairs` reads). Resumable by chunk.
    Settings: `synth.pipeline` (PipelineConfig), `synth.judges`; data from `data`."""
    from shopsearch.synthesis.pipeline import PipelineConfig, run_pipeline

    cfg = settings(
        PipelineConfig,
        config,
        "pipeline",
        max_pairs_per_seed=max_pairs_per_seed,
        chunk_size=chunk_size,
        write_candidates=write_candidates,
        **{
            "selection.top_n": top_n,
            "selection.min_relevance": min_relevance,
            "retrieval.per_rewrite_k": per_rewrite_k,
            "retrieval.dense_model": dense_model,
        },
    )
    judges = judge_settings(config, judge, semantic_threshold, semantic_precision)
    dataset, data = load_dataset(
        config,
        catalog=catalog,
        judgments=judgments,
        queries=queries,
        format=format,
        on_error=on_error,
        text_field=text_field,
    )
    models = pipeline_models(judges, dataset, data, cfg.retrieval)
    result = run_pipeline(rewrites, output, models, cfg, overwrite=overwrite, progress=False)
    c = result.summary["counts"]
    summary_table(
        f"synthetic pairs → {result.path / 'pairs.parquet'}",
        [
            ("seeds", c["seeds"]),
            ("rewrite candidates", c["candidates"]),
            ("rewrites kept", c["rewrites_kept"]),
            ("(seed, product) pairs retrieved", c["unique_pairs"]),
            ("accepted by business judge", c["accepted_business"]),
            ("accepted by semantic judge", c["accepted_semantic"]),
            ("accepted by both", c["accepted_both"]),
            (f"after cap ({cfg.max_pairs_per_seed}/seed)", c["after_cap"]),
            ("after dedup", c["after_dedup"]),
            ("seeds with pairs", c["seeds_with_pairs"]),
            ("chunks resumed", result.resumed_chunks),
        ],
    )
    console.print(f"next: shopsearch train ... --extra-pairs {result.path / 'pairs.parquet'}")


def evaluate_command(
    seeds: SeedsDirOpt,
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = None,
    text_field: TextFieldOpt = None,
    setting: Annotated[
        str, typer.Option(help="a: seeds were these queries' texts | b: seeds came from training queries.")
    ] = "b",
    system: Annotated[
        list[str] | None,
        typer.Option(
            "--system",
            "-s",
            help=(
                "bm25 | dense | dense:MODEL_PATH | hybrid, repeatable; the first is the baseline (e.g. trained without "
                "the pairs), the others are tested against it."
            ),
        ),
    ] = None,
    classifier: Annotated[
        Path | None, typer.Option(help="Business classifier labelling unjudged items for the good rates.")
    ] = None,
    min_good: Annotated[int | None, typer.Option(help="m of QueryGoodRate@10 (default 3).")] = None,
    n_resamples: Annotated[int | None, typer.Option(help="Randomisation/bootstrap resamples.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON.")] = None,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", help="Write the report as Markdown.")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Compare systems on long-tail evaluation queries per query type: NDCG@10, Recall@100,
    ItemGoodRate@10, QueryGoodRate@10, with paired randomisation tests and bootstrap CIs against the
    first system (Holm). Settings: `synth.evaluate` (SynthEvalConfig)."""
    from shopsearch.data.render import ProductTextRenderer
    from shopsearch.retrieval.systems import build_systems
    from shopsearch.synthesis.evaluation import Setting, SynthEvalConfig, evaluate_setting
    from shopsearch.synthesis.judges import CrossEncoderJudge
    from shopsearch.synthesis.seeds import read_seeds

    if setting not in ("a", "b"):
        raise typer.BadParameter("--setting must be a or b")
    if not system:
        raise typer.BadParameter(
            "give the systems to compare, baseline first, e.g. --system dense:runs/base/model "
            "--system dense:runs/with-pairs/model"
        )
    cfg = settings(SynthEvalConfig, config, "evaluate", min_good=min_good, n_resamples=n_resamples)
    dataset, data = load_dataset(
        config,
        catalog=catalog,
        judgments=judgments,
        queries=queries,
        format=format,
        on_error=on_error,
        text_field=text_field,
    )
    texts = ProductTextRenderer(fields=tuple(data.text_fields)).render(dataset.catalog)
    systems = build_systems(system, dataset.catalog.ids, texts)
    judge = CrossEncoderJudge.load(classifier) if classifier is not None else None
    chosen: Setting = "a" if setting == "a" else "b"
    report = evaluate_setting(
        chosen,
        systems,
        dataset,
        read_seeds(seeds),
        classifier=judge,
        config=cfg,
        dataset_info={"summary": dataset.summary()},
    )
    out.print(report.to_markdown(), soft_wrap=True)
    for label, path, write in (
        ("JSON", json_out, report.write_json),
        ("Markdown", markdown_out, report.write_markdown),
    ):
        if path is not None:
            write(path)
            console.print(f"{label} report: [bold]{path}[/]")


# The commands, in the order `shopsearch synth --help` lists them.
app.command("seeds")(seeds_command)
app.command("rewrite")(rewrite_command)
app.command("train-judge")(train_judge_command)
app.command("pairs")(pairs_command)
app.command("audit")(audit_command)
app.command("train-rewriter")(train_rewriter_command)
app.command("evaluate")(evaluate_command)
