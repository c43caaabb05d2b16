"""An A/B or interleaving experiment in the serving path (``shopsearch serve --experiment FILE``).

The experiment is the ``ab`` section of a config file (:class:`~shopsearch.experiments.ExperimentConfig`):
variants, each an index directory and a retrieval mode, a traffic split, a salt, the randomisation
unit (``user`` or ``session``) and the design (``ab`` or ``interleaving``).

- **One holder per distinct index.** Variants naming the same directory share one
  :class:`~shopsearch.serve.holder.IndexHolder`, and the served ``--index`` is one of them when a
  variant names it (or names no index). Holders share the first holder's query encoder when their
  indexes were built with the same model, so two variants over two indexes of one model keep one
  model in memory; an index of another model gets its own encoder.
- **Assignment** is :func:`~shopsearch.experiments.assign` of the request's unit id (``user_id``
  or ``session_id``, from the query, the JSON body or the ``X-User-Id`` / ``X-Session-Id``
  headers): stateless and deterministic, so every worker and the analysis agree and a unit keeps
  its variant. A request without the unit id is outside the experiment and served as asked.
- **A/B**: the unit's variant decides the index and the mode (the request's ``mode`` is
  overridden). **Interleaving**: both variants rank, and :func:`~shopsearch.experiments.team_draft`
  merges the two lists (seeded by query and unit, so a repeated search shows the same page); each
  hit names its ``team`` (the variant that contributed it) and keeps that variant's score.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopsearch.data.errors import ShopsearchError
from shopsearch.experiments.assignment import INTERLEAVED, ExperimentConfig, assign
from shopsearch.experiments.interleaving import team_draft
from shopsearch.serve.encoders import IndexMismatchError
from shopsearch.serve.holder import IndexHolder, ServingIndex
from shopsearch.serve.schemas import SearchRequest, SearchResponse
from shopsearch.serve.search_service import SearchService
from shopsearch.serve.settings import ServeSettings

log = logging.getLogger("shopsearch.serve")


def default_index(settings: ServeSettings, config: ExperimentConfig) -> Path | None:
    """The index ``/search`` serves outside the experiment: ``--index``, else the control's."""
    return settings.index if settings.index is not None else config.variant(config.control_name).index


@dataclass(frozen=True)
class Arm:
    """A variant as served: its holder (shared with other variants of the same index), mode and re-ranking."""

    name: str
    mode: str
    directory: Path
    holder: IndexHolder
    rerank: bool = False

    def request(self, request: SearchRequest) -> SearchRequest:
        """``request`` as this variant serves it."""
        return request.model_copy(update={"mode": self.mode, "rerank": self.rerank})


class ExperimentRuntime:
    """Routes searches of an experiment's units to their variants (see the module docstring)."""

    def __init__(self, config: ExperimentConfig, settings: ServeSettings, main: IndexHolder) -> None:
        self.config = config
        self.main = main
        fallback = default_index(settings, config)
        self.holders: dict[Path, IndexHolder] = {}
        if fallback is not None:
            self.holders[Path(fallback).resolve()] = main
        self.arms: dict[str, Arm] = {}
        for v in config.variants:
            directory = v.index if v.index is not None else fallback
            if directory is None:
                raise ShopsearchError(f"experiment {config.name!r}: variant {v.name!r} names no index and no --index is given")
            key = Path(directory).resolve()
            holder = self.holders.setdefault(key, IndexHolder(settings))
            self.arms[v.name] = Arm(v.name, v.mode, key, holder, v.rerank)

    @classmethod
    def from_file(cls, path: str | Path, settings: ServeSettings, main: IndexHolder) -> ExperimentRuntime:
        return cls(ExperimentConfig.from_file(path), settings, main)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def ready(self) -> bool:
        return all(h.ready for h in self.holders.values())

    def load(self) -> None:
        """Load every holder not loaded yet (the main one is loaded by the app or ``serve``),
        lending each the encoder of one already loaded; check every variant's mode exists."""
        for directory, holder in self.holders.items():
            if holder.ready:
                continue
            donor = next((h for h in self.holders.values() if h.ready and h.has_encoder), None)
            holder.adopt_encoder(donor)
            try:
                holder.reload(directory)
            except IndexMismatchError as exc:
                # built with another model: it needs its own encoder (more memory, still correct)
                log.info("experiment index %s gets its own query encoder: %s", directory, exc)
                holder.adopt_encoder(None)
                holder.reload(directory)
        for arm in self.arms.values():
            modes = arm.holder.current.modes
            if arm.mode not in modes:
                raise ShopsearchError(
                    f"experiment {self.name!r}: variant {arm.name!r} asks for mode {arm.mode!r}, "
                    f"but its index {arm.directory.name} has {modes} only"
                )
            if arm.rerank and arm.holder.current.reranker is None:
                raise ShopsearchError(f"experiment {self.name!r}: variant {arm.name!r} re-ranks, but the service "
                                      "has no re-ranker (start it with --reranker)")

    def pins(self, holder: IndexHolder) -> bool:
        """Whether a variant serves from ``holder`` (an admin reload must not move it elsewhere)."""
        return any(arm.holder is holder for arm in self.arms.values())

    def unit_of(self, user_id: str | None, session_id: str | None) -> str | None:
        """The randomisation unit's id of a request or event, None when it carries none."""
        return user_id if self.config.unit == "user" else session_id

    def variant_of(self, unit_id: str) -> str:
        return assign(self.config, unit_id)

    def arm(self, name: str) -> tuple[ServingIndex, Arm]:
        """The snapshot a variant serves now, and the variant (for side-by-side pairs)."""
        arm = self.arms[name]
        return arm.holder.current, arm

    def search(self, service: SearchService, request: SearchRequest) -> SearchResponse | None:
        """The experiment's answer to ``request``, or None when the request names no unit."""
        unit = self.unit_of(request.user_id, request.session_id)
        if not unit:
            return None
        variant = self.variant_of(unit)
        if variant == INTERLEAVED:
            return self._interleaved(service, request, unit)
        arm = self.arms[variant]
        response = service.search(arm.request(request), snapshot=arm.holder.current)
        return response.model_copy(update={"experiment": self.name, "variant": variant})

    def _interleaved(self, service: SearchService, request: SearchRequest, unit: str) -> SearchResponse:
        started = time.perf_counter()
        a, b = (self.arms[v.name] for v in self.config.variants)
        # both rankings at full k: team draft then takes at most k from their union
        ra = service.search(a.request(request), snapshot=a.holder.current)
        rb = service.search(b.request(request), snapshot=b.holder.current)
        merged = team_draft([h.product_id for h in ra.results], [h.product_id for h in rb.results],
                            ra.query, unit, k=ra.k)  # fmt: skip
        hits = {"a": {h.product_id: h for h in ra.results}, "b": {h.product_id: h for h in rb.results}}
        names = {"a": a.name, "b": b.name}
        results = [
            hits[team][pid].model_copy(update={"rank": i + 1, "team": names[team]})
            for i, (pid, team) in enumerate(zip(merged.ids, merged.teams, strict=True))
        ]
        return ra.model_copy(update={
            "mode": INTERLEAVED, "results": results, "cached": ra.cached and rb.cached, "candidates": None,
            "experiment": self.name, "variant": INTERLEAVED,
            "took_ms": round((time.perf_counter() - started) * 1000, 3),
        })  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """For ``GET /info``: names and modes, index directory names (no server paths, no salt)."""
        return {
            "name": self.name,
            "design": self.config.design,
            "unit": self.config.unit,
            "variants": [
                {"name": v.name, "mode": self.arms[v.name].mode, "rerank": v.rerank,
                 "index": self.arms[v.name].directory.name, "split": w}
                for v, w in zip(self.config.variants, self.config.weights, strict=True)
            ],
        }
