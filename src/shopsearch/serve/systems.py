"""Named systems a side-by-side pair can compare: the served index's modes and experiment variants.

``dense``, ``bm25`` and ``hybrid`` are the modes of the served ``--index``, and ``MODE+rerank`` each
mode re-ranked when the service has a re-ranker; any other name is an experiment variant (its own
index, mode and re-ranking). A variant named like a served system is reached as ``variant:NAME``
(``variant:NAME`` always works), so a served system's name never silently means a variant.
The name a rater asked for is the name recorded with the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from shopsearch.serve.experiment import ExperimentRuntime
from shopsearch.serve.holder import MODES, IndexHolder, ServingIndex
from shopsearch.serve.schemas import SearchRequest

VARIANT_PREFIX = "variant:"
RERANK_SUFFIX = "+rerank"
RESERVED = (*MODES, *(m + RERANK_SUFFIX for m in MODES))


class UnknownSystemError(LookupError):
    """A system name that is neither a served mode nor a variant."""


@dataclass(frozen=True)
class ResolvedSystem:
    """Where a system's searches run (``snapshot``) and how (``mode``, ``rerank``)."""

    snapshot: ServingIndex
    mode: str
    rerank: bool = False

    def request(self, request: SearchRequest) -> SearchRequest:
        return request.model_copy(update={"mode": self.mode, "rerank": self.rerank})


def served_systems(snapshot: ServingIndex) -> list[str]:
    """The served index's systems: its modes, then each re-ranked when a re-ranker is loaded."""
    reranked = [m + RERANK_SUFFIX for m in snapshot.modes] if snapshot.reranker is not None else []
    return [*snapshot.modes, *reranked]


def system_names(holder: IndexHolder, experiment: ExperimentRuntime | None) -> list[str]:
    """Every system that can be compared now: the served systems, then the variants."""
    names = served_systems(holder.current)
    if experiment is not None:
        names += [f"{VARIANT_PREFIX}{n}" if n in RESERVED else n for n in experiment.config.names]
    return names


def resolve_system(name: str, holder: IndexHolder, experiment: ExperimentRuntime | None) -> ResolvedSystem:
    """The snapshot, mode and re-ranking behind a system name; :class:`UnknownSystemError` if there is none."""
    variant = name.removeprefix(VARIANT_PREFIX) if name.startswith(VARIANT_PREFIX) else None
    if variant is None and name in RESERVED:
        snapshot = holder.current
        if name in served_systems(snapshot):
            mode, _, rerank = name.partition("+")
            return ResolvedSystem(snapshot, mode, bool(rerank))
    else:
        variant = variant if variant is not None else name
        if experiment is not None and variant in experiment.arms:
            snapshot, arm = experiment.arm(variant)
            return ResolvedSystem(snapshot, arm.mode, arm.rerank)
    raise UnknownSystemError(
        f"no system {name!r} here; choose from {system_names(holder, experiment)}"
    )
