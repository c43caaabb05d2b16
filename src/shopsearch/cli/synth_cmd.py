"""``shopsearch synth``: synthetic training data for long-tail queries (METHOD.md part B, Taobao 2026).

One command per step, each a thin wrapper over :mod:`shopsearch.synthesis`:
``seeds`` → ``rewrite`` → (``train-judge``) → ``pairs`` → ``shopsearch train --extra-pairs`` →
``evaluate``; ``train-rewriter`` fine-tunes the rewriter (SFT, then GRPO). Settings come from the
``synth`` section of ``--config``, one subsection per step (``synth.seeds``, ``synth.llm``,
``synth.rewriter``, ``synth.judge_training``, ``synth.judges``, ``synth.pipeline``,
``synth.rewriter_training``, ``synth.evaluate``); flags override the file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.table import Table

from shopsearch.cli.common import (
    CatalogOpt,
    ConfigOpt,
    FormatOpt,
    JudgmentsOpt,
    OnErrorOpt,
    QueriesOpt,
    TextFieldOpt,
    console,
    data_flags,
    deep_merge,
    load_data,
    nest_flags,
    out,
)
from shopsearch.config import ConfigError, DataSettings, merge_settings, read_config_file
from shopsearch.data.schema import Dataset

app = typer.Typer(
    help="Synthetic (query, product) training pairs for long-tail queries: seeds → LLM rewrites → offline "
    "retrieval → two judges → pairs for `shopsearch train --extra-pairs`. Runs offline by default "
    "(the bundled SmolLM2 GGUF through llama-cpp-python).",
    no_args_is_help=True,
)
SUBSECTIONS = ("seeds", "llm", "rewriter", "judge_training", "judges", "pipeline", "rewriter_training", "evaluate")


# ---------------------------------------------------------------------------------------------
# Settings: the synth section of a config file, validated, with flags on top.
# ---------------------------------------------------------------------------------------------


class LLMSettings(BaseModel):
    """``synth.llm``: which backend answers the rewriter (and the LLM tagger)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["llama_cpp", "openai", "transformers"] = "llama_cpp"
    model: str | None = None  # GGUF alias or path | server model name | local LM directory
    base_url: str | None = None
    cache_dir: Path | None = None
    n_threads: int | None = Field(None, ge=1)
    n_ctx: int = Field(2048, ge=256)
    max_concurrency: int = Field(4, ge=1)
    timeout: float = Field(120.0, gt=0)
    device: str | None = None

    def build(self) -> Any:
        from shopsearch.synthesis.llm import build_backend

        per_kind = {"llama_cpp": ("model", "n_threads", "n_ctx"), "transformers": ("model", "device"),
                    "openai": ("base_url", "model", "cache_dir", "max_concurrency", "timeout")}
        options = {k: getattr(self, k) for k in per_kind[self.backend] if getattr(self, k) is not None}
        if self.backend == "openai" and "model" not in options and "base_url" in options:
            options["model"] = "default"  # llama.cpp's and most local servers accept any name
        with console.status(f"loading the {self.backend} LLM backend"):
            return build_backend(self.backend, **options)


class JudgeSettings(BaseModel):
    """``synth.judges``: the business classifier (a ``train-judge`` output) and the semantic judge."""

    model_config = ConfigDict(extra="forbid")

    business: Path | None = None
    semantic_model: str | None = None  # None: the bundled all-MiniLM-L6-v2
    semantic_threshold: float | None = None  # None: calibrated on the data's judgments, else 0.5
    semantic_precision: float = Field(0.8, gt=0, le=1)


def _synth(config: Path | None, name: str) -> dict[str, Any]:
    raw = read_config_file(config).get("synth") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{config}: section 'synth' must be a mapping")
    unknown = sorted(set(raw) - set(SUBSECTIONS))
    if unknown:
        raise ConfigError(f"{config}: unknown synth subsection(s) {unknown}; known: {list(SUBSECTIONS)}")
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{config}: synth.{name} must be a mapping")
    return value


def settings(schema: Any, config: Path | None, name: str, /, **flags: Any) -> Any:
    """``synth.<name>`` of the config file, flags on top, validated by the library's schema (pydantic or a
    dataclass); a bad value is a :class:`ConfigError` naming the subsection and the field."""
    values = deep_merge(_synth(config, name), nest_flags(flags))
    where = f"{config}: " if config else ""
    if dataclasses.is_dataclass(schema):
        return _dataclass(schema, values, f"{where}synth.{name}")
    try:
        return schema.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}invalid synth.{name} settings: {problems}") from None


def _dataclass(cls: Any, values: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for key, value in values.items():
        factory = fields[key].default_factory
        default = factory() if factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = _dataclass(type(default), value, f"{where}.{key}")
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # a SynthesisError is a ShopsearchError already: it passes through
        raise ConfigError(f"{where}: {exc}") from None


def _dataset(config: Path | None, **flags: Any) -> tuple[Dataset, DataSettings]:
    data = merge_settings(config, data=data_flags(**flags)).data
    return load_data(data), data


def _table(title: str, rows: list[tuple[str, Any]]) -> None:
    """The one-screen summary every command ends with."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in rows:
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
        table.add_row(name, text)
    out.print(table)


# Options shared by several commands.
SeedsDirOpt = Annotated[Path, typer.Option("--seeds", help="Seeds directory written by `synth seeds` (or a seeds Parquet).")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output directory.")]
BackendOpt = Annotated[str | None, typer.Option(help="LLM backend: llama_cpp (default, offline) | openai | transformers.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="llama_cpp: GGUF path or smollm2-135m / gemma3-270m; openai: model name; transformers: LM directory.")]
BaseUrlOpt = Annotated[str | None, typer.Option(help="openai backend: server URL ending in /v1 (API key: $SHOPSEARCH_LLM_API_KEY).")]
CacheDirOpt = Annotated[Path | None, typer.Option(help="openai backend: on-disk response cache (resumes without paying twice).")]
ThreadsOpt = Annotated[int | None, typer.Option(help="llama_cpp backend: CPU threads (default: half the cores).")]
JudgeOpt = Annotated[Path | None, typer.Option("--judge", help="Business relevance classifier directory (`synth train-judge`).")]
SemanticThresholdOpt = Annotated[float | None, typer.Option(
    help="Semantic judge cosine cut-off (default: calibrated on the data's judgments to --semantic-precision).")]
SemanticPrecisionOpt = Annotated[float | None, typer.Option(help="Target precision of the semantic judge's calibration.")]


def _llm(config: Path | None, backend: str | None, model: str | None, base_url: str | None,
         cache_dir: Path | None, threads: int | None) -> Any:
    return settings(LLMSettings, config, "llm", backend=backend, model=model, base_url=base_url,
                    cache_dir=cache_dir, n_threads=threads).build()


# ---------------------------------------------------------------------------------------------
# Commands.
# ---------------------------------------------------------------------------------------------


@app.command("seeds")
def seeds_command(
    output: OutputOpt,
    catalog: CatalogOpt = None, judgments: JudgmentsOpt = None, queries: QueriesOpt = None, format: FormatOpt = None,
    on_error: OnErrorOpt = None, text_field: TextFieldOpt = None,
    tier: Annotated[list[str] | None, typer.Option("--tier", help="Frequency tier to keep, repeatable (default: TAIL, ONCE ONLY).")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="Query type to keep, repeatable: qa negative alternative knowledge plain.")] = None,
    max_seeds: Annotated[int | None, typer.Option(help="Cap, filled round-robin over types so rare types survive.")] = None,
    per_type_max: Annotated[int | None, typer.Option(help="Cap per query type.")] = None,
    proxy: Annotated[str | None, typer.Option(help="Frequency proxy without traffic counts: auto | idf | length.")] = None,
    tagger: Annotated[str, typer.Option(help="Query typing: rules (default) | llm (the synth.llm backend).")] = "rules",
    backend: BackendOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Select the long-tail seed queries (TAIL and ONCE ONLY tiers by traffic, or by a stated proxy),
    type them (qa / negative / alternative / knowledge / plain) and write seeds.parquet + manifest.
    No label travels with a seed. Settings: `synth.seeds` (SeedConfig)."""
    from shopsearch.synthesis.query_types import LLMQueryTagger
    from shopsearch.synthesis.seeds import SeedConfig, seeds_from_dataset

    if tagger not in ("rules", "llm"):
        raise typer.BadParameter("--tagger must be 'rules' or 'llm'")
    cfg = settings(SeedConfig, config, "seeds", tiers=tier, types=type_, max_seeds=max_seeds,
                   per_type_max=per_type_max, **{"strata.proxy": proxy})
    dataset, data = _dataset(config, catalog=catalog, judgments=judgments, queries=queries, format=format,
                             on_error=on_error, text_field=text_field)
    llm_tagger = LLMQueryTagger(_llm(config, backend, model, base_url, None, None)) if tagger == "llm" else None
    with console.status("selecting seeds"):
        seeds = seeds_from_dataset(dataset, cfg, text_fields=data.text_fields, tagger=llm_tagger)
    seeds.write(output, source=dataset.summary())
    counts = seeds.method["counts"]
    rows = [("queries", counts["queries"]), (f"in tiers {list(cfg.tiers)}", counts["in_tiers"]),
            ("tier method", seeds.method["frequency"].get("method", "?")), ("seeds", counts["seeds"])]
    rows += [(f"  {t}", n) for t, n in counts["seed_types"].items()]
    _table(f"seeds → {output}", rows)


@app.command("rewrite")
def rewrite_command(
    seeds: SeedsDirOpt,
    output: OutputOpt,
    backend: BackendOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, cache_dir: CacheDirOpt = None,
    threads: ThreadsOpt = None,
    n: Annotated[int | None, typer.Option("--n", help="Candidate rewrites per seed (default 5).")] = None,
    style: Annotated[str | None, typer.Option(help="list (one numbered answer) | single (n samples).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (default 0.8).")] = None,
    shots: Annotated[int | None, typer.Option(help="Few-shot examples per prompt (default 2).")] = None,
    batch_size: Annotated[int, typer.Option(help="Seeds per resumable part file.")] = 16,
    limit: Annotated[int | None, typer.Option(help="Rewrite only the first N seeds (a trial run).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start again when OUTPUT holds other settings' rewrites.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Ask the LLM for n candidate rewrites of every seed, with a few-shot prompt per query type;
    parse them robustly (format penalty, never a crash) and write rewrites.parquet. Resumable: rerun
    the same command after an interruption. Settings: `synth.llm`, `synth.rewriter` (RewriterConfig)."""
    from shopsearch.artifacts import read_manifest
    from shopsearch.synthesis.rewriter import MultiCandidateRewriter, RewriterConfig, rewrite_seeds

    cfg = settings(RewriterConfig, config, "rewriter", n=n, style=style, temperature=temperature, shots=shots)
    llm = _llm(config, backend, model, base_url, cache_dir, threads)
    path = rewrite_seeds(seeds, output, MultiCandidateRewriter(llm, cfg), batch_size=batch_size, limit=limit,
                         overwrite=overwrite)
    s = read_manifest(path, verify=False)["summary"]
    rows = [("backend", llm.name), ("seeds rewritten", s["rewritten"]), ("resumed from", s["resumed_from"]),
            ("format ok", f"{s['format_ok_rate']:.1%}"), ("mean candidates", s["mean_candidates"]),
            ("seeds without a candidate", s["no_candidates"])]
    rows += [(f"  {t}: format ok", f"{v['format_ok_rate']:.1%} of {v['seeds']}") for t, v in s["by_type"].items()]
    _table(f"rewrites → {path}", rows)


@app.command("train-judge")
def train_judge_command(
    output: OutputOpt,
    catalog: CatalogOpt = None, judgments: JudgmentsOpt = None, queries: QueriesOpt = None, format: FormatOpt = None,
    on_error: OnErrorOpt = None, text_field: TextFieldOpt = None,
    dev_judgments: Annotated[Path | None, typer.Option(help="Judgments to calibrate the threshold on (same catalogue).")] = None,
    dev_fraction: Annotated[float | None, typer.Option(help="Without --dev-judgments: hold out this share of queries to calibrate.")] = None,
    base_model: Annotated[str | None, typer.Option(help="Cross-encoder body (default: bundled all-MiniLM-L6-v2).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Training epochs (default 1).")] = None,
    max_pairs: Annotated[int | None, typer.Option(help="Train on at most N pairs.")] = None,
    time_budget: Annotated[float | None, typer.Option(help="Seconds of training; the pairs are sized to fit.")] = None,
    target_precision: Annotated[float | None, typer.Option(help="Calibrate the threshold to this dev precision (0.9).")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Fine-tune the business relevance classifier (a cross-encoder on the shop's graded judgments)
    that `synth pairs` uses, and calibrate its acceptance threshold on dev to a stated precision.
    Settings: `synth.judge_training` (ClassifierTrainConfig)."""
    from shopsearch.cli.train_cmd import split_by_query
    from shopsearch.synthesis.judges import ClassifierTrainConfig, train_relevance_classifier

    cfg = settings(ClassifierTrainConfig, config, "judge_training", base_model=base_model, epochs=epochs,
                   max_pairs=max_pairs, time_budget_s=time_budget, target_precision=target_precision,
                   threads=threads, text_fields=text_field or None)
    dataset, data = _dataset(config, catalog=catalog, judgments=judgments, queries=queries, format=format,
                             on_error=on_error)
    dev = None
    if dev_judgments is not None:
        dev = load_data(DataSettings(**{**data.model_dump(), "judgments": dev_judgments}))
    elif dev_fraction:
        dataset, dev = split_by_query(dataset, dev_fraction, cfg.seed)
    else:
        console.print("[yellow]no --dev-judgments / --dev-fraction: the threshold stays an uncalibrated 0.5[/]")
    run = train_relevance_classifier(dataset, output, cfg, dev=dev, show_progress=True)
    rows: list[tuple[str, Any]] = [("pairs trained on", run.n_pairs), ("judged pairs", run.n_judged_pairs),
                                   ("steps", run.training["steps"]), ("seconds", run.training["seconds"])]
    if run.calibration is not None:
        c = run.calibration
        rows += [("threshold", c.threshold), (f"dev precision (target {c.target_precision})", c.precision),
                 ("dev recall", c.recall), ("dev AUC", c.auc), ("target reached", c.reached)]
    _table(f"business judge → {output}", rows)


def _judge_settings(config: Path | None, judge: Path | None, threshold: float | None,
                    precision: float | None) -> JudgeSettings:
    """``synth.judges`` with the flags on top; checked before any data or model is loaded."""
    j: JudgeSettings = settings(JudgeSettings, config, "judges", business=judge, semantic_threshold=threshold,
                                semantic_precision=precision)
    if j.business is None:
        raise ConfigError("no business judge: train one with `shopsearch synth train-judge` and pass --judge DIR "
                          "(or set synth.judges.business)")
    return j


def _pipeline_models(j: JudgeSettings, dataset: Dataset, data: DataSettings, retrieval: Any) -> Any:
    """Offline retriever + business judge + semantic judge over the dataset's catalogue (shared encoder)."""
    from shopsearch.data.render import ProductTextRenderer
    from shopsearch.retrieval.encoder import SentenceEncoder
    from shopsearch.synthesis.judges import (
        CrossEncoderJudge,
        EmbeddingJudge,
        calibrate_judge,
        judged_pairs,
        product_text_map,
    )
    from shopsearch.synthesis.pipeline import PipelineModels
    from shopsearch.synthesis.provenance import build_offline_retriever

    assert j.business is not None  # checked by _judge_settings
    with console.status("loading the judges"):
        business = CrossEncoderJudge.load(j.business)
        fields = json.loads((j.business / "shopsearch_judge.json").read_text(encoding="utf-8")).get("text_fields")
        encoder = SentenceEncoder(j.semantic_model)
        semantic = EmbeddingJudge(encoder)
    judge_texts = product_text_map(dataset.catalog, ProductTextRenderer(fields=tuple(fields or data.text_fields)))
    search_texts = ProductTextRenderer(fields=tuple(data.text_fields)).render(dataset.catalog)
    if j.semantic_threshold is not None:
        semantic.threshold = j.semantic_threshold
    elif len(dataset.judgments):
        calibration, _ = calibrate_judge(semantic, judged_pairs(dataset, judge_texts, unjudged_per_query=1),
                                         target_precision=j.semantic_precision)
        semantic.threshold = calibration.threshold
        console.print(f"semantic judge calibrated on {calibration.n_pairs:,} judged pairs: threshold "
                      f"{calibration.threshold:.3f}, precision {calibration.precision:.3f}")
    retriever = build_offline_retriever(dataset.catalog.ids, search_texts, retrieval, encoder=encoder, show_progress=True)
    return PipelineModels(retriever, business, semantic, judge_texts)


@app.command("pairs")
def pairs_command(
    rewrites: Annotated[Path, typer.Option("--rewrites", help="Rewrites directory written by `synth rewrite`.")],
    output: OutputOpt,
    catalog: CatalogOpt = None, judgments: JudgmentsOpt = None, queries: QueriesOpt = None, format: FormatOpt = None,
    on_error: OnErrorOpt = None, text_field: TextFieldOpt = None,
    judge: JudgeOpt = None, semantic_threshold: SemanticThresholdOpt = None, semantic_precision: SemanticPrecisionOpt = None,
    max_pairs_per_seed: Annotated[int | None, typer.Option(help="Cap on the pairs kept per seed (default 20).")] = None,
    top_n: Annotated[int | None, typer.Option(help="Best rewrites searched per seed (default 3).")] = None,
    min_relevance: Annotated[float | None, typer.Option(help="Drop rewrites whose relevance reward is below this (0.3).")] = None,
    per_rewrite_k: Annotated[int | None, typer.Option(help="Products retrieved per kept rewrite (default 30).")] = None,
    dense_model: Annotated[str | None, typer.Option(help="Offline dense model (default: bundled all-MiniLM-L6-v2).")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Seeds per resumable chunk (default 64).")] = None,
    write_candidates: Annotated[bool | None, typer.Option("--write-candidates", help="Also keep every judged pair.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start again when OUTPUT holds another run.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Score the rewrites (relevance, product-side good rate, diversity...), keep the best, retrieve
    products for each with BM25 + dense (RRF), judge every (ORIGINAL query, product) pair with the
    business classifier AND the semantic judge, cap per seed, dedup, and write pairs.parquet (the
    `query, product_id` columns `shopsearch train --extra-pairs` reads). Resumable by chunk.
    Settings: `synth.pipeline` (PipelineConfig), `synth.judges`; data from `data`."""
    from shopsearch.synthesis.pipeline import PipelineConfig, run_pipeline

    cfg = settings(PipelineConfig, config, "pipeline", max_pairs_per_seed=max_pairs_per_seed, chunk_size=chunk_size,
                   write_candidates=write_candidates, **{"selection.top_n": top_n, "selection.min_relevance": min_relevance,
                   "retrieval.per_rewrite_k": per_rewrite_k, "retrieval.dense_model": dense_model})
    judges = _judge_settings(config, judge, semantic_threshold, semantic_precision)
    dataset, data = _dataset(config, catalog=catalog, judgments=judgments, queries=queries, format=format,
                             on_error=on_error, text_field=text_field)
    models = _pipeline_models(judges, dataset, data, cfg.retrieval)
    result = run_pipeline(rewrites, output, models, cfg, overwrite=overwrite, progress=False)
    c = result.summary["counts"]
    _table(f"synthetic pairs → {result.path / 'pairs.parquet'}", [
        ("seeds", c["seeds"]), ("rewrite candidates", c["candidates"]), ("rewrites kept", c["rewrites_kept"]),
        ("(seed, product) pairs retrieved", c["unique_pairs"]), ("accepted by business judge", c["accepted_business"]),
        ("accepted by semantic judge", c["accepted_semantic"]), ("accepted by both", c["accepted_both"]),
        (f"after cap ({cfg.max_pairs_per_seed}/seed)", c["after_cap"]), ("after dedup", c["after_dedup"]),
        ("seeds with pairs", c["seeds_with_pairs"]), ("chunks resumed", result.resumed_chunks)])
    console.print(f"next: shopsearch train ... --extra-pairs {result.path / 'pairs.parquet'}")


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


@app.command("train-rewriter")
def train_rewriter_command(
    catalog: CatalogOpt = None, judgments: JudgmentsOpt = None, queries: QueriesOpt = None, format: FormatOpt = None,
    on_error: OnErrorOpt = None, text_field: TextFieldOpt = None,
    rewrites: Annotated[Path | None, typer.Option("--rewrites", help="Rewrites to select SFT targets from (SFT stage).")] = None,
    seeds: Annotated[Path | None, typer.Option("--seeds", help="Seeds whose prompts GRPO trains on (default: the rewrites' seeds).")] = None,
    stage: Annotated[str, typer.Option(help="sft | grpo | both.")] = "both",
    base_model: Annotated[Path | None, typer.Option(help="Local instruct causal-LM directory to fine-tune.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Run directory (default runs/rewriter).")] = None,
    sft_steps: Annotated[int | None, typer.Option(help="SFT max steps (overrides epochs).")] = None,
    grpo_steps: Annotated[int | None, typer.Option(help="GRPO steps (default 300).")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda.")] = None,
    judge: JudgeOpt = None, semantic_threshold: SemanticThresholdOpt = None, semantic_precision: SemanticPrecisionOpt = None,
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
    cfg = settings(RewriterTrainConfig, config, "rewriter_training", base_model=base_model, output_dir=output,
                   device=device, **{"sft.max_steps": sft_steps, "grpo.max_steps": grpo_steps})
    judges = _judge_settings(config, judge, semantic_threshold, semantic_precision)
    dataset, data = _dataset(config, catalog=catalog, judgments=judgments, queries=queries, format=format,
                             on_error=on_error, text_field=text_field)
    rewards = _pipeline_models(judges, dataset, data, RetrievalSettings()).rewards()
    table = read_rewrites(rewrites) if rewrites is not None else None
    rows: list[tuple[str, Any]] = []
    if stage in ("sft", "both"):
        assert table is not None  # checked above
        with console.status(f"scoring {len(table):,} seeds' rewrites for best-of-n selection"):
            scores = score_rewrites(table, rewards, weights=cfg.reward.weights, k=cfg.reward.k)
        examples, counts = build_sft_examples(scores, cfg)
        write_sft_set(examples, counts, cfg.output_dir / "sft_data", cfg)
        sft = train_sft(cfg, examples, callbacks=[_progress_callback("SFT")])
        rows += [("SFT examples", counts.kept), ("SFT seeds dropped", counts.seeds - counts.kept),
                 ("SFT steps", sft.steps), ("SFT loss", sft.train_loss or float("nan")), ("SFT model", sft.model_dir)]
    if stage in ("grpo", "both"):
        prompts = read_seeds(seeds) if seeds is not None else table
        grpo = train_grpo(cfg, prompts, rewards, callbacks=[_progress_callback("GRPO")])
        curve = reward_curves(grpo.log_history).get("reward") or []
        rows += [("GRPO steps", grpo.steps), ("GRPO reward first → last",
                                              f"{curve[0][1]:.3f} → {curve[-1][1]:.3f}" if curve else "n/a"),
                 ("GRPO model", grpo.model_dir)]
    _table(f"rewriter training → {cfg.output_dir}", rows)


@app.command("evaluate")
def evaluate_command(
    seeds: SeedsDirOpt,
    catalog: CatalogOpt = None, judgments: JudgmentsOpt = None, queries: QueriesOpt = None, format: FormatOpt = None,
    on_error: OnErrorOpt = None, text_field: TextFieldOpt = None,
    setting: Annotated[str, typer.Option(help="a: seeds were these queries' texts | b: seeds came from training queries.")] = "b",
    system: Annotated[list[str] | None, typer.Option("--system", "-s", help=(
        "bm25 | dense | dense:MODEL_PATH | hybrid, repeatable; the first is the baseline (e.g. trained without "
        "the pairs), the others are tested against it."))] = None,
    classifier: Annotated[Path | None, typer.Option(help="Business classifier labelling unjudged items for the good rates.")] = None,
    min_good: Annotated[int | None, typer.Option(help="m of QueryGoodRate@10 (default 3).")] = None,
    n_resamples: Annotated[int | None, typer.Option(help="Randomisation/bootstrap resamples.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON.")] = None,
    markdown_out: Annotated[Path | None, typer.Option("--markdown", help="Write the report as Markdown.")] = None,
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
        raise typer.BadParameter("give the systems to compare, baseline first, e.g. --system dense:runs/base/model "
                                 "--system dense:runs/with-pairs/model")
    cfg = settings(SynthEvalConfig, config, "evaluate", min_good=min_good, n_resamples=n_resamples)
    dataset, data = _dataset(config, catalog=catalog, judgments=judgments, queries=queries, format=format,
                             on_error=on_error, text_field=text_field)
    texts = ProductTextRenderer(fields=tuple(data.text_fields)).render(dataset.catalog)
    systems = build_systems(system, dataset.catalog.ids, texts)
    judge = CrossEncoderJudge.load(classifier) if classifier is not None else None
    chosen: Setting = "a" if setting == "a" else "b"
    report = evaluate_setting(chosen, systems, dataset, read_seeds(seeds), classifier=judge, config=cfg,
                              dataset_info={"summary": dataset.summary()})
    out.print(report.to_markdown(), soft_wrap=True)
    for label, path, write in (("JSON", json_out, report.write_json), ("Markdown", markdown_out, report.write_markdown)):
        if path is not None:
            write(path)
            console.print(f"{label} report: [bold]{path}[/]")
