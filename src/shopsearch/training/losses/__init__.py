"""Training losses for the two-stage dual encoder (Flipkart 2026, arXiv 2606.01504) and its ablations.

Stage 1: :class:`MaskedInfoNCELoss`; stage 2: :class:`RoarLoss`; baselines: :class:`InfoNCELoss`,
:class:`BradleyTerryLoss`, :class:`ListMLELoss`; :class:`ListwiseDistillationLoss` adds a teacher's
order to any stage-2 loss; :class:`CachedGradientLoss` computes any of them with gradient caching
(larger batches in bounded memory). The pure tensor functions live in
:mod:`shopsearch.training.losses.functional` (no sentence-transformers import). The classes are
imported lazily, since their modules import sentence-transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopsearch.training.losses.bradley_terry import BradleyTerryLoss
    from shopsearch.training.losses.cached import CachedGradientLoss
    from shopsearch.training.losses.distillation import ListwiseDistillationLoss
    from shopsearch.training.losses.infonce import InfoNCELoss
    from shopsearch.training.losses.listmle import ListMLELoss
    from shopsearch.training.losses.masked_infonce import MaskedInfoNCELoss
    from shopsearch.training.losses.roar import RoarLoss

_LAZY = {
    "MaskedInfoNCELoss": "masked_infonce",
    "RoarLoss": "roar",
    "InfoNCELoss": "infonce",
    "BradleyTerryLoss": "bradley_terry",
    "ListMLELoss": "listmle",
    "ListwiseDistillationLoss": "distillation",
    "CachedGradientLoss": "cached",
}

__all__ = ["BradleyTerryLoss", "CachedGradientLoss", "InfoNCELoss", "ListMLELoss", "ListwiseDistillationLoss", "MaskedInfoNCELoss", "RoarLoss"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
