"""Named systems a side-by-side pair can compare: the served index's modes and experiment variants.

``dense``, ``bm25`` and ``hybrid`` are the modes of the served ``--index``; any other name is an
experiment variant (its own index and mode). A variant named like a mode is reached as
``variant:NAME`` (``variant:NAME`` always works), so a mode name never silently means a variant.
The name a rater asked for is the name recorded with the verdict.
"""

from __future__ import annotations

from shopsearch.serve.experiment import ExperimentRuntime
from shopsearch.serve.holder import MODES, IndexHolder, ServingIndex

VARIANT_PREFIX = "variant:"


class UnknownSystemError(LookupError):
    """A system name that is neither a served mode nor a variant."""


def system_names(holder: IndexHolder, experiment: ExperimentRuntime | None) -> list[str]:
    """Every system that can be compared now: the served modes, then the variants."""
    names = list(holder.current.modes)
    if experiment is not None:
        names += [f"{VARIANT_PREFIX}{n}" if n in MODES else n for n in experiment.config.names]
    return names


def resolve_system(name: str, holder: IndexHolder, experiment: ExperimentRuntime | None) -> tuple[ServingIndex, str]:
    """The snapshot and mode behind a system name; :class:`UnknownSystemError` if there is none."""
    variant = name.removeprefix(VARIANT_PREFIX) if name.startswith(VARIANT_PREFIX) else None
    if variant is None and name in MODES:
        snapshot = holder.current
        if name in snapshot.modes:
            return snapshot, name
    else:
        variant = variant if variant is not None else name
        if experiment is not None and variant in experiment.arms:
            return experiment.arm(variant)
    raise UnknownSystemError(
        f"no system {name!r} here; choose from {system_names(holder, experiment)}"
    )
