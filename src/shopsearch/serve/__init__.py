"""The search service: a FastAPI app over one index directory, with atomic index reloads.

``create_app(ServeSettings(index=...))`` builds the app; ``shopsearch serve`` runs it with uvicorn.
Modules: ``settings`` (ServeSettings), ``schemas`` (request/response bodies), ``holder`` (the served
index and its atomic swap), ``encoders`` (ONNX or torch query encoder, compatibility checks),
``search_service`` (query checks, cache, filters), ``products``, ``judgments``, ``metrics``,
``security`` (admin key), ``errors``, ``app`` (factory and routes), ``static/`` (the web page).
"""

from shopsearch.serve.app import ServeContext, create_app, get_context, include_routers
from shopsearch.serve.holder import IndexHolder, ServingIndex
from shopsearch.serve.settings import ServeSettings, load_serve_settings

__all__ = [
    "IndexHolder",
    "ServeContext",
    "ServeSettings",
    "ServingIndex",
    "create_app",
    "get_context",
    "include_routers",
    "load_serve_settings",
]
