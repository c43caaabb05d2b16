"""Errors of the synthesis steps that a user can act on."""

from __future__ import annotations

from shopsearch.data.errors import ShopsearchError


class SynthesisError(ShopsearchError):
    """A synthesis step cannot run as asked (no seeds selected, outputs made with other settings...)."""
