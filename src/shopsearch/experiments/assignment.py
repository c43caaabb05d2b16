"""Experiment settings and deterministic variant assignment.

An experiment is the ``ab`` section of a shopsearch config file (YAML, TOML or JSON)::

    ab:
      name: hybrid-vs-bm25
      salt: "2026-11"            # change it to reshuffle units between experiments
      unit: user                 # user | session: what is randomised (and what analysis resamples)
      design: ab                 # ab (each unit sees one variant) | interleaving (team draft of two)
      variants:
        - {name: control, index: index/hd, mode: bm25}
        - {name: treatment, index: index/hd, mode: hybrid}
      split: [0.5, 0.5]          # traffic shares in variant order; default: equal

Assignment hashes ``name``, ``salt`` and the unit id with SHA-256 and maps the first 53 bits to a
uniform number ``u`` in [0, 1); the unit gets the variant whose cumulative split interval holds
``u``. No state, no randomness: every process (serve workers, the analysis) agrees, and a unit keeps
its variant for the life of the experiment.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shopsearch.config import ConfigError, read_config_file

SECTION = "ab"
# The variant recorded for every unit of an interleaving experiment: each unit sees both systems.
INTERLEAVED = "interleaved"
_SPLIT_TOLERANCE = 1e-6


class VariantSpec(BaseModel):
    """One arm: a name, the index it serves from, the retrieval mode and whether it re-ranks."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    index: Path | None = Field(None, description="index directory this variant serves (not needed for analysis)")
    mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    rerank: bool = Field(False, description="re-rank the mode's top hits with the service's re-ranker (serve --reranker)")


class ExperimentConfig(BaseModel):
    """An A/B or interleaving experiment. The first variant is the control unless ``control`` says otherwise."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    variants: list[VariantSpec] = Field(min_length=2)
    split: list[float] | None = Field(None, description="traffic share per variant, summing to 1; default equal")
    salt: str = ""
    unit: Literal["user", "session"] = "user"
    design: Literal["ab", "interleaving"] = "ab"
    control: str | None = None
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    power: float = Field(0.8, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if INTERLEAVED in names:
            raise ValueError(f"{INTERLEAVED!r} is reserved for interleaved traffic; rename that variant")
        if self.split is None:
            self.split = [1.0 / len(names)] * len(names)
        if len(self.split) != len(names):
            raise ValueError(f"split has {len(self.split)} weights for {len(names)} variants")
        if any(not math.isfinite(w) or w < 0 for w in self.split) or abs(sum(self.split) - 1.0) > _SPLIT_TOLERANCE:
            raise ValueError(f"split weights must be >= 0 and sum to 1, got {self.split} (sum {sum(self.split)})")
        if self.design == "interleaving" and len(names) != 2:
            raise ValueError(f"an interleaving experiment compares exactly two variants, got {len(names)}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the variants {names}")
        return self

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def control_name(self) -> str:
        return self.control or self.variants[0].name

    @property
    def weights(self) -> list[float]:
        assert self.split is not None  # filled by the validator
        return list(self.split)

    def variant(self, name: str) -> VariantSpec:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"experiment {self.name!r} has no variant {name!r}; it has {self.names}")

    @classmethod
    def from_file(cls, path: str | Path) -> ExperimentConfig:
        """Read the ``ab`` section of a YAML/TOML/JSON config file (a file holding only the
        experiment, without the section, is accepted too)."""
        raw = read_config_file(path)
        section = raw.get(SECTION, raw if "variants" in raw else None)
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: no {SECTION!r} section (an experiment needs name and variants)")
        return cls.from_dict(section, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "experiment") -> ExperimentConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{SECTION}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{source}: invalid experiment: {problems}") from None


def unit_bucket(name: str, salt: str, unit_id: str) -> float:
    """Uniform in [0, 1) from SHA-256 of ``name``, ``salt`` and ``unit_id`` (separated by U+001F).

    The top 53 bits are used, so the float is exact and strictly below 1 (64 bits divided by 2**64
    can round up to 1.0).
    """
    digest = hashlib.sha256(f"{name}\x1f{salt}\x1f{unit_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def assign(config: ExperimentConfig, unit_id: str) -> str:
    """The variant name of ``unit_id`` (a user or session id, per ``config.unit``).

    Deterministic and stable across processes; shares follow ``config.split``. For an interleaving
    experiment every unit gets :data:`INTERLEAVED` (it sees the team-draft merge of both variants).
    """
    if not isinstance(unit_id, str) or not unit_id:
        raise ValueError(f"unit_id must be a non-empty string, got {unit_id!r}")
    if config.design == "interleaving":
        return INTERLEAVED
    u = unit_bucket(config.name, config.salt, unit_id)
    edges = np.cumsum(config.weights)[:-1].tolist()  # the last edge is 1 by construction
    return config.names[bisect.bisect_right(edges, u)]


def assign_many(config: ExperimentConfig, unit_ids: Sequence[str]) -> np.ndarray:
    """Variant index (into ``config.variants``) of each unit id; :func:`assign` for a batch."""
    edges = np.cumsum(config.weights)[:-1]
    u = np.fromiter((unit_bucket(config.name, config.salt, str(x)) for x in unit_ids), np.float64, len(unit_ids))
    return np.searchsorted(edges, u, side="right").astype(np.int64)
