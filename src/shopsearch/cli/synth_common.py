"""What the ``shopsearch synth`` commands share: the ``synth`` config section parsed and validated
with flags on top, the options several commands take, and the helpers that load data, the LLM
backend and the judges, and print the closing summary table.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.table import Table

from shopsearch.cli.common import console, data_flags, deep_merge, load_data, nest_flags, out
from shopsearch.config import ConfigError, DataSettings, merge_settings, read_config_file
from shopsearch.data.schema import Dataset

SUBSECTIONS = (
    "seeds",
    "llm",
    "rewriter",
    "judge_training",
    "judges",
    "pipeline",
    "rewriter_training",
    "evaluate",
)


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

        per_kind = {
            "llama_cpp": ("model", "n_threads", "n_ctx"),
            "transformers": ("model", "device"),
            "openai": ("base_url", "model", "cache_dir", "max_concurrency", "timeout"),
        }
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


def judge_settings(
    config: Path | None, judge: Path | None, threshold: float | None, precision: float | None
) -> JudgeSettings:
    """``synth.judges`` with the flags on top; checked before any data or model is loaded."""
    j: JudgeSettings = settings(
        JudgeSettings,
        config,
        "judges",
        business=judge,
        semantic_threshold=threshold,
        semantic_precision=precision,
    )
    if j.business is None:
        raise ConfigError(
            "no business judge: train one with `shopsearch synth train-judge` (or use a train-reranker model) and pass --judge DIR "
            "(or set synth.judges.business)"
        )
    return j


# Options shared by several commands.
SeedsDirOpt = Annotated[
    Path, typer.Option("--seeds", help="Seeds directory written by `synth seeds` (or a seeds Parquet).")
]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output directory.")]
BackendOpt = Annotated[
    str | None, typer.Option(help="LLM backend: llama_cpp (default, offline) | openai | transformers.")
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="llama_cpp: GGUF path or smollm2-135m / gemma3-270m; openai: model name; transformers: LM directory.",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(help="openai backend: server URL ending in /v1 (API key: $SHOPSEARCH_LLM_API_KEY)."),
]
CacheDirOpt = Annotated[
    Path | None, typer.Option(help="openai backend: on-disk response cache (resumes without paying twice).")
]
ThreadsOpt = Annotated[
    int | None, typer.Option(help="llama_cpp backend: CPU threads (default: half the cores).")
]
JudgeOpt = Annotated[
    Path | None,
    typer.Option("--judge", help="Business relevance judge: a `synth train-judge` directory, or a `train-reranker` "
                 "model (RUN/model) or its ONNX export (one cross-encoder for re-ranking and judging)."),
]
SemanticThresholdOpt = Annotated[
    float | None,
    typer.Option(
        help="Semantic judge cosine cut-off (default: calibrated on the data's judgments to --semantic-precision)."
    ),
]
SemanticPrecisionOpt = Annotated[
    float | None, typer.Option(help="Target precision of the semantic judge's calibration.")
]


# ---------------------------------------------------------------------------------------------
# Loading data and models; the closing summary.
# ---------------------------------------------------------------------------------------------


def load_dataset(config: Path | None, **flags: Any) -> tuple[Dataset, DataSettings]:
    """The ``data`` section of the config file with the data flags on top, and the dataset it names."""
    data = merge_settings(config, data=data_flags(**flags)).data
    return load_data(data), data


def build_llm(
    config: Path | None,
    backend: str | None,
    model: str | None,
    base_url: str | None,
    cache_dir: Path | None,
    threads: int | None,
) -> Any:
    """The ``synth.llm`` backend, flags on top."""
    return settings(
        LLMSettings,
        config,
        "llm",
        backend=backend,
        model=model,
        base_url=base_url,
        cache_dir=cache_dir,
        n_threads=threads,
    ).build()


def pipeline_models(j: JudgeSettings, dataset: Dataset, data: DataSettings, retrieval: Any) -> Any:
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

    assert j.business is not None  # checked by judge_settings
    with console.status("loading the judges"):
        business = CrossEncoderJudge.load(j.business)
        fields = json.loads((j.business / "shopsearch_judge.json").read_text(encoding="utf-8")).get(
            "text_fields"
        )
        encoder = SentenceEncoder(j.semantic_model)
        semantic = EmbeddingJudge(encoder)
    judge_texts = product_text_map(
        dataset.catalog, ProductTextRenderer(fields=tuple(fields or data.text_fields))
    )
    search_texts = ProductTextRenderer(fields=tuple(data.text_fields)).render(dataset.catalog)
    if j.semantic_threshold is not None:
        semantic.threshold = j.semantic_threshold
    elif len(dataset.judgments):
        calibration, _ = calibrate_judge(
            semantic,
            judged_pairs(dataset, judge_texts, unjudged_per_query=1),
            target_precision=j.semantic_precision,
        )
        semantic.threshold = calibration.threshold
        console.print(
            f"semantic judge calibrated on {calibration.n_pairs:,} judged pairs: threshold "
            f"{calibration.threshold:.3f}, precision {calibration.precision:.3f}"
        )
    retriever = build_offline_retriever(
        dataset.catalog.ids, search_texts, retrieval, encoder=encoder, show_progress=True
    )
    return PipelineModels(retriever, business, semantic, judge_texts)


def summary_table(title: str, rows: list[tuple[str, Any]]) -> None:
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
