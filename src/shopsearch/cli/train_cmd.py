"""``shopsearch train``: two-stage training of the Siamese dual encoder on a shop's judgments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
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
from shopsearch.data.schema import Dataset


def split_by_query(dataset: Dataset, dev_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out a seeded share of the judged queries (by query, so no query is on both sides)."""
    qids = np.array(sorted(set(dataset.judgments.df["query_id"])), dtype=object)
    rng = np.random.default_rng(seed)
    dev = set(rng.choice(qids, size=max(1, round(dev_fraction * len(qids))), replace=False))
    train_set, dev_set = dataset.subset([q for q in qids if q not in dev]), dataset.subset(dev)
    train_set.meta["split"] = f"train (queries not held out; seed {seed})"
    dev_set.meta["split"] = f"dev ({dev_fraction:.0%} of the queries held out; seed {seed})"
    return train_set, dev_set


def train(
    output: Annotated[Path, typer.Option("--output", "-o", help="Run directory: model/, stage1/, stage2/, metrics.jsonl, manifest.json.")],
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    dev_judgments: Annotated[
        Path | None, typer.Option(help="Dev judgments (same catalogue) for evaluation and best-checkpoint choice.")
    ] = None,
    dev_fraction: Annotated[
        float | None, typer.Option(help="Without --dev-judgments: hold out this share of the queries as dev (e.g. 0.1).")
    ] = None,
    format: FormatOpt = None,
    stage: Annotated[str | None, typer.Option(help="1 (contrastive), 2 (ROAR from --model) or both.")] = None,
    model: Annotated[str | None, typer.Option(help="Base encoder directory (default: bundled all-MiniLM-L6-v2).")] = None,
    stage1_loss: Annotated[str | None, typer.Option(help="masked_infonce | infonce")] = None,
    stage2_loss: Annotated[str | None, typer.Option(help="roar | bradley_terry | listmle")] = None,
    hard_negatives: Annotated[int | None, typer.Option(help="Mined hard negatives per pair (0 = in-batch only).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Stage-1 batch size (pairs).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Stage-1 epochs.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop each stage after N steps (smoke runs).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of sampling, mining and initialisation.")] = None,
    final_model: Annotated[
        str | None,
        typer.Option(help="OUTPUT/model: last_stage (default) or best_dev (the stage with the best dev NDCG@10)."),
    ] = None,
    extra_pairs: Annotated[
        list[Path] | None, typer.Option(help="Extra (query, product_id) pair files, e.g. synthetic pairs; repeatable.")
    ] = None,
    events: Annotated[
        list[Path] | None, typer.Option(help="Behaviour logs (query, product_id, event, count) or UBI ndjson; repeatable.")
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(help="Distil a teacher into stage 2: hybrid (BM25 + the stage-1 model), cross_encoder "
                          "(--teacher-model) or both; turns distillation on (weight 1.0 unless --distill-weight)."),
    ] = None,
    teacher_model: Annotated[
        Path | None, typer.Option(help="The cross-encoder teacher: a `train-reranker` model directory or its ONNX export.")
    ] = None,
    distill_weight: Annotated[float | None, typer.Option(help="Weight of the distillation term (0 = off).")] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue a killed run from its checkpoints.")] = True,
    text_field: TextFieldOpt = None,
    on_error: OnErrorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train the Siamese dual encoder in two stages — masked InfoNCE with mined hard negatives,
    then ROAR over graded groups (optionally distilling a teacher's scores: --teacher) — evaluating
    on dev during each and keeping each stage's best checkpoint, and save the last stage's model in the sentence-transformers format
    (`SentenceTransformer(OUTPUT/model)` opens it). Settings come from the `train` section of
    --config, overridden by flags."""
    from shopsearch.training.config import TrainConfig
    from shopsearch.training.trainer import train as run_training

    settings = merge_settings(
        config,
        data=dict(catalog=catalog, judgments=judgments, queries=queries, format=format, on_error=on_error),
    )
    raw = read_config_file(config).get("train") or {}
    flags = nest_flags({
        "stage": stage, "encoder.base_model": model, "stage1.loss": stage1_loss, "stage2.loss": stage2_loss,
        "stage1.hard_negatives": hard_negatives, "stage1.batch_size": batch_size, "stage1.epochs": epochs,
        "max_steps": max_steps, "seed": seed, "final_model": final_model, "extra_pairs": extra_pairs, "events": events,
        "text_fields": text_field or None, "stage2.teacher": teacher, "stage2.teacher_model": teacher_model,
        "stage2.distill_weight": distill_weight if distill_weight is not None else (1.0 if teacher else None),
    })
    try:
        cfg = TrainConfig.model_validate(deep_merge(raw, flags))
    except Exception as exc:  # pydantic ValidationError: one line per problem
        raise ConfigError(f"invalid train settings: {exc}") from None
    dataset = load_data(settings.data)
    dev_set = None
    if dev_judgments is not None:
        dev_set = load_data(DataSettings(**{**settings.data.model_dump(), "judgments": dev_judgments}))
    elif dev_fraction:
        dataset, dev_set = split_by_query(dataset, dev_fraction, cfg.seed)
        console.print(f"held out {len(dev_set.queries):,} queries as dev ({dev_fraction:.0%}, seed {cfg.seed})")
    result = run_training(dataset, cfg, output, dev_set=dev_set, resume=resume)
    chosen = result.manifest["chosen_stage"]
    console.print(f"model: [bold]{result.model_dir}[/] (stage {chosen}); log: {Path(output) / 'metrics.jsonl'}")
    for st, info in result.manifest["stages"].items():
        dev = info.get("dev_final") or {}
        figures = ", ".join(f"{k[4:]} {v:.4f}" for k, v in dev.items())
        console.print(f"stage {st}: {info['steps']} steps in {info['seconds']:.0f} s; dev {figures or 'n/a'}")
