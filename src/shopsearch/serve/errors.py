"""Every error the service answers has one JSON shape: ``{"error": {"code", "message", "details"}}``.

Bad input is always a 4xx that says what to fix: malformed JSON 400, failed validation 422,
over-long bodies 413, unknown routes 404. Validation details never echo the client's input back
(FastAPI's default does, and an unencodable input such as a lone surrogate then turns a 422 into a
500). Anything unexpected is a 500 whose body names no internals; the traceback goes to the log.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopsearch.experiments.storage import StoreError
from shopsearch.serve.holder import NotReadyError
from shopsearch.serve.search_service import InvalidQueryError

log = logging.getLogger("shopsearch.serve")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "not_ready",
}


class ApiError(Exception):
    """An answer decided by the service: status, machine-readable code and a message to act on."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _where(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    # ("query", "k") -> "k"; ("body",) -> "body"; ("body", "filters", 0) -> "filters.0"
    return ".".join(parts[1:]) if len(parts) > 1 else (parts[0] if parts else "request")


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        reason = next((e.get("ctx") or {}).get("error", "") for e in errors if e.get("type") == "json_invalid")
        return error_response(400, "malformed_json", f"the request body is not valid JSON: {reason}".rstrip(": "))
    details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors]
    message = "; ".join(f"{_where(d['loc'])}: {d['msg']}" for d in details) or "invalid request"
    return error_response(422, "invalid_request", message, details)


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, _CODES.get(exc.status_code, "error"), message, headers=headers)


async def _on_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


async def _on_invalid_query(request: Request, exc: InvalidQueryError) -> JSONResponse:
    return error_response(422, "invalid_query", str(exc))


async def _on_not_ready(request: Request, exc: NotReadyError) -> JSONResponse:
    return error_response(503, "not_ready", str(exc), headers={"Retry-After": "1"})


async def _on_store_error(request: Request, exc: StoreError | sqlite3.Error) -> JSONResponse:
    # the event or SBS store could not commit (disk full, locked past the busy timeout): nothing
    # was acknowledged, so the client may retry; the path stays in the log, not in the answer
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "store_unavailable", "the store could not record this; retry later",
                          headers={"Retry-After": "5"})


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "the server failed on this request; its log has the details")


class BodyLimitMiddleware:
    """413 (in the JSON error shape) for request bodies over ``max_bytes``, declared or streamed.

    A declared Content-Length is refused before the body is read; a chunked body is counted as it
    arrives and refused by raising ``HTTPException(413)`` from ``receive``, which FastAPI passes
    on to the exception handlers unchanged (any other error while reading a body becomes a 400).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"the request body exceeds {self.max_bytes} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, "payload_too_large", too_large)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise StarletteHTTPException(413, too_large)
            return message

        await self.app(scope, counted, send)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through :func:`error_response`."""
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _on_api_error)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidQueryError, _on_invalid_query)  # type: ignore[arg-type]
    app.add_exception_handler(NotReadyError, _on_not_ready)  # type: ignore[arg-type]
    app.add_exception_handler(StoreError, _on_store_error)  # type: ignore[arg-type]
    app.add_exception_handler(sqlite3.Error, _on_store_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)
