"""Settings of every command as pydantic models, shared by config files and CLI flags.

A config file (YAML or TOML) has one section per concern (``data``, ``index``, ``eval``); a flag
given on the command line overrides the file, and the file overrides the defaults here. One
definition, one validation: a typo in a config key is an error, not a silently ignored setting.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shopsearch.data.errors import ShopsearchError
from shopsearch.data.schema import GRADE_SCHEMES, GradeScheme, custom_scheme


class ConfigError(ShopsearchError):
    """A config file or a combination of flags that cannot be used."""


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSettings(_Settings):
    """Where the catalogue and judgments are, in which format, and how labels become grades."""

    catalog: Path | None = None
    judgments: Path | None = None
    queries: Path | None = None
    format: Literal["homedepot", "esci", "wands", "generic", "shopsearch"] | None = None
    scheme: str | None = Field(None, description="esci | wands | mean-rating | custom (with labels)")
    labels: dict[str, int] | None = Field(None, description="custom label -> grade map")
    gain: Literal["linear", "exponential"] | None = None
    relevant_min: int | None = Field(None, description="smallest grade counted relevant by binary metrics")
    on_error: Literal["report", "raise"] = "report"
    locale: str | None = "us"
    small_version: bool | None = None
    split: str | None = None
    encoding: str | None = None
    mapping: dict[str, Any] | None = Field(None, description="generic format: column mapping")
    text_fields: list[str] = Field(default_factory=lambda: ["title"], description="product fields rendered for search")

    def grade_scheme(self) -> GradeScheme | None:
        """The scheme the user asked for, or None to let the loader use its format's default."""
        if self.scheme is None and self.labels is None:
            scheme = None
        elif self.labels is not None:
            scheme = custom_scheme(self.labels)
        elif self.scheme in GRADE_SCHEMES:
            scheme = GRADE_SCHEMES[self.scheme]
        else:
            raise ConfigError(f"unknown grade scheme {self.scheme!r}; use one of {sorted(GRADE_SCHEMES)} or give labels")
        if scheme is not None and self.gain is not None:
            scheme = scheme.with_gain(self.gain)
        if scheme is not None and self.relevant_min is not None:
            scheme = scheme.with_relevant_min(self.relevant_min)
        return scheme


IndexSystem = Literal["bm25", "dense"]


class IndexSettings(_Settings):
    """How the index is built: which systems, which encoder, which FAISS structure."""

    systems: list[IndexSystem] = Field(default_factory=lambda: list[IndexSystem](["bm25", "dense"]))
    model: str | None = Field(None, description="encoder path; default: bundled all-MiniLM-L6-v2")
    kind: Literal["flat", "hnsw", "ivfpq"] = "flat"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    pq_m: int | None = None
    pq_nbits: int = 8
    nprobe: int = 16
    batch_size: int = 64
    k1: float = 1.5
    b: float = 0.75

    def index_spec(self) -> Any:
        from shopsearch.retrieval.faiss_index import IndexSpec

        return IndexSpec(
            kind=self.kind,
            hnsw_m=self.hnsw_m,
            ef_construction=self.ef_construction,
            ef_search=self.ef_search,
            nlist=self.nlist,
            pq_m=self.pq_m,
            pq_nbits=self.pq_nbits,
            nprobe=self.nprobe,
        )


class StrataSettings(_Settings):
    """Query-frequency tiers by cumulative traffic share (HEAD first); proxies when no traffic."""

    shares: tuple[float, float, float] = Field(
        (0.25, 0.25, 0.25), description="traffic shares of HEAD, TORSO HIGH, TORSO LOW; TAIL takes the rest"
    )
    once_max: float = Field(1.0, description="traffic at or below this is ONCE ONLY")
    proxy: Literal["auto", "length", "idf"] = Field("idf", description="frequency proxy when there are no counts")


class EvalSettings(_Settings):
    """What to compare, under which protocol, and where the report goes."""

    systems: list[str] = Field(default_factory=lambda: ["bm25", "dense", "hybrid"])
    protocol: Literal["full", "rerank"] = "full"
    depth: int = Field(100, ge=1)
    metrics: list[str] = Field(default_factory=lambda: ["ndcg@10", "recall@100", "mrr@10", "map@10", "auc"])
    baseline: str | None = None
    n_resamples: int = Field(10000, ge=100)
    seed: int = 0
    strata: StrataSettings = Field(default_factory=StrataSettings)
    json_out: Path | None = Field(None, alias="json")
    html_out: Path | None = Field(None, alias="html")
    markdown_out: Path | None = Field(None, alias="markdown")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("systems")
    @classmethod
    def _at_least_one(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one system")
        return value


class ShopsearchConfig(_Settings):
    """A whole config file."""

    data: DataSettings = Field(default_factory=DataSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """Parse a YAML, TOML or JSON config file into a plain dict (no validation yet)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            raw = yaml.safe_load(text) or {}
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse config: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must be a mapping with sections data/index/eval")
    return raw


# Sections validated by their own command's settings (e.g. training.config.TrainConfig), so that one
# file can configure every step; a section in neither place is still an error.
COMMAND_SECTIONS = frozenset({"train", "reranker", "synth", "serve", "ab"})


def merge_settings(path: str | Path | None, **overrides: dict[str, Any]) -> ShopsearchConfig:
    """Defaults < config file < flags. ``overrides`` maps a section name to the flags given
    (``None`` values mean "flag not given" and are ignored)."""
    raw = {k: v for k, v in read_config_file(path).items() if k not in COMMAND_SECTIONS}
    for section, flags in overrides.items():
        given = {k: v for k, v in flags.items() if v is not None and v != [] and v != ()}
        raw[section] = {**(raw.get(section) or {}), **given}
    try:
        return ShopsearchConfig.model_validate(raw)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}invalid settings: {problems}") from None
