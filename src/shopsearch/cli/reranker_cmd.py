"""``shopsearch train-reranker``: a cross-encoder that re-ranks a first stage's top N, trained on the judgments."""

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
    deep_merge,
    load_data,
    nest_flags,
)
from shopsearch.config import ConfigError, DataSettings, merge_settings, read_config_file


def train_reranker(
    output: Annotated[Path, typer.Option("--output", "-o", help="Run directory: model/, pairs.parquet, checkpoints/, manifest.json.")],
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    dev_judgments: Annotated[
        Path | None, typer.Option(help="Dev judgments (same catalogue): evaluations and the kept checkpoint.")
    ] = None,
    dev_fraction: Annotated[
        float | None, typer.Option(help="Without --dev-judgments: hold out this share of the queries as dev.")
    ] = None,
    format: FormatOpt = None,
    index: Annotated[
        Path | None, typer.Option(help="Index directory of the catalogue: its BM25 and vectors serve the first stage.")
    ] = None,
    first_stage: Annotated[
        str | None, typer.Option(help="System whose top products are mined and re-ranked (default hybrid; any --system spec).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Base model directory (default: bundled all-MiniLM-L6-v2).")] = None,
    layers: Annotated[
        int | None, typer.Option(help="Keep the base model's bottom N transformer layers: cheaper per pair.")
    ] = None,
    negatives: Annotated[int | None, typer.Option(help="Unjudged first-stage products per query, as label 0.")] = None,
    mining_depth: Annotated[int | None, typer.Option(help="Negatives come from the first stage's top this many.")] = None,
    rerank_depth: Annotated[int | None, typer.Option(help="First-stage hits re-ranked in dev evaluations.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Epochs over the pairs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Pairs per step.")] = None,
    loss: Annotated[
        str | None, typer.Option(help="bce (pointwise, default) | lambdaloss | listnet (listwise over each query's pairs).")
    ] = None,
    time_budget: Annotated[float | None, typer.Option(help="Seconds of training: the pairs are cut to fit.")] = None,
    eval_steps: Annotated[int | None, typer.Option(help="Steps between dev evaluations (default: the end only).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of mining, sampling and the new head.")] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from the run's pairs and checkpoints.")] = True,
    text_field: TextFieldOpt = None,
    on_error: OnErrorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train a cross-encoder re-ranker on the shop's graded judgments: judged pairs with soft targets
    (grade / max grade) and hard negatives mined from the first stage's top products, binary
    cross-entropy, dev NDCG@10 of the re-ranked first stage every --eval-steps and at the end, the
    best kept. OUTPUT/model opens with `CrossEncoder(path)`; evaluate or serve it as
    `--system "hybrid>rerank:OUTPUT/model@50"`. With dev judgments its threshold as the synthesis
    business judge is calibrated too (`synth ... --judge OUTPUT/model`). Settings come from the `reranker` section of --config,
    overridden by flags."""
    from shopsearch.cli.train_cmd import split_by_query
    from shopsearch.data.render import ProductTextRenderer
    from shopsearch.eval.pipeline import systems_from_index
    from shopsearch.retrieval.systems import build_systems
    from shopsearch.training.reranker import RerankerConfig
    from shopsearch.training.reranker import train_reranker as run

    settings = merge_settings(
        config, data=dict(catalog=catalog, judgments=judgments, queries=queries, format=format, on_error=on_error),
    )
    raw = read_config_file(config).get("reranker") or {}
    flags = nest_flags({
        "first_stage": first_stage, "base_model": model, "num_layers": layers, "negatives_per_query": negatives,
        "mining_depth": mining_depth, "rerank_depth": rerank_depth, "epochs": epochs, "batch_size": batch_size, "loss": loss,
        "time_budget_s": time_budget, "eval_steps": eval_steps, "seed": seed, "text_fields": text_field or None,
    })
    try:
        cfg = RerankerConfig.model_validate(deep_merge(raw, flags))
    except Exception as exc:  # pydantic ValidationError: one line per problem
        raise ConfigError(f"invalid reranker settings: {exc}") from None
    dataset = load_data(settings.data)
    dev_set = None
    if dev_judgments is not None:
        dev_set = load_data(DataSettings(**{**settings.data.model_dump(), "judgments": dev_judgments}))
    elif dev_fraction:
        dataset, dev_set = split_by_query(dataset, dev_fraction, cfg.seed)
        console.print(f"held out {len(dev_set.queries):,} queries as dev ({dev_fraction:.0%}, seed {cfg.seed})")
    texts = ProductTextRenderer(fields=cfg.text_fields).render(dataset.catalog)
    with console.status(f"building the first stage {cfg.first_stage}"):
        if index is not None:
            system = systems_from_index([cfg.first_stage], index, texts, dataset.catalog.ids)[cfg.first_stage]
        else:
            system = next(iter(build_systems([cfg.first_stage], dataset.catalog.ids, texts).values()))
    figures = run(dataset, system, output, cfg, dev=dev_set, resume=resume)
    console.print(f"model: [bold]{Path(output) / 'model'}[/]; {figures['pairs']:,} pairs "
                  f"({figures['judged_pairs']:,} judged), {figures['steps']} steps in {figures['seconds']:.0f} s")
    dev = figures.get("dev")
    if dev:
        console.print(f"dev NDCG@10 over {dev['queries']} queries: {cfg.first_stage} {dev['first_stage_ndcg@10']:.4f}"
                      f" -> re-ranked top {cfg.rerank_depth} {dev['reranked_ndcg@10']:.4f} (step {dev['kept_step']})")
        fusion = dev.get("fusion")
        if fusion:
            console.print(f"fused with the first stage (weight {fusion['fusion_weight']}, stored with the model): "
                          f"{fusion['dev_ndcg@10']:.4f}")
    if dev_set is not None:  # one cross-encoder for re-ranking and for judging synthetic pairs
        from shopsearch.synthesis.judges.training import calibrate_reranker_judge

        with console.status("calibrating the model's threshold as a synthesis judge on dev"):
            calibration, report = calibrate_reranker_judge(Path(output) / "model", dev_set,
                                                           target_precision=cfg.judge_target_precision, seed=cfg.seed)
        console.print(f"as a synthesis judge (`synth run --judge {Path(output) / 'model'}`): threshold "
                      f"{calibration.threshold:.3f}, dev precision {report['precision']:.3f}, "
                      f"recall {report['recall']:.3f}")
