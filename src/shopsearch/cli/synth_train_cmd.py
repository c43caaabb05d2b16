"""The two ``shopsearch synth`` commands that fine-tune models: ``train-judge`` (the business relevance
classifier ``pairs`` judges with) and ``train-rewriter`` (SFT, then GRPO). Registered on the
``synth`` app by :mod:`shopsearch.cli.synth_cmd`.
"""

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
    TextFieldOpt,
    console,
    load_data,
)
from shopsearch.cli.synth_common import (
    JudgeOpt,
    OutputOpt,
    SemanticPrecisionOpt,
    SemanticThresholdOpt,
    judge_settings,
    load_dataset,
    pipeline_models,
    settings,
    summary_table,
)
from shopsearch.config import DataSettings


def train_judge_command(
    output: OutputOpt,
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = None,
    text_field: TextFieldOpt = None,
    dev_judgments: Annotated[
        Path | None, typer.Option(help="Judgments to calibrate the threshold on (same catalogue).")
    ] = None,
    dev_fraction: Annotated[
        float | None,
        typer.Option(help="Without --dev-judgments: hold out this share of queries to calibrate."),
    ] = None,
    base_model: Annotated[
        str | None, typer.Option(help="Cross-encoder body (default: bundled all-MiniLM-L6-v2).")
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Training epochs (default 1).")] = None,
    max_pairs: Annotated[int | None, typer.Option(help="Train on at most N pairs.")] = None,
    time_budget: Annotated[
        float | None, typer.Option(help="Seconds of training; the pairs are sized to fit.")
    ] = None,
    target_precision: Annotated[
        float | None, typer.Option(help="Calibrate the threshold to this dev precision (0.9).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Fine-tune the business relevance classifier (a cross-encoder on the shop's graded judgments)
    that `synth pairs` uses, and calibrate its acceptance threshold on dev to a stated precision.
    Settings: `synth.judge_training` (ClassifierTrainConfig)."""
    from shopsearch.cli.train_cmd import split_by_query
    from shopsearch.synthesis.judges import ClassifierTrainConfig, train_relevance_classifier

    cfg = settings(
        ClassifierTrainConfig,
        config,
        "judge_training",
        base_model=base_model,
        epochs=epochs,
        max_pairs=max_pairs,
        time_budget_s=time_budget,
        target_precision=target_precision,
        threads=threads,
        text_fields=text_field or None,
    )
    dataset, data = load_dataset(
        config, catalog=catalog, judgments=judgments, queries=queries, format=format, on_error=on_error
    )
    dev = None
    if dev_judgments is not None:
        dev = load_data(DataSettings(**{**data.model_dump(), "judgments": dev_judgments}))
    elif dev_fraction:
        dataset, dev = split_by_query(dataset, dev_fraction, cfg.seed)
    else:
        console.print(
            "[yellow]no --dev-judgments / --dev-fraction: the threshold stays an uncalibrated 0.5[/]"
        )
    run = train_relevance_classifier(dataset, output, cfg, dev=dev, show_progress=True)
    rows: list[tuple[str, Any]] = [
        ("pairs trained on", run.n_pairs),
        ("judged pairs", run.n_judged_pairs),
        ("steps", run.training["steps"]),
        ("seconds", run.training["seconds"]),
    ]
    if run.calibration is not None:
        c = run.calibration
        rows += [
            ("threshold", c.threshold),
            (f"dev precision (target {c.target_precision})", c.precision),
            ("dev recall", c.recall),
            ("dev AUC", c.auc),
            ("target reached", c.reached),
        ]
    summary_table(f"business judge → {output}", rows)


def _progress_callback(label: str) -> Any:
    """A transformers callback drawing a rich progress bar (TRL's own bar is off in our trainer args)."""
    from rich.progress import Progress
    from transformers import TrainerCallback

    class _Bar(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = Progress(console=console)
            self.bar.start()
            self.task = self.bar.add_task(label, total=state.max_steps or None)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.update(self.task, completed=state.global_step)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.stop()

    return _Bar()


def train_rewriter_command(
    catalog: CatalogOpt = None,
    judgments: JudgmentsOpt = None,
    queries: QueriesOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = None,
    text_field: TextFieldOpt = None,
    rewrites: Annotated[
        Path | None, typer.Option("--rewrites", help="Rewrites to select SFT targets from (SFT stage).")
    ] = None,
    seeds: Annotated[
        Path | None,
        typer.Option("--seeds", help="Seeds whose prompts GRPO trains on (default: the rewrites' seeds)."),
    ] = None,
    stage: Annotated[str, typer.Option(help="sft | grpo | both.")] = "both",
    base_model: Annotated[
        Path | None, typer.Option(help="Local instruct causal-LM directory to fine-tune.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run directory (default runs/rewriter).")
    ] = None,
    sft_steps: Annotated[int | None, typer.Option(help="SFT max steps (overrides epochs).")] = None,
    grpo_steps: Annotated[int | None, typer.Option(help="GRPO steps (default 300).")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda.")] = None,
    judge: JudgeOpt = None,
    semantic_threshold: SemanticThresholdOpt = None,
    semantic_precision: SemanticPrecisionOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train the multi-candidate rewriter: best-of-n SFT targets selected by the rewards from
    `synth rewrite` output, SFT, then GRPO with the rewards (relevance, good rate, product language,
    diversity, novelty, format) as separate reward functions. The result loads with `synth rewrite
    --backend transformers --model RUN/grpo/model`. Settings: `synth.rewriter_training`."""
    from shopsearch.synthesis.provenance import RetrievalSettings
    from shopsearch.synthesis.rewriter import read_rewrites
    from shopsearch.synthesis.rewriter_training.config import RewriterTrainConfig
    from shopsearch.synthesis.rewriter_training.grpo import reward_curves, train_grpo
    from shopsearch.synthesis.rewriter_training.sft import train_sft
    from shopsearch.synthesis.rewriter_training.sft_data import (
        build_sft_examples,
        score_rewrites,
        write_sft_set,
    )
    from shopsearch.synthesis.seeds import read_seeds

    if stage not in ("sft", "grpo", "both"):
        raise typer.BadParameter("--stage must be sft, grpo or both")
    if stage != "grpo" and rewrites is None:
        raise typer.BadParameter("SFT selects its targets from rewrites: give --rewrites (or --stage grpo)")
    if stage == "grpo" and rewrites is None and seeds is None:
        raise typer.BadParameter("GRPO needs prompts: give --seeds or --rewrites")
    cfg = settings(
        RewriterTrainConfig,
        config,
        "rewriter_training",
        base_model=base_model,
        output_dir=output,
        device=device,
        **{"sft.max_steps": sft_steps, "grpo.max_steps": grpo_steps},
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
    rewards = pipeline_models(judges, dataset, data, RetrievalSettings()).rewards()
    table = read_rewrites(rewrites) if rewrites is not None else None
    rows: list[tuple[str, Any]] = []
    if stage in ("sft", "both"):
        assert table is not None  # checked above
        with console.status(f"scoring {len(table):,} seeds' rewrites for best-of-n selection"):
            scores = score_rewrites(table, rewards, weights=cfg.reward.weights, k=cfg.reward.k)
        examples, counts = build_sft_examples(scores, cfg)
        write_sft_set(examples, counts, cfg.output_dir / "sft_data", cfg)
        sft = train_sft(cfg, examples, callbacks=[_progress_callback("SFT")])
        rows += [
            ("SFT examples", counts.kept),
            ("SFT seeds dropped", counts.seeds - counts.kept),
            ("SFT steps", sft.steps),
            ("SFT loss", sft.train_loss or float("nan")),
            ("SFT model", sft.model_dir),
        ]
    if stage in ("grpo", "both"):
        prompts = read_seeds(seeds) if seeds is not None else table
        grpo = train_grpo(cfg, prompts, rewards, callbacks=[_progress_callback("GRPO")])
        curve = reward_curves(grpo.log_history).get("reward") or []
        rows += [
            ("GRPO steps", grpo.steps),
            ("GRPO reward first → last", f"{curve[0][1]:.3f} → {curve[-1][1]:.3f}" if curve else "n/a"),
            ("GRPO model", grpo.model_dir),
        ]
    summary_table(f"rewriter training → {cfg.output_dir}", rows)
