"""Training of the shopsearch dual encoder. Light on purpose: importing it loads no model code."""

from __future__ import annotations

from typing import Any

_LOSSES = ("BradleyTerryLoss", "InfoNCELoss", "ListMLELoss", "MaskedInfoNCELoss", "RoarLoss")

__all__ = list(_LOSSES)


def __getattr__(name: str) -> Any:
    if name in _LOSSES:
        from shopsearch.training import losses

        return getattr(losses, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
