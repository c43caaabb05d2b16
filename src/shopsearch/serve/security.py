"""The admin API key: where it comes from, and a constant-time check that never reveals it.

The key is read from the file given with ``--admin-key-file`` (``admin_key_file`` in the config) or,
failing that, from ``$SHOPSEARCH_ADMIN_KEY``. Without either, admin endpoints answer 403. Clients
send it as ``Authorization: Bearer KEY`` or ``X-Admin-Key: KEY``. The key is held as bytes inside
:class:`AdminKey`, whose ``repr`` hides it, and no code path logs request headers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from shopsearch.data.errors import ShopsearchError
from shopsearch.serve.errors import error_response

ADMIN_KEY_ENV = "SHOPSEARCH_ADMIN_KEY"
ADMIN_KEY_HEADER = "x-admin-key"
ADMIN_PREFIX = "/admin"
# A shorter key can be guessed by brute force over the network; refuse it rather than warn.
MIN_KEY_CHARS = 16

log = logging.getLogger("shopsearch.serve")


class AdminKeyError(ShopsearchError):
    """The admin key file or variable cannot be used."""


class AdminKey:
    """The admin key, or none (admin endpoints disabled)."""

    def __init__(self, key: str | None) -> None:
        if key is not None and len(key) < MIN_KEY_CHARS:
            raise AdminKeyError(
                f"the admin key has {len(key)} characters; use at least {MIN_KEY_CHARS} "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        # Only a digest is kept: comparing fixed-length digests hides the key's length too.
        self._digest = hashlib.sha256(key.encode("utf-8")).digest() if key else None

    def __repr__(self) -> str:
        return f"AdminKey({'set' if self.enabled else 'not set'})"

    @property
    def enabled(self) -> bool:
        return self._digest is not None

    def matches(self, presented: str | None) -> bool:
        """Whether ``presented`` is the key, in time independent of where they differ."""
        if self._digest is None or not presented:
            return False
        candidate = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(candidate, self._digest)

    @classmethod
    def from_sources(cls, key_file: Path | None, environ: Mapping[str, str] | None = None) -> AdminKey:
        """The key from ``key_file`` (first line, surrounding whitespace dropped) or the environment."""
        environ = os.environ if environ is None else environ
        if key_file is not None:
            return cls(_read_key_file(Path(key_file)))
        value = environ.get(ADMIN_KEY_ENV, "").strip()
        return cls(value or None)


def _read_key_file(path: Path) -> str:
    if not path.is_file():
        raise AdminKeyError(f"admin key file {path} not found")
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("admin key file %s is readable by other users; chmod 600 it", path)
    try:
        lines = path.read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AdminKeyError(f"cannot read the admin key file {path}: {exc}") from None
    if not lines or not lines[0].strip():
        raise AdminKeyError(f"admin key file {path} is empty")
    return lines[0].strip()


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, from ``Authorization: Bearer`` or ``X-Admin-Key``."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get(ADMIN_KEY_HEADER) or None


class AdminGuard:
    """Checks the admin key of every request under ``/admin`` before anything else runs.

    A middleware rather than a route dependency: FastAPI parses a JSON body before dependencies,
    so a dependency would answer an unauthenticated caller's malformed body with a 400, and a
    guard here also covers any admin route added later. 403 when no key is configured, 401 (with
    ``WWW-Authenticate: Bearer``) for a missing or wrong key.
    """

    def __init__(self, app: ASGIApp, key: AdminKey) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            if not self.key.enabled:
                message = "admin endpoints are off: start the service with $SHOPSEARCH_ADMIN_KEY set or --admin-key-file"
                await error_response(403, "admin_disabled", message)(scope, receive, send)
                return
            if not self.key.matches(presented_key(Headers(scope=scope))):
                message = "a valid admin key is required (Authorization: Bearer KEY)"
                headers = {"WWW-Authenticate": "Bearer"}
                await error_response(401, "unauthorized", message, headers=headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)
