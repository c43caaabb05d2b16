"""Pair tokens of the side-by-side view: what ties a verdict to the pair that was shown.

``GET /sbs/pair`` hands out a token; ``POST /sbs/verdict`` sends it back with the verdict. The
token is *signed, not encrypted*: it carries the query, the two systems in the order the rater
asked for them (``a``, ``b``), a random nonce and the issue time, under an HMAC-SHA256. It never
carries which system was shown on which side: the sides come from
:func:`~shopsearch.experiments.blind_pair` seeded with a value derived from the server's secret, so
neither the page nor the token tells the rater which side is which, and the server recomputes the
sides from the token when the verdict arrives. No server-side state: any worker accepts a token
any worker issued, as long as they share the secret.

The secret comes from ``$SHOPSEARCH_SBS_SECRET`` (``shopsearch serve`` sets a random one for its
workers) or is drawn at start-up; tokens then stop verifying after a restart, which only asks the
rater to load the pair again. Tokens expire after ``sbs_token_ttl_s``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from shopsearch.data.errors import ShopsearchError
from shopsearch.experiments.sbs import BlindPair, blind_pair

SBS_SECRET_ENV = "SHOPSEARCH_SBS_SECRET"
_VERSION = 1


class InvalidTokenError(ShopsearchError):
    """A pair token that was not issued here, was altered, or has expired."""


@dataclass(frozen=True)
class PairClaim:
    """What a valid token says: the query, the two systems as asked, the pair's nonce."""

    query: str
    a: str
    b: str
    nonce: str
    issued_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PairTokens:
    """Issues and checks pair tokens, and decides each pair's sides, with one secret."""

    def __init__(self, secret: bytes, ttl_s: int = 86_400) -> None:
        if len(secret) < 16:
            raise ShopsearchError("the side-by-side secret needs at least 16 bytes")
        self._key = hmac.new(secret, b"shopsearch sbs token", hashlib.sha256).digest()
        # a separate derived value: knowing how sides are seeded must not help forge a token
        self._side_seed = hmac.new(secret, b"shopsearch sbs sides", hashlib.sha256).hexdigest()
        self.ttl_s = ttl_s

    def __repr__(self) -> str:
        return f"PairTokens(ttl_s={self.ttl_s})"  # never the key

    @classmethod
    def from_env(cls, ttl_s: int = 86_400) -> PairTokens:
        """The secret of ``$SHOPSEARCH_SBS_SECRET``, else a random one for this process."""
        value = os.environ.get(SBS_SECRET_ENV, "").strip()
        return cls(value.encode("utf-8") if value else secrets.token_bytes(32), ttl_s)

    def sides(self, query: str, a: str, b: str) -> BlindPair:
        """Which of ``a`` and ``b`` goes left for ``query``: unpredictable without the secret."""
        return blind_pair(query, a, b, seed=self._side_seed)

    def issue(self, query: str, a: str, b: str, *, now: float | None = None) -> str:
        payload = json.dumps(
            {"v": _VERSION, "q": query, "a": a, "b": b, "n": secrets.token_hex(16),
             "t": int(time.time() if now is None else now)},
            ensure_ascii=False, separators=(",", ":"),
        ).encode("utf-8")  # fmt: skip
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def open(self, token: str, *, now: float | None = None) -> PairClaim:
        """The claim of a token issued here and not expired, else :class:`InvalidTokenError`."""
        body, _, mac = token.partition(".")
        try:
            payload, signature = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            raise InvalidTokenError("the pair token is malformed; load the pair again") from None
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise InvalidTokenError("the pair token was not issued by this service (or it restarted); load the pair again")
        try:
            data = json.loads(payload)
            claim = PairClaim(str(data["q"]), str(data["a"]), str(data["b"]), str(data["n"]), int(data["t"]))
        except (ValueError, KeyError, TypeError):
            raise InvalidTokenError("the pair token is malformed; load the pair again") from None
        age = (time.time() if now is None else now) - claim.issued_at
        if age > self.ttl_s:
            raise InvalidTokenError(f"the pair token expired ({int(age)} s old; tokens last {self.ttl_s} s); load the pair again")
        return claim

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()
