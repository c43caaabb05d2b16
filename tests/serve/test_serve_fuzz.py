"""Schemathesis against the service's own OpenAPI schema: every documented operation, fed
generated requests (valid ones, and ones that break the schema), must answer without a 5xx, with a
status code, content type, headers and body that the schema declares.

The app is the real one (``create_app``) over the small demo index of ``conftest.py`` with every
optional part switched on (event store, side-by-side store, admin key), called in process through
its ASGI interface; ``POST /admin/reload`` is fuzzed with the key and without it. Generation is
derandomized (Hypothesis derives the seed from the test), so a run repeats exactly; the fast
variant stays bounded for ``make test``, the ``slow`` one digs longer.

Three deliberate departures from schemathesis' defaults, each for a reason:

- **Its pytest integration is not used.** ``schemathesis.pytest.from_fixture(...).parametrize()``
  rewrites ``Node._nodeid``, which pytest 9.2 no longer has, so it fails before running a case.
  The Python API (``APIOperation.as_strategy`` under Hypothesis' ``@given``) needs none of that,
  and parametrizing over a fixed list of operations gives each its own test id;
  :func:`test_fuzzed_operations_are_every_operation` keeps that list equal to the schema's.
- **Schema-valid requests may meet the service's own checks.** Some rules cannot be said in the
  schema: the configured ``max_query_chars`` (below the schema's hard 4096), control characters and
  blank queries, unknown systems or tokens, index directories that do not exist. The service
  refuses those with 422 and a code of its own; the built-in ``positive_data_acceptance`` check
  would call that a failure. :func:`assert_schema_and_validator_agree` asks the sharper question:
  a schema-valid request must never fail *request validation* (400, or 422 ``invalid_request``
  with validation ``details``), because that means the schema promises more than the app accepts.
- **Tuples are checked outside schemathesis.** FastAPI writes ``tuple[str, int]`` (``/info``'s
  facets) as OpenAPI 3.1 ``prefixItems``; schemathesis 4.32 turns response ``prefixItems`` into
  draft-4 ``items: [...]`` and then rejects its own result as an invalid 3.1 schema. The schema
  handed to schemathesis spells those tuples as ``items: {anyOf: ...}`` (same length, either
  type per place), and :func:`test_info_matches_the_exact_schema` validates ``/info`` against
  the untouched schema with a Draft 2020-12 validator.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from serve_support import ADMIN_KEY, make_settings

from shopsearch.serve.app import create_app
from shopsearch.serve.sbs_tokens import PairTokens
from shopsearch.serve.security import AdminKey

schemathesis = pytest.importorskip("schemathesis")  # a dev dependency (pyproject's `dev` extra)

# installed with schemathesis (jsonschema_rs is its own validator), so imported after the skip
import jsonschema_rs  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.python import asgi as schemathesis_asgi  # noqa: E402

ADMIN_RELOAD = ("POST", "/admin/reload")
# Operations that take input: fuzzed with schema-valid and with schema-breaking requests.
WITH_INPUT = [
    ("GET", "/search"),
    ("POST", "/search"),
    ("GET", "/products/{product_id}"),
    ("POST", "/events"),
    ("GET", "/sbs/pair"),
    ("POST", "/sbs/verdict"),
    ADMIN_RELOAD,
]
# No parameters and no body: nothing to break, so schema-valid requests only.
WITHOUT_INPUT = [
    ("GET", "/sbs/systems"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/info"),
]
CASES = [(op, mode) for op in WITH_INPUT for mode in GenerationMode] + [
    (op, GenerationMode.POSITIVE) for op in WITHOUT_INPUT
]
# Given explicitly, so no schemathesis.toml found above the working directory changes the run.
# positive_data_acceptance: replaced by assert_schema_and_validator_agree (module docstring).
# negative_data_rejection: a schema-breaking body over max_body_bytes (e.g. a token past the
# schema's 32768 characters) is refused with 413 before it is read: a rejection too.
REJECTIONS = (400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429)  # schemathesis' own, plus 413
CONFIG = {
    "checks": {
        "positive_data_acceptance": {"enabled": False},
        "negative_data_rejection": {"expected-statuses": [str(status) for status in REJECTIONS]},
    }
}
# Examples per operation and mode. Fast: every operation in well under a minute on one core.
FAST_EXAMPLES = 12
SLOW_EXAMPLES = 200


def _case_id(case: tuple[tuple[str, str], GenerationMode]) -> str:
    (method, path), mode = case
    return f"{method} {path} {mode.value}"


@pytest.fixture(scope="module")
def fuzz_app(index_b, tmp_path_factory) -> Iterator[FastAPI]:
    """The app with events and side by side on; schemathesis' ASGI client runs its lifespan."""
    work = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        make_settings(index_b, events_db=work / "events.db", sbs_db=work / "sbs.db"),
        admin_key=AdminKey(ADMIN_KEY),
        pair_tokens=PairTokens(b"fuzz-secret-0123456789abcdef0123"),
    )
    yield app
    # schemathesis keeps a started lifespan until the process exits; end it now, so the event and
    # SBS stores close while their temporary directory still exists
    schemathesis_asgi.shutdown_lifespans()


def _tuples_as_any_of(node: Any) -> None:
    """Rewrite (in place) every ``prefixItems`` tuple without ``items`` as ``items: {anyOf}``."""
    if isinstance(node, dict):
        if "prefixItems" in node and "items" not in node:
            node["items"] = {"anyOf": node.pop("prefixItems")}
        for value in node.values():
            _tuples_as_any_of(value)
    elif isinstance(node, list):
        for value in node:
            _tuples_as_any_of(value)


@pytest.fixture(scope="module")
def api_schema(fuzz_app: FastAPI) -> Any:
    """The app's schema as schemathesis sees it (tuples relaxed: see the module docstring)."""

    def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
        _tuples_as_any_of(raw_schema)

    # a global hook, so registered only while this schema loads
    schemathesis.hook(before_load_schema)
    try:
        return schemathesis.openapi.from_asgi(
            "/openapi.json", fuzz_app, config=schemathesis.Config.from_dict(CONFIG)
        )
    finally:
        schemathesis.hooks.unregister(before_load_schema)


def assert_schema_and_validator_agree(response: Any) -> None:
    """A schema-valid request may be refused by the service's own checks (422 with a code of its
    own), never by request validation: that would be a rule the schema does not state."""
    if response.status_code not in (400, 422):
        return
    error = response.json()["error"]
    assert response.status_code == 422, f"schema-valid request answered {response.status_code}: {error}"
    assert not (error["code"] == "invalid_request" and error.get("details")), (
        f"schema-valid request failed request validation: {error}"
    )


def fuzz(api_schema: Any, operation: tuple[str, str], mode: GenerationMode, max_examples: int,
         with_key: bool = True) -> list[int]:  # fmt: skip
    """Send ``max_examples`` generated requests to one operation, check every answer against the
    schema (schemathesis' checks) and the rules above; return the status codes seen."""
    method, path = operation
    strategy = api_schema[path][method].as_strategy(generation_mode=mode)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"} if with_key and operation == ADMIN_RELOAD else None
    statuses: list[int] = []

    @settings(
        max_examples=max_examples,
        derandomize=True,  # the same requests on every run and machine: a failure always reproduces
        database=None,  # nothing written to or replayed from .hypothesis/
        deadline=None,  # a reload or the first dense search may be slow on a busy machine
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=headers)
        if mode is GenerationMode.POSITIVE:
            assert_schema_and_validator_agree(response)
        statuses.append(response.status_code)

    run()
    return statuses


def test_fuzzed_operations_are_every_operation(api_schema):
    """A new route must join WITH_INPUT or WITHOUT_INPUT (and so be fuzzed), not slip past."""
    paths = api_schema.raw_schema["paths"]
    documented = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert documented == set(WITH_INPUT) | set(WITHOUT_INPUT)
    for method, path in WITHOUT_INPUT:
        op = paths[path][method.lower()]
        assert not op.get("parameters") and "requestBody" not in op, f"{method} {path} takes input now"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_operation_conforms_to_its_schema(api_schema, case):
    operation, mode = case
    statuses = fuzz(api_schema, operation, mode, FAST_EXAMPLES)
    assert statuses and max(statuses) < 500


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
def test_admin_reload_without_key_is_refused(api_schema, mode):
    """Whatever the body, no key means 401 (the guard answers before the body is read)."""
    statuses = fuzz(api_schema, ADMIN_RELOAD, mode, FAST_EXAMPLES, with_key=False)
    assert set(statuses) == {401}


def test_info_matches_the_exact_schema(fuzz_app):
    """``/info`` against the schema as served, tuples included (schemathesis sees them relaxed)."""
    with TestClient(fuzz_app) as client:
        openapi = client.get("/openapi.json").json()
        info = client.get("/info").json()
    assert any(info["facets"].values()), "the demo index has facet values: the tuples get checked"
    validator = jsonschema_rs.Draft202012Validator(
        {"$ref": "#/components/schemas/IndexInfo", "components": copy.deepcopy(openapi["components"])}
    )
    validator.validate(info)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_operation_conforms_to_its_schema_long(api_schema, case):
    operation, mode = case
    statuses = fuzz(api_schema, operation, mode, SLOW_EXAMPLES)
    assert statuses and max(statuses) < 500
