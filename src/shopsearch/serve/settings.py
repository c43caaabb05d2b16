"""Settings of ``shopsearch serve``: one pydantic model, read from a config file's ``serve`` section.

Defaults < config file (``serve:`` section of the YAML/TOML/JSON given with ``--config``) < flags,
the same order every other command follows (see :mod:`shopsearch.config`). The admin key itself
is never a setting: only the *file* holding it is, so a settings dump or a log line cannot leak it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shopsearch.config import ConfigError, read_config_file

SECTION = "serve"
# The API's hard ceiling on k; ``k_max`` may only lower it (the OpenAPI schema states this one).
K_LIMIT = 100
# Environment variable carrying the settings (JSON) to each uvicorn worker process when workers > 1.
SETTINGS_ENV = "SHOPSEARCH_SERVE_SETTINGS"


class ServeSettings(BaseModel):
    """Everything the search service needs; every field can come from the config file or a flag."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    index: Path | None = Field(None, description="index directory from `shopsearch index build`")
    host: str = Field("127.0.0.1", description="interface to bind; 0.0.0.0 exposes the service to the network")
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes, each holding its own index")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # requests
    k_default: int = Field(10, ge=1, le=K_LIMIT)
    k_max: int = Field(K_LIMIT, ge=1, le=K_LIMIT, description="largest k a request may ask for")
    max_query_chars: int = Field(256, ge=1, le=4096, description="longer queries are refused (422)")
    max_body_bytes: int = Field(16_384, ge=256, description="larger request bodies are refused (413)")
    cache_size: int = Field(4096, ge=0, description="LRU cache of ranked results per index; 0 disables it")
    # filters: fetch k * overfetch unfiltered candidates, grow x4 up to max_fetch while too few pass
    overfetch: int = Field(5, ge=1)
    max_fetch: int = Field(1000, ge=1)
    hybrid_method: Literal["rrf", "weighted"] = Field(
        "weighted", description="weighted: equal-weight min-max score fusion; rrf: reciprocal rank fusion"
    )
    hybrid_depth: int = Field(100, ge=1, description="candidates each component contributes to a hybrid")
    hybrid_rescore_union: bool = Field(
        True, description="score every product of the union of both lists exactly with both components before fusing"
    )
    hybrid_weighting: Literal["fixed", "coverage"] = Field(
        "fixed",
        description="coverage: BM25's weight per query scaled by the share of the query's words its vocabulary "
        "holds (for a model trained on the shop's queries; needs hybrid_rescore_union)",
    )
    spell_correction: bool = Field(
        True,
        description="correct query words no product uses to catalogue words before searching (a request's "
        "spell=false searches the query as typed)",
    )
    # index and encoder
    mmap: bool = Field(True, description="memory-map vectors, BM25 arrays and the FAISS index where possible")
    verify: bool = Field(True, description="check every index file's checksum on (re)load")
    check_model: bool = Field(
        True,
        description="check that the model the index was built with is present and unchanged; false for a "
        "deployment shipping only the ONNX export (needs encoder: onnx, whose source fingerprint is checked)",
    )
    encoder: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="auto: an ONNX export in/next to the index if one matches, else sentence-transformers"
    )
    onnx: Path | None = Field(None, description="ONNX export directory (models.export_onnx) to use")
    int8: bool = Field(True, description="use the export's int8 graph (fp32 when false)")
    encoder_threads: int | None = Field(None, ge=1, description="ONNX Runtime intra-op threads (default: up to 4)")
    search_threads: int = Field(
        1, ge=1, description="FAISS threads per search: concurrent requests already use the other cores"
    )
    # re-ranking: a cross-encoder re-orders the top rerank_depth of a request with rerank=true
    reranker: Path | None = Field(
        None, description="cross-encoder directory (`shopsearch train-reranker`) or its ONNX export "
        "(`shopsearch model export-onnx`, served int8); enables a request's rerank"
    )
    rerank_depth: int = Field(30, ge=1, le=1000, description="top hits the re-ranker re-orders per request")
    rerank_default: bool = Field(False, description="re-rank requests that do not say (rerank omitted)")
    reranker_threads: int | None = Field(
        None, ge=1, description="ONNX Runtime intra-op threads of the re-ranker (default: as encoder_threads)"
    )
    # admin and page
    admin_key_file: Path | None = Field(None, description="file holding the admin API key (else $SHOPSEARCH_ADMIN_KEY)")
    judgments: Path | None = Field(None, description="judgments to show grades on the web page")
    judgments_catalog: Path | None = Field(None, description="catalogue the judgments refer to, where the format needs one")
    judgments_format: str | None = Field(None, description="format of the judgments (default: detected)")
    # experiments: each store and the experiment switch on their part of the API and the page
    events_db: Path | None = Field(None, description="event store (SQLite) for POST /events: impressions, clicks")
    sbs_db: Path | None = Field(None, description="side-by-side verdict store (SQLite) for /sbs/*")
    experiment: Path | None = Field(
        None, description="config file whose `ab` section is the A/B or interleaving experiment to serve"
    )
    sbs_token_ttl_s: int = Field(86_400, ge=60, description="how long a side-by-side pair token stays valid")

    @model_validator(mode="after")
    def _consistent(self) -> ServeSettings:
        if self.k_default > self.k_max:
            raise ValueError(f"k_default ({self.k_default}) must not exceed k_max ({self.k_max})")
        if self.encoder == "torch" and self.onnx is not None:
            raise ValueError("onnx is set but encoder is 'torch'; drop one of them")
        if not self.check_model and self.encoder != "onnx":
            # torch queries (and auto's fallback to them) would run an unchecked model: vectors
            # from changed model files would not match the index's, and nothing would say so
            raise ValueError("check_model: false needs encoder: onnx (torch would query with an unchecked model)")
        if self.rerank_default and self.reranker is None:
            raise ValueError("rerank_default: true needs a reranker")
        if self.hybrid_weighting == "coverage" and not self.hybrid_rescore_union:
            raise ValueError("hybrid_weighting: coverage weights each query over the rescored union; it needs "
                             "hybrid_rescore_union: true")
        return self

    def resolved_encoder_threads(self) -> int:
        """Intra-op threads per ONNX Runtime call: concurrent requests already use the other cores."""
        if self.encoder_threads is not None:
            return self.encoder_threads
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return max(1, min(4, cpus))


def load_serve_settings(config: str | Path | None = None, **flags: Any) -> ServeSettings:
    """Defaults < the config file's ``serve`` section < flags (``None`` means "flag not given")."""
    raw = read_config_file(config).get(SECTION) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{config}: the '{SECTION}' section must be a mapping")
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return ServeSettings.model_validate({**raw, **given})
    except ValidationError as exc:
        where = f"{config}: " if config else ""
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'serve'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}invalid serve settings: {problems}") from None


def settings_from_env() -> ServeSettings:
    """The settings a parent ``shopsearch serve`` handed to this worker process."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise ConfigError(f"{SETTINGS_ENV} is not set: start workers through `shopsearch serve`")
    return ServeSettings.model_validate_json(raw)
